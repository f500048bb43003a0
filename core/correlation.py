"""Correlation ids: one request id per request, carried into logs and into the Celery tasks it starts.

The id comes from a well-formed `X-Request-ID` header or is generated, is returned in the response header,
is added to every log record (with the user id once known) by `RequestContextFilter`, and travels to
Celery tasks as a message header, where the worker restores it before the task runs.

The same middleware, outermost on both chains (MIDDLEWARE and the gateway's GATEWAY_MIDDLEWARE), counts
every request in the HTTP metrics (core/metrics.py) by method, route template and status.
"""

import logging
import re
import time
import uuid
from contextvars import ContextVar

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from celery.signals import before_task_publish, task_postrun, task_prerun
from rest_framework import authentication

from core import metrics, tracing

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
user_id_var: ContextVar[int | None] = ContextVar("user_id", default=None)
task_id_var: ContextVar[str | None] = ContextVar("task_id", default=None)

REQUEST_ID_HEADER = "X-Request-ID"
# Accept a caller's id only if it is plain: anything else could forge or break log lines.
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

access_log = logging.getLogger("switchboard.access")


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return request_id_var.get()


class RequestContextFilter(logging.Filter):
    """Adds request_id, user_id and task_id (and, when tracing, trace_id and span_id) to every record so
    the JSON formatter emits them."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.user_id = user_id_var.get()
        record.task_id = task_id_var.get()
        if tracing.enabled():
            record.trace_id, record.span_id = tracing.current_ids()
        return True


class RequestIdMiddleware:
    """Outermost middleware: binds the request id for the whole request and writes one access-log line.
    Sync or async as the chain is, so an async request crosses no thread here."""

    sync_capable = async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        tokens, started = _begin(request)
        try:
            return _end(request, self.get_response(request), started)
        finally:
            _unbind(tokens)

    async def _acall(self, request):
        tokens, started = _begin(request)
        try:
            return _end(request, await self.get_response(request), started)
        finally:
            _unbind(tokens)

    def process_view(self, request, view_func, view_args, view_kwargs):
        # Runs after AuthenticationMiddleware: the session user is known here (API keys bind theirs in
        # their authentication class).
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            user_id_var.set(user.pk)


def _begin(request):
    supplied = request.headers.get(REQUEST_ID_HEADER, "")
    request.request_id = supplied if VALID_REQUEST_ID.match(supplied) else new_request_id()
    metrics.http_in_flight().inc()
    return (request_id_var.set(request.request_id), user_id_var.set(None)), time.perf_counter()


def _end(request, response, started):
    response[REQUEST_ID_HEADER] = request.request_id
    seconds = time.perf_counter() - started
    method = metrics.bounded(request.method, metrics.METHODS)
    route = route_of(request)
    status = response.status_code
    metrics.HTTP_REQUESTS.of(method, route, str(status)).inc()
    metrics.HTTP_DURATION.of(method, route, f"{status // 100}xx").observe(seconds)
    access_log.info(
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round(seconds * 1000, 2),
        },
    )
    return response


_routes: dict[str, str] = {}  # the resolver's route -> its label: as many as the URL configuration has


def route_of(request) -> str:
    """The route template the request matched (`api/v1/agents/<str:pk>/invoke`), `other` when none did."""
    match = getattr(request, "resolver_match", None)
    if match is None or match.route is None:
        return metrics.OTHER
    label = _routes.get(match.route)
    if label is None:
        label = _routes[match.route] = match.route.replace("^", "").replace("$", "") or "/"
    return label


def _unbind(tokens):
    metrics.http_in_flight().dec()
    request_token, user_token = tokens
    user_id_var.reset(user_token)
    request_id_var.reset(request_token)


class SessionAuthentication(authentication.SessionAuthentication):
    """DRF's session authentication that also binds the user id for the logs."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is not None:
            user_id_var.set(result[0].pk)
        return result


@before_task_publish.connect
def _attach_request_id(headers=None, **_):
    request_id = request_id_var.get()
    if headers is not None and request_id and "request_id" not in headers:
        headers["request_id"] = request_id


@task_prerun.connect
def _bind_task_context(task_id=None, task=None, **_):
    request_id_var.set(getattr(task.request, "request_id", None))
    task_id_var.set(task_id)


@task_postrun.connect
def _unbind_task_context(**_):
    request_id_var.set(None)
    task_id_var.set(None)
