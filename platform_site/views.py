from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import RequestDataTooBig
from django.db.models import Q
from django.http import JsonResponse
from django.shortcuts import render
from django.views import csrf, defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from agents.openai_api.shapes import error_body
from agents.selectors import agent_type_list, run_list
from core.api_errors import BodyTooLarge, error_response
from platform_site.health import readiness
from quotas import selectors as quota_selectors
from tasks.models import TaskRecord
from tasks.selectors import task_list, webhook_endpoint_list, webhook_endpoints_disabled


@login_required
@never_cache
def dashboard(request):
    """The user's home: usage today and this month (live from the ledger), each budget that applies to them,
    their last runs, their unfinished tasks and their failing webhook endpoints."""
    user = request.user
    type_limits = dict(agent_type_list().filter(tokens_per_day__isnull=False).values_list("slug", "tokens_per_day"))
    budgets = quota_selectors.user_budget_usage(user=user, type_limits=type_limits)
    failing = webhook_endpoint_list(user=user).filter(
        Q(consecutive_failures__gt=0) | Q(is_active=False, disabled_at__isnull=False)
    )
    context = {
        "totals": quota_selectors.usage_totals(user=user),
        "budgets": [(use, quota_selectors.budget_title(use)) for use in budgets],
        "runs": run_list(user=user)[:5],
        "open_tasks": task_list(user=user).filter(status__in=TaskRecord.UNFINISHED)[:5],
        "failing_endpoints": failing.exclude(disabled_reason="Disabled by you."),
        "disabled_endpoints": webhook_endpoints_disabled(user=user),
    }
    return render(request, "dashboard.html", context)


@login_required
@never_cache
def status(request):
    """/readyz for people, in words: each dependency, beat, a worker per queue and the run backlog."""
    ready = readiness()
    heartbeats = [("scheduler (beat)", ready["beat"])]
    heartbeats += [(f"worker for the {queue} queue", seen) for queue, seen in ready["workers"].items()]
    return render(request, "status.html", {"ready": ready, "heartbeats": heartbeats})


@csrf_exempt  # nothing is done here, and a 403 page would hide the 404
def api_not_found(request, *args, **kwargs):
    """Any /api/ path no route matches: the API's JSON 404, never an HTML page."""
    return error_response(status=404, code="not_found", detail="No API endpoint at this path.")


def bad_request(request, exception):
    """A request refused before its view. A body too large for the browser's forms (a file over the server's
    ceiling, or form fields over REQUEST_MAX_BYTES) is a 413 page that says what the limit is."""
    if not isinstance(exception, RequestDataTooBig):
        return defaults.bad_request(request, exception)
    whole = isinstance(exception, BodyTooLarge)
    limit = settings.REQUEST_BODY_CEILING_BYTES if whole else settings.REQUEST_MAX_BYTES
    context = {"what": "The upload" if whole else "The form's fields", "limit_mib": f"{limit / 2**20:g}"}
    return render(request, "413.html", context, status=413)


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
