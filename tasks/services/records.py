"""Tracked task records: started here, written by the tracked-task base (tasks.tracked) as they run."""

import logging
import threading
from datetime import timedelta

from celery import current_app
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.correlation import current_request_id
from core.exceptions import Conflict
from core.returning import update_returning
from tasks.broker import send_on_commit, send_quietly
from tasks.models import TaskRecord
from tasks.services.webhooks import PING_TASK, webhooks_emit

logger = logging.getLogger("switchboard.tasks")
Status = TaskRecord.Status


def task_start(
    *, kind: str, owner=None, input: dict | None = None, idempotency_key: str = ""
) -> tuple[TaskRecord, bool]:
    """Record a task and send it once the surrounding transaction commits.

    With an idempotency key, asking again (same owner, kind and key) returns the first record and sends
    nothing: (record, created).
    """
    _tracked_task(kind)  # fails early for an unknown kind
    input = input or {}
    if idempotency_key:
        existing = TaskRecord.objects.filter(owner=owner, kind=kind, idempotency_key=idempotency_key).first()
        if existing:
            return existing, False
    try:
        with transaction.atomic():
            record = TaskRecord.objects.create(
                kind=kind,
                owner=owner,
                input=input,
                idempotency_key=idempotency_key,
                request_id=current_request_id() or "",
            )
    except IntegrityError:  # the same key, asked at the same moment
        return TaskRecord.objects.get(owner=owner, kind=kind, idempotency_key=idempotency_key), False
    _send_on_commit(record)
    return record, True


def _tracked_task(kind: str):
    """The Celery task of a kind. Web processes import the apps' task modules on first use (workers at start),
    once, under a lock: threads starting tasks at the same moment would see a module half imported."""
    if kind not in current_app.tasks:
        with _importing_tasks:
            current_app.loader.import_default_modules()
    if kind not in current_app.tasks:
        raise ValueError(f"no tracked task named {kind!r}")
    return current_app.tasks[kind]


_importing_tasks = threading.Lock()


def _send_on_commit(record: TaskRecord) -> None:
    send_on_commit(_tracked_task(record.kind), kwargs=record.input, task_id=str(record.id))


def tasks_resend_queued(*, older_than: timedelta = timedelta(minutes=2)) -> int:
    """Beat job: send again tasks still queued long after they were started (their message may be lost).

    Safe because a delivery of a task that has started or finished is dropped by the claim.
    """
    cutoff = timezone.now() - older_than
    stale = list(TaskRecord.objects.filter(status=Status.QUEUED, created_at__lt=cutoff, updated_at__lt=cutoff)[:500])
    for record in stale:
        TaskRecord.objects.filter(pk=record.pk).update(updated_at=timezone.now())
        send_quietly(_tracked_task(record.kind), kwargs=record.input, task_id=str(record.id))
    return len(stale)


def task_finished(*, task_id, status: str, **fields) -> None:
    """Called by the tracked-task base when a run ends; tells the owner's webhooks."""
    finished = update_returning(
        TaskRecord.objects.filter(pk=task_id, status__in=TaskRecord.UNFINISHED),
        status=status,
        finished_at=timezone.now(),
        **fields,
    )
    for record in finished:
        logger.info("task %s %s", record.kind, status, extra={"task_record": str(record.id), "status": status})
        _notify(record)


def task_cancel(*, record: TaskRecord, actor) -> TaskRecord:
    """Cancel a queued or running task: a queued one never starts, a running one stops at its next progress."""
    updated = TaskRecord.objects.filter(pk=record.pk, status__in=TaskRecord.UNFINISHED).update(
        status=Status.CANCELLED, finished_at=timezone.now(), cancelled_by=actor, updated_at=timezone.now()
    )
    if not updated:
        record.refresh_from_db()
        raise Conflict(f"This task has already {record.status}.")
    current_app.control.revoke(str(record.pk))
    record.refresh_from_db()
    logger.info("task %s cancelled", record.kind, extra={"task_record": str(record.id)})
    _notify(record)
    return record


@transaction.atomic
def task_retry(*, record: TaskRecord) -> TaskRecord:
    """Run a failed task again, from the start, under the same id (operators, from the admin)."""
    updated = TaskRecord.objects.filter(pk=record.pk, status=Status.FAILED).update(
        status=Status.QUEUED, error="", result=None, finished_at=None, progress_percent=0, progress_message=""
    )
    if not updated:
        raise Conflict("Only a failed task can be retried.")
    record.refresh_from_db()
    _send_on_commit(record)
    return record


def _notify(record: TaskRecord) -> None:
    """Tell the owner's endpoints that a task ended; a test event's own task stays silent (it sends the
    `webhook.ping` it was asked for and nothing else)."""
    if record.owner_id is None or record.kind == PING_TASK:
        return
    from tasks.serializers import TaskRecordSerializer

    webhooks_emit(
        owner_id=record.owner_id, event_type=f"task.{record.status}", data=lambda: TaskRecordSerializer(record).data
    )
