"""Requests to /api/ that no view could store or answer safely get the API's JSON error at once, and the
security headers for the gateway's lean chain."""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.middleware.security import SecurityMiddleware

from core.api_errors import error_response


class ApiRequestGuard:
    """A NUL in the query string (PostgreSQL cannot store or compare one) is a 400 under /api/."""

    sync_capable = async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        return _refusal(request) or self.get_response(request)

    async def _acall(self, request):
        return _refusal(request) or await self.get_response(request)


def _refusal(request):
    if request.path.startswith("/api/") and _has_nul(request.GET):
        return error_response(status=400, code="invalid", detail="The query string contains a NUL character.")
    return None


def _has_nul(query) -> bool:
    return any("\x00" in name or any("\x00" in value for value in values) for name, values in query.lists())


class AsyncSecurityMiddleware(SecurityMiddleware):
    """Django's security middleware (HTTPS redirect, HSTS, nosniff, referrer policy) for an async chain,
    calling its hooks directly: they do no I/O, so the thread Django would run them in is not needed."""

    sync_capable, async_capable = False, True

    async def __acall__(self, request):
        response = self.process_request(request)
        if response is None:
            response = await self.get_response(request)
        return self.process_response(request, response)
