"""The gateway path's handler: Django's ASGI handler for API-key calls to the invocation endpoints (see
platform_site.asgi, which routes them here), with a lean middleware chain that is async from end to end."""

import asyncio
import re

from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.urls import URLResolver, include, path, set_script_prefix
from django.urls.resolvers import RegexPattern
from django.utils.module_loading import import_string

# The paths platform_site.asgi sends here (with an API key); GATEWAY_ROUTES below resolves the same two.
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
        watching.cancel()  # the response is sent,
        serving.cancel()  # or the client went away: the view is cancelled
        await asyncio.wait([serving, watching])
        body_file.close()
        # The outcomes are read, not raised through this frame: a traceback of it would hold the whole request in
        # a reference cycle (this frame, a task, its exception, the traceback), about 90 objects per call left
        # to the garbage collector.
        if not watching.cancelled():
            watching.exception()  # RequestAborted: the client went away, or the response is complete
        error = None if serving.cancelled() else serving.exception()
        if error is not None and not isinstance(error, RequestAborted):
            raise error

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
