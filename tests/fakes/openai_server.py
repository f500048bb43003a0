"""A local OpenAI-compatible server standing in for the paid providers (tests and benchmarks).

It serves /v1/chat/completions (plain and streamed, with usage counts) and /v1/embeddings, and Anthropic's
/v1/messages (plain and streamed) so that both SDKs are driven for real. The answer is
`echo: <last user message>` unless `reply` is set; prompt tokens are the words of all messages, completion
tokens the words of the answer. `latency` delays every answer; `failures` is a list of HTTP statuses
answered (one per request) before it answers normally again; `requests` keeps what it received.
`most_in_flight` is the most requests it held at once, `abandoned` how many callers hung up while it was
still waiting to answer (a caller that cancels its call closes the connection). With `answer_at_in_flight`
set it holds every request until that many are in flight at once (or a minute has passed), then answers.

    python -m tests.fakes.openai_server --port 8765 --latency 0.02     # standalone, for bench/
"""

import argparse
import hashlib
import json
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # many callers connect at once


class FakeOpenAI:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.latency = 0.0
        self.failures: list[int] = []
        self.reply: str | None = None
        self.cut_stream_after: int | None = None  # words sent before a stream is dropped without finishing
        self.requests: list[dict] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.abandoned = 0
        self.answer_at_in_flight: int | None = None
        self.lock = threading.Lock()
        self.gathered = threading.Condition(self.lock)
        self.server = _Server((host, port), self._handler())
        self.base_url = f"http://{host}:{self.server.server_port}/v1"

    def start(self) -> "FakeOpenAI":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def chat_calls(self) -> int:
        return sum(1 for request in self.requests if request["path"].endswith("/chat/completions"))

    def _next_failure(self) -> int | None:
        with self.lock:
            return self.failures.pop(0) if self.failures else None

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once, as a real server's would

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                with fake.lock:
                    fake.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
                    fake.in_flight += 1
                    fake.most_in_flight = max(fake.most_in_flight, fake.in_flight)
                    if fake.answer_at_in_flight:
                        fake.gathered.notify_all()
                        fake.gathered.wait_for(lambda: fake.most_in_flight >= fake.answer_at_in_flight, timeout=60)
                try:
                    if fake.latency and self._caller_hung_up_within(fake.latency):
                        with fake.lock:
                            fake.abandoned += 1
                        self.close_connection = True
                        return
                    self._answer(body)
                finally:
                    with fake.lock:
                        fake.in_flight -= 1

            def _caller_hung_up_within(self, seconds: float) -> bool:
                """Wait `seconds`, watching the connection: True as soon as the caller closes it."""
                deadline = time.monotonic() + seconds
                watch = select.poll()  # not select(): descriptors past 1024 when many callers are connected
                watch.register(self.connection, select.POLLIN)
                while (left := deadline - time.monotonic()) > 0:
                    if watch.poll(left * 1000):
                        try:
                            if self.connection.recv(1, socket.MSG_PEEK) == b"":
                                return True
                        except OSError:
                            return True
                        time.sleep(min(left, 0.01))  # a pipelined request: keep waiting
                return False

            def _answer(self, body):
                failure = fake._next_failure()
                if failure:
                    return self._json(failure, {"error": {"message": "injected failure", "type": "server_error"}})
                if self.path.endswith("/chat/completions"):
                    return self._chat(body)
                if self.path.endswith("/embeddings"):
                    return self._embeddings(body)
                if self.path.endswith("/messages"):
                    return self._anthropic(body)
                self._json(404, {"error": {"message": "not found"}})

            def _chat(self, body):
                messages = body.get("messages", [])
                last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
                text = fake.reply if fake.reply is not None else f"echo: {last_user}"
                prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
                usage = {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(text.split()),
                    "total_tokens": prompt_tokens + len(text.split()),
                }
                if body.get("stream"):
                    return self._stream(body, text, usage)
                self._json(
                    200,
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model"),
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                        ],
                        "usage": usage,
                    },
                )

            def _stream(self, body, text, usage):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                words = text.split(" ")
                base = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": body.get("model"),
                }
                try:
                    for index, word in enumerate(words):
                        if fake.cut_stream_after is not None and index >= fake.cut_stream_after:
                            self.close_connection = True
                            return
                        piece = word if index == len(words) - 1 else word + " "
                        chunk = {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                    final = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                    self.wfile.write(f"data: {json.dumps(final)}\n\n".encode())
                    if (body.get("stream_options") or {}).get("include_usage"):
                        self.wfile.write(f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode())
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

            def _anthropic(self, body):
                messages = body.get("messages", [])
                last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
                text = fake.reply if fake.reply is not None else f"echo: {last_user}"
                input_tokens = len(str(body.get("system", "")).split()) + sum(
                    len(str(m.get("content", "")).split()) for m in messages
                )
                usage = {"input_tokens": input_tokens, "output_tokens": len(text.split())}
                message = {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": body.get("model"),
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                }
                if not body.get("stream"):
                    return self._json(200, {**message, "content": [{"type": "text", "text": text}], "usage": usage})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                events = [
                    (
                        "message_start",
                        {
                            "type": "message_start",
                            "message": {
                                **message,
                                "content": [],
                                "stop_reason": None,
                                "usage": {"input_tokens": input_tokens, "output_tokens": 1},
                            },
                        },
                    ),
                    (
                        "content_block_start",
                        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                    ),
                    *[
                        (
                            "content_block_delta",
                            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
                        )
                        for piece in _pieces(text)
                    ],
                    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                    (
                        "message_delta",
                        {
                            "type": "message_delta",
                            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                            "usage": {"output_tokens": usage["output_tokens"]},
                        },
                    ),
                    ("message_stop", {"type": "message_stop"}),
                ]
                for name, data in events:
                    self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()
                self.close_connection = True

            def _embeddings(self, body):
                inputs = body.get("input", [])
                inputs = [inputs] if isinstance(inputs, str) else inputs
                dimensions = body.get("dimensions") or 8
                data = []
                for index, text in enumerate(inputs):
                    digest = hashlib.sha256(text.encode()).digest()
                    vector = [(digest[i % len(digest)] - 128) / 128 for i in range(dimensions)]
                    data.append({"object": "embedding", "index": index, "embedding": vector})
                tokens = sum(len(text.split()) for text in inputs)
                self._json(
                    200,
                    {
                        "object": "list",
                        "data": data,
                        "model": body.get("model"),
                        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                    },
                )

            def _json(self, status, payload):
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        return Handler


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [word if index == len(words) - 1 else word + " " for index, word in enumerate(words)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    args = parser.parse_args()
    fake = FakeOpenAI(args.host, args.port)
    fake.latency = args.latency
    print(f"fake OpenAI-compatible server on {fake.base_url}", flush=True)
    fake.server.serve_forever()


if __name__ == "__main__":
    main()
