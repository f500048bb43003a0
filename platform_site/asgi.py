"""The whole site through one ASGI server (gunicorn with uvicorn workers, see platform_site/serving.py).

Calls to the invocation endpoints made with an API key take the gateway path (platform_site.gateway):
Django's ASGI handler with a lean middleware chain that is async from end to end (request id, the API guard,
security headers), so a call crosses no thread on its way in or out. Everything else, and those endpoints called with a session,
goes through the full stack (sessions, CSRF, authentication, messages, lockouts, audit), whose sync
middleware Django runs in threads.
"""

import gc
import os

import django
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "platform_site.settings")
django.setup(set_prefix=False)

from core import tracing  # noqa: E402  (after setup)

tracing.configure("web")  # before the handlers load their middleware (Django's instrumentation adds one)
site = get_asgi_application()

from agents.providers import load_sdks  # noqa: E402  (after setup)
from core.middleware import RequestBodyLimit  # noqa: E402  (after setup)
from monitoring import watchdog  # noqa: E402  (after setup)
from platform_site.gateway import GATEWAY_PATHS, GatewayHandler  # noqa: E402  (after setup)

load_sdks()
watchdog.start()  # alert rounds go on with beat or the workers down

gateway = GatewayHandler()


def _gateway_span(scope) -> tuple[str, dict]:
    """The gateway's server span is named by its route, never by a path with an id in it."""
    route = "/v1/chat/completions" if scope["path"].startswith("/v1/") else "/api/v1/agents/{id}/invoke"
    return f"POST {route}", {"http.route": route}


if tracing.enabled():  # the gateway skips Django's middleware, the instrumentation's included
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    traced_gateway = OpenTelemetryMiddleware(gateway, default_span_details=_gateway_span)
else:
    traced_gateway = gateway


def takes_gateway(scope) -> bool:
    if scope["type"] != "http" or scope["method"] != "POST" or not GATEWAY_PATHS.match(scope["path"]):
        return False
    return any(name == b"authorization" and value[:7].lower() == b"bearer " for name, value in scope["headers"])


async def application(scope, receive, send):
    if scope["type"] == "lifespan":  # Django refuses this scope; there is nothing to start or stop
        while True:
            message = await receive()
            await send({"type": f"{message['type']}.complete"})
            if message["type"] == "lifespan.shutdown":
                return
    elif takes_gateway(scope):
        await traced_gateway(scope, receive, send)
    else:
        await site(scope, receive, send)


# A body past REQUEST_BODY_CEILING_BYTES is refused (413) without being read.
application = RequestBodyLimit(application)

# What is loaded by now lives as long as the process: kept out of the garbage collector's full passes, which
# over its 300,000 objects paused every request for about 200 ms every few seconds under load.
gc.collect()
gc.freeze()
# The youngest generation is collected every 10,000 net allocations instead of 700. A call in flight lives for
# seconds, so at 700 its objects were promoted to the older generations and scanned again and again: with
# 1,000 calls in flight the collector took 24 % of the process's CPU (6 % at 64 calls). At 10,000 it took
# 11-16 %, and the process served 15 % more calls per second (issue 14's note of 2026-11-29, seventh session).
# Since calls leave no reference cycles (platform_site.gateway), young collections are rare at one connection;
# at 1,000 in flight they scan the objects of the calls waiting (eighth session's note).
gc.set_threshold(10_000, 10, 10)
