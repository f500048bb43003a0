from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views import csrf, defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from agents.openai_api.shapes import error_body
from core.api_errors import error_response
from platform_site.health import readiness
from tasks.selectors import webhook_endpoints_disabled


@login_required
def dashboard(request):
    return render(request, "dashboard.html", {"disabled_endpoints": webhook_endpoints_disabled(user=request.user)})


@login_required
@never_cache
def status(request):
    """/readyz for people: each dependency, the beat heartbeat and the run backlog, in words."""
    return render(request, "status.html", {"ready": readiness()})


@csrf_exempt  # nothing is done here, and a 403 page would hide the 404
def api_not_found(request, *args, **kwargs):
    """Any /api/ path no route matches: the API's JSON 404, never an HTML page."""
    return error_response(status=404, code="not_found", detail="No API endpoint at this path.")


def csrf_failure(request, reason=""):
    """A form posted without its CSRF token: JSON under /api/ (the API's own views check sessions' tokens)."""
    if request.path.startswith("/api/"):
        return error_response(status=403, code="permission_denied", detail=f"CSRF check failed: {reason}")
    return csrf.csrf_failure(request, reason)


def server_error(request):
    """An error no view handled: JSON under /api/ (the request id is in the body and the log) and, in
    OpenAI's shape, under /v1/; a page elsewhere."""
    if request.path.startswith("/api/"):
        return error_response(status=500, code="error", detail="Server Error (500)")
    if request.path.startswith("/v1/"):
        return JsonResponse(error_body(500, "Server Error (500)", code="server_error"), status=500)
    return defaults.server_error(request)
