"""The ASGI server: gunicorn manages the processes (restarts, graceful reloads, its JSON logs), uvicorn runs
each one's event loop (uvloop, httptools). Chosen over granian and plain uvicorn for gunicorn's mature
process management and the configuration (gunicorn.conf.py) the platform already had.

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
