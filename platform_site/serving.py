"""The ASGI server: gunicorn manages the processes (restarts, graceful reloads, its JSON logs), uvicorn runs
each one's event loop (uvloop, httptools). Chosen over granian and plain uvicorn for gunicorn's mature
process management and the configuration (gunicorn.conf.py) the platform already had.

uvloop's libuv (1.52 in uvloop 0.23) accepts one connection per turn of the loop (libuv pull request 3696).
When a process is saturated a turn takes a tenth of a second or more, and new connections wait in the listen
queue meanwhile (bench/gateway.py shows how many). asyncio's own loop accepts them at once, but cost 45-60 %
more CPU per call with 1,000 calls in flight (issue 14's note of 2026-11-29).

    gunicorn platform_site.asgi:application -k platform_site.serving.Worker
"""

from uvicorn_worker import UvicornWorker


class Worker(UvicornWorker):
    CONFIG_KWARGS = {
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "off",  # Django has nothing to start; platform_site.asgi answers the scope anyway
        "server_header": False,  # the server does not announce itself
        "proxy_headers": False,  # the client address is the socket's: accounts.security applies the proxy rule
        "access_log": False,  # core.correlation writes one line per request, with the request id
    }
