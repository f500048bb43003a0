"""DRF views served async from end to end: the gateway's endpoints (invoke, and the OpenAI-compatible ones).

DRF's own dispatch is sync; under ASGI Django would run it, and then render its response, in threads.
`AsyncAPIView` keeps DRF's request, parsers, serializers, exception handler, renderers and schema, and
awaits its handler directly: authentication classes that have `authenticate_async` (API keys, read from
the process's cache) and the action policy run on the event loop; a session's authentication, which needs
the database, runs in a thread, which also reads the user's role and permissions for the loop. The rendered answer is handed to Django as a plain
HttpResponse (a DRF Response would be rendered in a thread again).
"""

from django.http import HttpResponse
from rest_framework.response import Response
from rest_framework.views import APIView

from core.async_db import database_sync_to_async


class AsyncAPIView(APIView):
    async def dispatch(self, request, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
        request = self.initialize_request(request, *args, **kwargs)
        self.request = request
        self.headers = self.default_response_headers
        try:
            self.format_kwarg = self.get_format_suffix(**kwargs)
            request.accepted_renderer, request.accepted_media_type = self.perform_content_negotiation(request)
            await self._authenticate(request)
            self.check_permissions(request)
            method = request.method.lower()
            handler = getattr(self, method, None) if method in self.http_method_names else None
            response = await handler(request, *args, **kwargs) if handler else self.http_method_not_allowed(request)
        except Exception as exc:
            response = self.handle_exception(exc)
        response = self.finalize_response(request, response, *args, **kwargs)
        if isinstance(response, Response):
            response = _rendered(response)
        request.parser_context = None  # DRF's request -> itself and this view: a reference cycle (see _rendered)
        return response

    async def _authenticate(self, request) -> None:
        for authenticator in request.authenticators:
            if hasattr(authenticator, "authenticate_async"):
                found = await authenticator.authenticate_async(request)
            else:
                found = await database_sync_to_async(_with_role_and_permissions(authenticator.authenticate))(request)
            if found is not None:
                request._authenticator = authenticator
                request.user, request.auth = found
                return
        request._not_authenticated()


def _with_role_and_permissions(authenticate):
    """A sync authentication whose user also gets its role and permissions read, in the same thread: code
    on the event loop reads them from the user object and must not reach the database for them."""

    def authenticated(request):
        found = authenticate(request)
        if found is not None:
            found[0].role  # noqa: B018  (kept on the user object)
            found[0].get_all_permissions()
        return found

    return authenticated


def _rendered(response: Response) -> HttpResponse:
    """Rendered, and untied: DRF ties a response to itself, its request and its view (renderer_context), as it
    ties the request to itself and the view (parser_context). Left tied, every call leaves about 50 objects
    that only the garbage collector frees, and its full collections grow with them."""
    response.render()
    response.renderer_context = None
    rendered = HttpResponse(response.content, status=response.status_code)
    for name, value in response.items():
        rendered[name] = value
    rendered["Content-Length"] = str(len(response.content))  # the gateway's chain has no CommonMiddleware
    return rendered
