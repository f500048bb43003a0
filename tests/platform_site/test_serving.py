"""The web process's server (platform_site.serving): a burst of connections is accepted within a few turns of
the event loop, however long each turn takes; a process out of file descriptors pauses accepting instead of
spinning; a server shutting down lets calls in flight finish."""

import asyncio
import signal
import socket
import subprocess
import sys
import time

import uvicorn
import uvloop
from django.conf import settings

from platform_site import serving

REQUEST = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"


async def start(app, listener: socket.socket) -> tuple[serving.Server, asyncio.Task]:
    """The platform's server on `listener`, as a gunicorn worker runs it; stop it with stop()."""
    config = uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="off", log_level="warning")
    server = serving.Server(config=config)
    running = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        await asyncio.sleep(0.01)
    return server, running


async def stop(server: serving.Server, running: asyncio.Task) -> None:
    server.should_exit = True
    await running


def connect(port: int, count: int) -> list[socket.socket]:
    """Clients whose connections wait in the listen queue (the kernel completes the handshake), request sent."""
    clients = []
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", port))
        client.sendall(REQUEST)
        clients.append(client)
    return clients


def read_answer(client: socket.socket) -> bytes:
    client.settimeout(5)
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = client.recv(4096)
        if not chunk:
            break
        answer += chunk
    return answer


async def serve(app, clients_count: int, turn_seconds: float) -> tuple[int, int, list[socket.socket]]:
    """Serve `app` on a fresh listening socket as a gunicorn worker does while every turn of the loop takes
    `turn_seconds` of CPU (a saturated process); returns the requests served, the turns taken, the clients."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=clients_count * 2)
    server, running = await start(app, listener)
    clients = await asyncio.to_thread(connect, listener.getsockname()[1], clients_count)

    turns = 0
    served = app.served

    async def busy():
        nonlocal turns
        while True:
            time.sleep(turn_seconds)
            turns += 1
            await asyncio.sleep(0)

    busy_task = asyncio.create_task(busy())
    while len(served) < clients_count and turns < clients_count:
        await asyncio.sleep(0)
    busy_task.cancel()
    await stop(server, running)
    return len(served), turns, clients


class CountingApp:
    def __init__(self):
        self.served = []

    async def __call__(self, scope, receive, send):
        self.served.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})


def test_a_busy_process_accepts_a_burst_of_connections_within_a_few_turns():
    """uvloop alone accepts about one connection per turn: 200 waiting clients took over 100 turns, 10 ms each here,
    a tenth of a second in a process holding hundreds of calls."""
    served, turns, clients = uvloop.run(serve(CountingApp(), clients_count=200, turn_seconds=0.01))
    try:
        assert served == 200
        assert turns <= 200 // serving.ACCEPT_BATCH + 6
        assert all(read_answer(client).startswith(b"HTTP/1.1 200 OK") for client in clients)
    finally:
        for client in clients:
            client.close()


def test_shutdown_stops_accepting_and_lets_calls_in_flight_finish():
    """After shutdown began, a new client is refused; a call already in flight gets its answer."""

    async def scenario():
        started = asyncio.Event()

        async def slow_app(scope, receive, send):
            started.set()
            await asyncio.sleep(0.3)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"finished"})

        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        server, running = await start(slow_app, listener)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(REQUEST)
        await started.wait()
        stopping = asyncio.create_task(stop(server, running))
        answer = await reader.read()
        writer.close()
        try:
            await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            refused = True
        else:
            refused = False
        await stopping
        return answer, refused

    answer, refused = uvloop.run(scenario())
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert answer.endswith(b"finished\r\n0\r\n\r\n")  # the whole chunked body
    assert refused


SERVER_OUT_OF_FILES = """
import asyncio, logging, resource, socket, sys
import uvicorn, uvloop
from platform_site import serving

logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s %(message)s")

async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})

async def main():
    listener = socket.create_server(("127.0.0.1", 0), backlog=100)
    config = uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="off", log_level="warning")
    server = serving.Server(config=config)
    running = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        await asyncio.sleep(0.01)
    open_now = len(__import__("os").listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 10, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    print("port", listener.getsockname()[1], flush=True)
    await running

uvloop.run(main())
"""


def test_a_process_out_of_file_descriptors_pauses_accepting_and_serves_again(tmp_path):
    """Past its open-files limit a process cannot accept: it says so once a second instead of spinning on the
    readable socket, keeps the connections it has, and takes the waiting ones once some have closed."""
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER_OUT_OF_FILES],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=settings.BASE_DIR,
    )
    try:
        port = int(server.stdout.readline().split()[1])
        clients = connect(port, 30)  # 10 fit under the limit; the others wait in the listen queue
        time.sleep(1.5)
        for client in clients[:10]:
            assert read_answer(client).startswith(b"HTTP/1.1 200 OK")
            client.close()  # frees the server's descriptors: it accepts again within a second
        for client in clients[10:20]:
            assert read_answer(client).startswith(b"HTTP/1.1 200 OK")
            client.close()
        for client in clients[20:]:
            assert read_answer(client).startswith(b"HTTP/1.1 200 OK")
            client.close()
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=10)
    pauses = [line for line in output.splitlines() if "accept failed, pausing" in line]
    assert 1 <= len(pauses) <= 10, output[-2000:]
    assert "Too many open files" in pauses[0]
