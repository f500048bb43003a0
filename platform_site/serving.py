"""The ASGI server: gunicorn manages the processes (restarts, graceful reloads, its JSON logs), uvicorn runs
each one's event loop (uvloop, httptools). Chosen over granian and plain uvicorn for gunicorn's mature
process management and the configuration (gunicorn.conf.py) the platform already had.

The platform accepts connections itself. uvloop's libuv (1.52 in uvloop 0.23) accepts one connection per
turn of the loop (libuv pull request 3696): when a process holds hundreds of calls a turn takes a tenth of a
second or more, and new connections waited in the listen queue for up to 30 s (issue 14's note of
2026-11-29). asyncio's own loop accepts them at once but costs 45-60 % more CPU per call. So each process
watches gunicorn's listening sockets, accepts up to ACCEPT_BATCH waiting connections each time one is
readable, and hands each to uvloop's C transports.

    gunicorn platform_site.asgi:application -k platform_site.serving.Worker
"""

import asyncio
import functools
import logging
import socket
import sys

from gunicorn.arbiter import Arbiter
from uvicorn.server import Server as UvicornServer
from uvicorn_worker import UvicornWorker

logger = logging.getLogger(__name__)

# Per readiness of a listening socket. A busy process turns its loop less often, so it takes fewer, and the
# processes sharing the socket balance themselves. With 1,000 connections opened at once, 32 waited on average
# over a 30-s line, against 512 with uvloop accepting one per turn (bench/gateway.py, 2026-11-29).
ACCEPT_BATCH = 64
# Out of file descriptors: the socket stays readable, so stop watching it for a while (as asyncio does).
ACCEPT_RETRY_SECONDS = 1.0


class Acceptor:
    """Accepts on one listening socket; close() and wait_closed() as uvicorn's shutdown expects of a server."""

    def __init__(self, sock: socket.socket, protocol_factory) -> None:
        self.sock = sock
        self.protocol_factory = protocol_factory
        self.loop = asyncio.get_running_loop()
        self.closed = False
        self.starting: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks
        sock.setblocking(False)
        self.loop.add_reader(sock.fileno(), self.accept)

    def accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return  # another process took it, or the client left before it was accepted
            except OSError as exc:  # EMFILE, ENFILE, ENOBUFS, ENOMEM
                logger.error("accept failed, pausing %.0f s: %s", ACCEPT_RETRY_SECONDS, exc)
                self.loop.remove_reader(self.sock.fileno())
                self.loop.call_later(ACCEPT_RETRY_SECONDS, self.resume)
                return
            task = self.loop.create_task(self.serve(conn))
            self.starting.add(task)
            task.add_done_callback(self.starting.discard)

    async def serve(self, conn: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(self.protocol_factory, conn)
        except OSError as exc:  # the connection failed before its transport started
            logger.warning("connection dropped as it was accepted: %s", exc)
            conn.close()

    def resume(self) -> None:
        if not self.closed:
            self.loop.add_reader(self.sock.fileno(), self.accept)

    def close(self) -> None:
        self.closed = True
        self.loop.remove_reader(self.sock.fileno())

    async def wait_closed(self) -> None:
        return None


class Server(UvicornServer):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if sockets is None:  # not under gunicorn
            return await super().startup()
        await super().startup(sockets=[])  # everything but listening
        protocol_factory = functools.partial(
            self.config.http_protocol_class,
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
        self.servers = [Acceptor(sock, protocol_factory) for sock in sockets]


class Worker(UvicornWorker):
    CONFIG_KWARGS = {
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "off",  # Django has nothing to start; platform_site.asgi answers the scope anyway
        "server_header": False,  # the server does not announce itself
        "proxy_headers": False,  # the client address is the socket's: accounts.security applies the proxy rule
        "access_log": False,  # core.correlation writes one line per request, with the request id
    }

    async def _serve(self) -> None:
        """UvicornWorker._serve with the platform's Server."""
        self.config.app = self.wsgi
        server = Server(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
