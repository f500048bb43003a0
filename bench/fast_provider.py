"""A minimal OpenAI-compatible provider for benchmarks: POST /v1/chat/completions on one asyncio event loop.

tests/fakes/openai_server.py is a thread per connection: fine for tests, but it cannot hold a thousand
calls waiting 500 ms, and its own cost would be counted as the provider's. This one parses HTTP with
httptools on uvloop (both already installed for the web server), keeps connections alive, and answers the
fake's JSON shape (`echo: <last user message>`, usage counted in words) after `--latency` seconds, without
blocking the loop while it waits. A base URL of /delay/<ms>/v1 answers after <ms> instead (one process, two
latencies); GET /stats answers {"served": <chat completions answered>}. Any other path is a 404.

    .venv/bin/python bench/fast_provider.py --port 8765 --latency 0.5
"""

import argparse
import asyncio
import json
import re
import resource
import time

import httptools
import uvloop

DELAY = re.compile(rb"^/delay/(\d+)/")
served = 0


def completion(body: bytes) -> bytes:
    request = json.loads(body or b"{}")
    messages = request.get("messages", [])
    last_user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    text = f"echo: {last_user}"
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
    completion_tokens = len(text.split())
    return json.dumps(
        {
            "id": "chatcmpl-fast",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    ).encode()


def response(status: str, body: bytes, keep_alive: bool) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    return head.encode() + body


class Connection(asyncio.Protocol):
    """One client connection: each request parsed as it arrives, answered `latency` seconds later."""

    def __init__(self, latency: float):
        self.latency = latency
        self.parser = httptools.HttpRequestParser(self)
        self.transport = None
        self.url = b""
        self.body = []

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(response("400 Bad Request", b"{}", keep_alive=False))
            self.transport.close()

    # httptools callbacks
    def on_message_begin(self):
        self.url, self.body = b"", []

    def on_url(self, url):
        self.url += url

    def on_body(self, body):
        self.body.append(body)

    def on_message_complete(self):
        global served
        keep_alive = self.parser.should_keep_alive()
        path = self.url.split(b"?")[0]
        delay = DELAY.match(path)
        latency = int(delay.group(1)) / 1000 if delay else self.latency
        if path.endswith(b"/chat/completions"):
            served += 1
            answer = response("200 OK", completion(b"".join(self.body)), keep_alive)
        elif path == b"/stats":
            answer, latency = response("200 OK", json.dumps({"served": served}).encode(), keep_alive), 0
        else:
            answer = response("404 Not Found", b'{"error": {"message": "not found"}}', keep_alive)
        if latency:
            asyncio.get_running_loop().call_later(latency, self.send, answer, keep_alive)
        else:
            self.send(answer, keep_alive)

    def send(self, answer: bytes, keep_alive: bool):
        if self.transport.is_closing():
            return
        self.transport.write(answer)
        if not keep_alive:
            self.transport.close()


async def serve(host: str, port: int, latency: float):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(latency), host, port, backlog=4096, reuse_address=True)
    print(f"fast OpenAI-compatible provider on http://{host}:{port}/v1 (latency {latency} s)", flush=True)
    await server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvloop.run(serve(args.host, args.port, args.latency))


if __name__ == "__main__":
    main()
