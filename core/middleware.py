"""Requests to /api/ that no view could store or answer safely get the API's JSON error at once."""

from core.api_errors import error_response


class ApiRequestGuard:
    """A NUL in the query string (PostgreSQL cannot store or compare one) is a 400 under /api/."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/") and _has_nul(request.GET):
            return error_response(status=400, code="invalid", detail="The query string contains a NUL character.")
        return self.get_response(request)


def _has_nul(query) -> bool:
    return any("\x00" in name or any("\x00" in value for value in values) for name, values in query.lists())
