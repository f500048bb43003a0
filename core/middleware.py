"""What guards every request before and after its view: the API's early refusals and generic 500, the security
headers Django has no setting for, and the bound on request bodies that the ASGI server applies before Django
reads them."""

import asyncio

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.middleware.security import SecurityMiddleware
from django.urls import get_resolver, get_urlconf

from core.api_errors import BodyTooLarge, error_response

API_PREFIXES = ("/api/", "/v1/")  # the native API and the OpenAI-compatible one: JSON errors only
BODY_TOO_LARGE = "switchboard.body_too_large"  # set in the ASGI scope by RequestBodyLimit


class ApiRequestGuard:
    """Before the view: a NUL in the query string (PostgreSQL cannot store or compare one) is a 400 under
    /api/, and a body the ASGI server refused to read fails as too large wherever it is read.
    After it: a 500 under the APIs that is not JSON (Django's debug page with DEBUG on, an error page) becomes
    the site's JSON 500 with the request id; the error was logged once already, where it happened."""

    sync_capable = async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        refusal = _refusal(request)
        if refusal:
            return refusal
        return _generic_500(request, self.get_response(request))

    async def _acall(self, request):
        refusal = _refusal(request)
        if refusal:
            return refusal
        return _generic_500(request, await self.get_response(request))


def _refusal(request):
    if request.path.startswith("/api/") and _has_nul(request.GET):
        return error_response(status=400, code="invalid", detail="The query string contains a NUL character.")
    if getattr(request, "scope", {}).get(BODY_TOO_LARGE):
        # Whatever reads the body (a DRF parser, request.POST, request.body) gets RequestDataTooBig, which the
        # API's handlers answer 413 in their own shape and Django's form handling answers 400.
        request.META["CONTENT_LENGTH"] = str(max(_declared_length(request), settings.REQUEST_BODY_CEILING_BYTES + 1))
        request._stream = _UnreadBody()
    return None


def _declared_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


class _UnreadBody:
    """The stream of a body that was not read: any read of it fails as Django fails a body over its limit."""

    def read(self, *args, **kwargs):
        raise BodyTooLarge(f"The request body is larger than {settings.REQUEST_BODY_CEILING_BYTES} bytes.")

    readline = read

    def close(self):
        pass


def _has_nul(query) -> bool:
    return any("\x00" in name or any("\x00" in value for value in values) for name, values in query.lists())


def _generic_500(request, response):
    if (
        response.status_code == 500
        and request.path.startswith(API_PREFIXES)
        and not response.get("Content-Type", "").startswith("application/json")
    ):
        generic = get_resolver(get_urlconf()).resolve_error_handler(500)(request)
        generic._has_been_logged = getattr(response, "_has_been_logged", False)  # Django logs a 500 once
        for header, value in response.items():  # the security headers the inner middleware set
            if header.lower() not in ("content-type", "content-length"):
                generic.headers.setdefault(header, value)
        return generic
    return response


class PermissionsPolicyMiddleware:
    """The Permissions-Policy header (settings.PERMISSIONS_POLICY): browser features no page of ours uses
    (camera, microphone, geolocation, payment, usb...) are turned off, for our pages and anything they embed."""

    sync_capable = async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.policy = settings.PERMISSIONS_POLICY
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        response = self.get_response(request)
        response.headers.setdefault("Permissions-Policy", self.policy)
        return response

    async def _acall(self, request):
        response = await self.get_response(request)
        response.headers.setdefault("Permissions-Policy", self.policy)
        return response


class AsyncSecurityMiddleware(SecurityMiddleware):
    """Django's security middleware (HTTPS redirect, HSTS, nosniff, referrer policy) for an async chain,
    calling its hooks directly: they do no I/O, so the thread Django would run them in is not needed."""

    sync_capable, async_capable = False, True

    async def __acall__(self, request):
        response = self.process_request(request)
        if response is None:
            response = await self.get_response(request)
        return self.process_response(request, response)


class RequestBodyLimit:
    """ASGI, in front of Django (platform_site.asgi): a body larger than REQUEST_BODY_CEILING_BYTES is never
    read. Django's ASGI handler reads a whole body (to a temporary file past 2.5 MB) before any middleware or
    view sees it, so a 50 MB upload would be received and written in full only to be refused. Here a declared
    Content-Length over the ceiling is not read at all, and a body sent without one (chunked) stops being read
    at the ceiling; Django then gets an empty body and the scope flag BODY_TOO_LARGE, and ApiRequestGuard
    makes any read of it fail as too large (413 in the API's shape, in OpenAI's under /v1/)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        ceiling = settings.REQUEST_BODY_CEILING_BYTES
        declared = _content_length(scope)
        scope = dict(scope)
        if declared is not None and declared > ceiling:
            scope[BODY_TOO_LARGE] = True
            return await self.app(scope, _without_body(receive), send)
        return await self.app(scope, _bounded(receive, scope, ceiling), send)


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _without_body(receive):
    """A receive that reports an empty body and then nothing more: the body is left unread (after the answer
    the server discards what still arrives, or the client, told 413, stops sending)."""
    answered = False

    async def receive_nothing():
        nonlocal answered
        if answered:
            return await _cancelled()
        answered = True
        return {"type": "http.request", "body": b"", "more_body": False}

    return receive_nothing


def _bounded(receive, scope, ceiling):
    """A receive that passes the body on until it passes the ceiling, then ends it there, empty and flagged."""
    received, cut = 0, False

    async def receive_bounded():
        nonlocal received, cut
        if cut:
            return await _cancelled()
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > ceiling:
                scope[BODY_TOO_LARGE] = cut = True
                return {"type": "http.request", "body": b"", "more_body": False}
        return message

    return receive_bounded


async def _cancelled():
    """What Django's wait for a disconnect gets once a body is cut short: nothing, until it is cancelled when
    the answer has been sent (the rest of the body is never read here)."""
    await asyncio.Event().wait()
