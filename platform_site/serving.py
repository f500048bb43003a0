"""The ASGI server: gunicorn manages the processes (restarts, graceful reloads, its JSON logs), uvicorn runs
each one's event loop (asyncio's, httptools). Chosen over granian and plain uvicorn for gunicorn's mature
process management and the configuration (gunicorn.conf.py) the platform already had.

The loop is asyncio's, taking at most ACCEPTS_PER_TURN waiting connections each time the listening socket is
ready. uvloop's libuv (1.52 in uvloop 0.23) takes one per turn of the loop (libuv pull request 3696), and a
turn of a busy process takes a tenth of a second or more: with a thousand calls in flight, 600 new
connections waited up to 30 s to be accepted before their requests were even read. asyncio alone takes the
whole backlog at once: a busy process could take a burst of a thousand in one turn while the others idle.
(Idle processes are woken in the same order every time, so a small burst still tends to go to one of them.)

    gunicorn platform_site.asgi:application -k platform_site.serving.Worker
"""

import asyncio

from uvicorn_worker import UvicornWorker

ACCEPTS_PER_TURN = 64


class EventLoop(asyncio.SelectorEventLoop):
    def _accept_connection(self, protocol_factory, sock, sslcontext=None, server=None, backlog=100, *rest):
        """asyncio calls this once per turn in which the listening socket is ready, to accept up to `backlog`
        connections (the listen queue's length: 2048)."""
        super()._accept_connection(protocol_factory, sock, sslcontext, server, min(backlog, ACCEPTS_PER_TURN), *rest)


class Worker(UvicornWorker):
    CONFIG_KWARGS = {
        "loop": "platform_site.serving:EventLoop",
        "http": "httptools",
        "lifespan": "off",  # Django has nothing to start; platform_site.asgi answers the scope anyway
        "server_header": False,  # the server does not announce itself
        "proxy_headers": False,  # the client address is the socket's: accounts.security applies the proxy rule
        "access_log": False,  # core.correlation writes one line per request, with the request id
    }
