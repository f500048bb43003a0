"""The tracked-task base: every tracked Celery task gets its status, attempts, progress and result written.

    @tracked_task("memory.import")
    def memory_import_task(self, *, namespace_id):
        for n, batch in enumerate(batches):
            self.progress(100 * n // total, f"batch {n}")   # also where a cancellation stops the task
            ...
        return {"imported": count}

Start one from a named service of its app (`memory_import_start(...)`), which calls
`tasks.services.records.task_start(kind=..., owner=..., input={...})`: the record is written at once and the
message is sent when the transaction commits. Delivery is at least once (late
acknowledgement, requeued when the worker process dies); the record makes the effect happen once: a
delivery of a task that already finished or was cancelled is dropped before it runs. A transient domain
error (`core.exceptions`: a provider down or timing out, a service unavailable) or a `TransientError` is
retried with exponential backoff and jitter, a reached limit (`RateLimited`) when the limit resets;
anything else fails the task. Retries, backoff cap and time limits come from TASK_POLICIES per kind.
Each attempt that ends is counted in the metrics by kind and outcome, with its duration (core/metrics.py).
"""

import functools
import time

from celery import Task, shared_task
from celery.exceptions import Ignore, SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import F
from django.db.models.functions import Coalesce, Now
from django.utils import timezone

from core import metrics
from core.exceptions import DomainError, RateLimited
from core.returning import update_returning
from tasks.models import TaskRecord

Status = TaskRecord.Status
KINDS: set[str] = set()  # every tracked kind declared: the metrics' kind labels


class TransientError(Exception):
    """A failure that may pass (a timeout, a 503): the task is retried with backoff."""


class TaskCancelled(Exception):
    """The task's record was cancelled while it ran; raised at its next progress report."""


def task_policy(kind: str) -> dict:
    """Celery options of a kind: the defaults overlaid with TASK_POLICIES[kind]."""
    return {**settings.TASK_DEFAULT_POLICY, **settings.TASK_POLICIES.get(kind, {})}


class TrackedTask(Task):
    abstract = True
    acks_late = True
    reject_on_worker_lost = True
    ignore_result = True  # the TaskRecord holds status and result; the result backend's two writes per task
    autoretry_for = (TransientError,)
    retry_backoff = True
    retry_jitter = True

    def before_start(self, task_id, args, kwargs):
        """Claim the record; a duplicate delivery of a finished or cancelled task stops here."""
        claimed = update_returning(
            TaskRecord.objects.filter(pk=task_id, status__in=TaskRecord.UNFINISHED),
            status=Status.RUNNING,
            attempts=F("attempts") + 1,
            started_at=Coalesce(F("started_at"), Now()),
            updated_at=timezone.now(),
        )
        if not claimed:
            raise Ignore()
        # Which attempt this run is: a late on_retry of an earlier run must not touch a later one.
        self.request.claimed_attempt = claimed[0].attempts
        self.request.metrics_started = time.perf_counter()

    def progress(self, percent: int, message: str = "") -> None:
        updated = TaskRecord.objects.filter(pk=self.request.id, status__in=TaskRecord.UNFINISHED).update(
            progress_percent=max(0, min(100, int(percent))), progress_message=message[:200], updated_at=timezone.now()
        )
        if not updated:
            raise TaskCancelled()

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        # Celery has already sent the retry; if it started, it claimed a higher attempt and this matches nothing.
        TaskRecord.objects.filter(
            pk=task_id, status=Status.RUNNING, attempts=getattr(self.request, "claimed_attempt", -1)
        ).update(status=Status.RETRYING, error=_describe(exc), updated_at=timezone.now())
        self._count("retried")

    def on_success(self, retval, task_id, args, kwargs):
        self._finish(task_id, Status.SUCCEEDED, result=retval, progress_percent=100, error="")
        self._count("succeeded")

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        if isinstance(exc, TaskCancelled):
            self._count("cancelled")
            return  # the cancel service has written the record and told the owner
        self._count("failed")
        error = "Timed out." if isinstance(exc, SoftTimeLimitExceeded) else _describe(exc)
        self._finish(task_id, Status.FAILED, error=error)

    def _count(self, outcome: str) -> None:
        started = getattr(self.request, "metrics_started", None)
        if started is None:  # never claimed (a duplicate delivery, dropped): not an attempt
            return
        kind = metrics.bounded(self.name, KINDS)
        metrics.TASKS.of(kind, outcome).inc()
        metrics.TASK_DURATION.of(kind, outcome).observe(time.perf_counter() - started)

    def _finish(self, task_id, status, **fields):
        from tasks.services.records import task_finished

        task_finished(task_id=task_id, status=status, **fields)


def _describe(exc: BaseException) -> str:
    """What the owner reads of a failure: a validation error's messages in words, else the error's type and text."""
    if isinstance(exc, ValidationError):
        return "\n".join(exc.messages)[:2000]
    return f"{exc.__class__.__name__}: {exc}"[:2000]


def tracked_task(kind: str, **options):
    """Declare a tracked Celery task named `kind`, bound (its first argument is the task)."""

    KINDS.add(kind)

    def declare(function):
        @functools.wraps(function)
        def run(self, *args, **kwargs):
            try:
                return function(self, *args, **kwargs)
            except RateLimited as error:  # a limit: try again once it resets
                raise self.retry(countdown=error.retry_after, exc=error) from error
            except DomainError as error:
                if error.transient:
                    raise TransientError(str(error)) from error
                raise

        return shared_task(base=TrackedTask, bind=True, name=kind, **{**task_policy(kind), **options})(run)

    return declare
