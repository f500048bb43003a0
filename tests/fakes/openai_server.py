"""A local OpenAI-compatible server standing in for the paid providers (tests and benchmarks).

It serves /v1/chat/completions (plain and streamed, with usage counts) and /v1/embeddings, and Anthropic's
/v1/messages (plain and streamed) so that both SDKs are driven for real. The answer is
`echo: <last user message>` unless `reply` is set; prompt tokens are the words of all messages, completion
tokens the words of the answer. `latency` delays every answer; `failures` is a list of HTTP statuses
answered (one per request) before it answers normally again; `requests` keeps what it received.
`most_in_flight` is the most requests it held at once, `abandoned` how many callers hung up while it was
still waiting to answer (a caller that cancels its call closes the connection). With `answer_at_in_flight`
set it holds every request until that many are in flight at once (or a minute has passed), then answers.

It plays a model that follows the request, in either vendor's shape:
- Tools: when the request has tools and the last message is the user's, it calls the tool named at each
  mention in the user's text, in order, with the JSON object written right after the name as arguments
  (`get_weather {"city": "Paris"}`), else `{}`. tool_choice "required" (Anthropic `any`) or a named
  function (`tool`) forces a call when none is mentioned (the named tool, or the first one), its arguments
  filled from the tool's schema as below; a named function restricts the calls to it; "none" never calls.
  Several calls in one answer, only the first with `parallel_tool_calls: false` (`disable_parallel_tool_use`).
  The answer's text is then "" (or `reply`, if set), its finish reason `tool_calls` (stop reason `tool_use`);
  streams send each call's arguments in several fragments, as the vendors do.
- Tool results: after them (trailing `tool` messages, or a user message of `tool_result` blocks) it answers
  `tools said: <result 1>; <result 2>`.
- Structured output: a json_object response_format (or an Anthropic system prompt asking for "a single JSON
  object") is answered `{"echo": "<last user text>"}`; a json_schema one with an object whose properties are
  filled by type (string: the last user text, integer and number: 1, boolean: true, array: [], object: {}).
- Multi-part content: text parts are the message's text; image parts (OpenAI `image_url` parts, Anthropic
  `image` blocks) of user messages are kept in `images`, as received.
- `reply`, when set, is the text of every answer. Usage counts words, tool call arguments and tool results
  included. `cut_stream_after` drops a stream after that many chunks (deltas: words of text, fragments of calls).

    python -m tests.fakes.openai_server --port 8765 --latency 0.02     # standalone, for bench/
"""

import argparse
import hashlib
import itertools
import json
import re
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
        self.cut_stream_after: int | None = None  # chunks sent before a stream is dropped without finishing
        self.requests: list[dict] = []
        self.images: list[dict] = []  # image parts (OpenAI) or blocks (Anthropic) of user messages, as received
        self.ids = itertools.count(1)  # of tool calls
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

    def _record_images(self, parts) -> None:
        parts = list(parts)
        with self.lock:
            self.images += parts

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
                text, calls = _chat_answer(body, fake)
                usage = _usage(_chat_words(body), text, calls)
                usage = {
                    "prompt_tokens": usage[0],
                    "completion_tokens": usage[1],
                    "total_tokens": usage[0] + usage[1],
                }
                if body.get("stream"):
                    return self._stream(body, text, calls, usage)
                message = {"role": "assistant", "content": text}
                if calls:
                    message["content"] = text or None
                    message["tool_calls"] = [
                        {"id": id_, "type": "function", "function": {"name": name, "arguments": arguments}}
                        for id_, name, arguments in calls
                    ]
                self._json(
                    200,
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model"),
                        "choices": [
                            {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}
                        ],
                        "usage": usage,
                    },
                )

            def _stream(self, body, text, calls, usage):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                base = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": body.get("model"),
                }
                deltas = [{"content": piece} for piece in _pieces(text)] if text or not calls else []
                for index, (id_, name, arguments) in enumerate(calls):
                    first = {"index": index, "id": id_, "type": "function", "function": {"name": name, "arguments": ""}}
                    deltas.append({"tool_calls": [first]})
                    deltas += [
                        {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                        for piece in _fragments(arguments)
                    ]
                try:
                    for index, delta in enumerate(deltas):
                        if fake.cut_stream_after is not None and index >= fake.cut_stream_after:
                            self.close_connection = True
                            return
                        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                    finish_reason = "tool_calls" if calls else "stop"
                    final = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}]}
                    self.wfile.write(f"data: {json.dumps(final)}\n\n".encode())
                    if (body.get("stream_options") or {}).get("include_usage"):
                        self.wfile.write(f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode())
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

            def _anthropic(self, body):
                text, calls = _anthropic_answer(body, fake)
                input_tokens, output_tokens = _usage(_anthropic_words(body), text, calls)
                usage = {"input_tokens": input_tokens, "output_tokens": output_tokens}
                stop_reason = "tool_use" if calls else "end_turn"
                message = {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": body.get("model"),
                    "stop_reason": stop_reason,
                    "stop_sequence": None,
                }
                blocks = [{"type": "text", "text": text}] if text or not calls else []
                blocks += [
                    {"type": "tool_use", "id": id_, "name": name, "input": json.loads(arguments)}
                    for id_, name, arguments in calls
                ]
                if not body.get("stream"):
                    return self._json(200, {**message, "content": blocks, "usage": usage})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
                events = [("message_start", {"type": "message_start", "message": start})]
                for index, block in enumerate(blocks):
                    if block["type"] == "text":
                        opened, deltas = (
                            {"type": "text", "text": ""},
                            [{"type": "text_delta", "text": piece} for piece in _pieces(text)],
                        )
                    else:
                        opened = {**block, "input": {}}
                        deltas = [
                            {"type": "input_json_delta", "partial_json": piece}
                            for piece in _fragments(json.dumps(block["input"]))
                        ]
                    events.append(
                        (
                            "content_block_start",
                            {"type": "content_block_start", "index": index, "content_block": opened},
                        )
                    )
                    events += [
                        ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
                        for delta in deltas
                    ]
                    events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
                events += [
                    (
                        "message_delta",
                        {
                            "type": "message_delta",
                            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                            "usage": {"output_tokens": output_tokens},
                        },
                    ),
                    ("message_stop", {"type": "message_stop"}),
                ]
                deltas_sent = 0
                for name, data in events:
                    if name == "content_block_delta":
                        if fake.cut_stream_after is not None and deltas_sent >= fake.cut_stream_after:
                            break  # dropped without finishing
                        deltas_sent += 1
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


def _fragments(arguments: str) -> list[str]:
    """Tool call arguments cut in three pieces (or fewer, if shorter), as providers stream them."""
    size = max(1, -(-len(arguments) // 3))
    return [arguments[start : start + size] for start in range(0, len(arguments), size)] or [""]


# --- what the fake answers, from a request in either vendor's shape ------------------------------------


def _text(content) -> str:
    """The text of a message content: a string, or the text parts (blocks) of a list, joined by spaces."""
    if content is None or isinstance(content, str):
        return content or ""
    return " ".join(part.get("text", "") for part in content if part.get("type") == "text")


def _chat_answer(body: dict, fake: FakeOpenAI) -> tuple[str, list[tuple[str, str, str]]]:
    """(text, [(id, name, arguments)]) answering a Chat Completions request."""
    messages = body.get("messages", [])
    fake._record_images(
        part for m in messages if m["role"] == "user" for part in _parts(m) if part["type"] == "image_url"
    )
    results = []
    for message in reversed(messages):
        if message["role"] != "tool":
            break
        results.insert(0, _text(message.get("content")))
    last_user = next((_text(m["content"]) for m in reversed(messages) if m["role"] == "user"), "")
    calls = []
    if not results and messages and messages[-1]["role"] == "user":
        choice = body.get("tool_choice") or "auto"
        tools = [(tool["function"]["name"], tool["function"].get("parameters")) for tool in body.get("tools") or ()]
        forced = choice["function"]["name"] if isinstance(choice, dict) else choice
        calls = _tool_calls(fake, tools, forced, body.get("parallel_tool_calls", True), last_user, "call")
    response_format = body.get("response_format") or {}
    structured = None
    if response_format.get("type") == "json_object":
        structured = {"echo": last_user}
    elif response_format.get("type") == "json_schema":
        structured = _fill(response_format["json_schema"].get("schema"), last_user)
    return _text_answer(fake, calls, results, structured, last_user), calls


def _anthropic_answer(body: dict, fake: FakeOpenAI) -> tuple[str, list[tuple[str, str, str]]]:
    """(text, [(id, name, arguments)]) answering a Messages request."""
    messages = body.get("messages", [])
    fake._record_images(part for m in messages if m["role"] == "user" for part in _parts(m) if part["type"] == "image")
    last = messages[-1] if messages else {"role": "", "content": ""}
    results = [
        _text(block.get("content"))
        for block in _parts(last)
        if block["type"] == "tool_result" and last["role"] == "user"
    ]
    asked = [m for m in messages if m["role"] == "user" and any(b["type"] != "tool_result" for b in _blocks(m))]
    last_user = _text(asked[-1]["content"]) if asked else ""
    calls = []
    if not results and last["role"] == "user":
        choice = body.get("tool_choice") or {"type": "auto"}
        forced = {"auto": "auto", "any": "required", "none": "none"}.get(choice["type"]) or choice.get("name")
        tools = [(tool["name"], tool.get("input_schema")) for tool in body.get("tools") or ()]
        parallel = not choice.get("disable_parallel_tool_use")
        calls = _tool_calls(fake, tools, forced, parallel, last_user, "toolu")
    asks_json = "a single json object" in _text(body.get("system")).lower()
    return _text_answer(fake, calls, results, {"echo": last_user} if asks_json else None, last_user), calls


def _parts(message: dict) -> list[dict]:
    content = message.get("content")
    return content if isinstance(content, list) else []


def _blocks(message: dict) -> list[dict]:
    content = message.get("content")
    return content if isinstance(content, list) else [{"type": "text", "text": content or ""}]


def _text_answer(fake, calls, results, structured, last_user) -> str:
    if fake.reply is not None:
        return fake.reply
    if calls:
        return ""
    if structured is not None:
        return json.dumps(structured)
    if results:
        return "tools said: " + "; ".join(results)
    return f"echo: {last_user}"


def _tool_calls(fake, tools, choice, parallel, text, prefix) -> list[tuple[str, str, str]]:
    """Each mention of a tool in the user's text, in order, with the JSON object written right after it (or
    {}); under "required" or a named tool, one call with arguments filled from its schema if none is
    mentioned. Only the first call when parallel calls are off."""
    if not tools or choice == "none":
        return []
    schemas = dict(tools)
    names = [choice] if choice in schemas else list(schemas)
    mentions = sorted(
        (
            (match.start(), name, _json_after(text[match.end() :]))
            for name in names
            for match in re.finditer(rf"(?<!\w){re.escape(name)}(?!\w)", text)
        ),
        key=lambda mention: mention[0],
    )
    calls = [(name, arguments) for _, name, arguments in mentions]
    if not calls and choice != "auto":
        name = choice if choice in schemas else tools[0][0]
        calls = [(name, _fill(schemas[name], text))]
    calls = calls if parallel else calls[:1]
    return [(f"{prefix}_{next(fake.ids)}", name, json.dumps(arguments)) for name, arguments in calls]


def _json_after(text: str) -> dict:
    text = text.lstrip()
    if text.startswith("{"):
        try:
            value, _ = json.JSONDecoder().raw_decode(text)
            if isinstance(value, dict):
                return value
        except ValueError:
            pass
    return {}


def _fill(schema, text: str) -> dict:
    """An object with each property of a JSON schema filled by its type: the text for a string, 1, true, [], {}."""
    filled = {}
    for name, spec in ((schema or {}).get("properties") or {}).items():
        kind = spec.get("type", "string")
        kind = next((k for k in kind if k != "null"), "string") if isinstance(kind, list) else kind
        filled[name] = {"string": text, "integer": 1, "number": 1, "boolean": True, "array": [], "object": {}}.get(kind)
    return filled


def _chat_words(body: dict) -> int:
    """Words of the messages: their text, the arguments of assistants' tool calls, tool results."""
    return sum(
        len(_text(m.get("content")).split())
        + sum(len(call["function"]["arguments"].split()) for call in m.get("tool_calls") or ())
        for m in body.get("messages", [])
    )


def _anthropic_words(body: dict) -> int:
    words = len(_text(body.get("system")).split())
    for message in body.get("messages", []):
        words += len(_text(message["content"]).split())
        for block in _parts(message):
            if block["type"] == "tool_use":
                words += len(json.dumps(block["input"]).split())
            elif block["type"] == "tool_result":
                words += len(_text(block.get("content")).split())
    return words


def _usage(prompt_words: int, text: str, calls) -> tuple[int, int]:
    return prompt_words, len(text.split()) + sum(len(arguments.split()) for _, _, arguments in calls)


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
