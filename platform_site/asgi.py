"""The whole site through one ASGI server (gunicorn with uvicorn workers, see platform_site/serving.py).

Calls to the invocation endpoints made with an API key take the gateway path: Django's ASGI handler with a
lean middleware chain that is async from end to end (request id, the API guard, security headers), so a
call crosses no thread on its way in or out. Everything else, and those endpoints called with a session,
goes through the full stack (sessions, CSRF, authentication, messages, lockouts, audit), whose sync
middleware Django runs in threads.
"""

import asyncio
import gc
import os
import re

import django
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.urls import URLResolver, include, path, set_script_prefix
from django.urls.resolvers import RegexPattern
from django.utils.module_loading import import_string

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "platform_site.settings")
django.setup(set_prefix=False)

from core import tracing  # noqa: E402  (after setup)

tracing.configure("web")  # before the handlers load their middleware (Django's instrumentation adds one)
site = get_asgi_application()

from agents.providers import load_sdks  # noqa: E402  (after setup)
from core.middleware import RequestBodyLimit  # noqa: E402  (after setup)
from monitoring import watchdog  # noqa: E402  (after setup)

load_sdks()
watchdog.start()  # alert rounds go on with beat or the workers down

GATEWAY_PATHS = re.compile(r"^/(api/v1/agents/\d+/invoke|v1/chat/completions)$")


class GatewayHandler(ASGIHandler):
    """Django's ASGI handler with GATEWAY_MIDDLEWARE, each of them async: no thread per layer; and without
    what costs a thread per request: no thread-sensitive context (nothing on this path runs in a request's
    own thread: database work goes to core.async_db's threads) and no request_started / request_finished
    signals (their receivers look after the database connections of request threads, of which there are
    none). A client that goes away cancels the view, as Django does."""

    def resolve_request(self, request):
        """Against the gateway's routes alone (the whole site's cost a call 4 %); reverse() keeps the site's."""
        request.resolver_match = GATEWAY_ROUTES.resolve(request.path_info)
        return request.resolver_match

    def load_middleware(self, is_async=False):
        self._view_middleware, self._template_response_middleware, self._exception_middleware = [], [], []
        handler = convert_exception_to_response(self._get_response_async)
        for dotted in reversed(settings.GATEWAY_MIDDLEWARE):
            handler = convert_exception_to_response(import_string(dotted)(handler))
        self._middleware_chain = handler

    async def __call__(self, scope, receive, send):
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            return
        serving = asyncio.create_task(self._serve(request, send))
        watching = asyncio.create_task(self.listen_for_disconnect(receive))
        await asyncio.wait([serving, watching], return_when=asyncio.FIRST_COMPLETED)
        for task in (watching, serving):  # the listener first: a disconnect cancels the view
            if not task.done():
                task.cancel()
            try:
                await task
            except (asyncio.CancelledError, RequestAborted):
                pass
        body_file.close()

    async def _serve(self, request, send) -> None:
        response = await self.run_get_response(request)
        try:
            await self.send_response(response, send)
        except asyncio.CancelledError:  # the client went away while it was sent
            pass
        finally:
            for close in response._resource_closers:  # what response.close() does, less the signal
                close()


def _gateway_routes() -> URLResolver:
    """The invocation routes as platform_site.urls mounts them, and nothing else."""
    from agents.openai_api.urls import urlpatterns as openai_urlpatterns
    from agents.urls import api_urlpatterns

    invoke = [route for route in api_urlpatterns if getattr(route, "name", None) == "agent-invoke"]
    chat = [route for route in openai_urlpatterns if getattr(route, "name", None) == "openai-chat-completions"]
    return URLResolver(RegexPattern(r"^/"), [path("api/v1/", include(invoke)), path("v1/", include(chat))])


GATEWAY_ROUTES = _gateway_routes()
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
# 11-16 %, and the process served 15 % more calls per second. At one connection a call's median is unchanged;
# a hit's p99 went from 4 to 6 ms: a young collection (about 5 ms) falls on one request in 120 (issue 14's
# note of 2026-11-29).
gc.set_threshold(10_000, 10, 10)
