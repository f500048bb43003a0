"""The reaper (a beat job): steps whose lease ran out are queued again, waiting steps whose time came are
woken. A queued step's lease covers the wait in the broker; a running step's is renewed by its worker, so
it runs out only when that worker is gone."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from workflows.engine.execution import step_wake
from workflows.engine.scheduling import Status, after_step, close_step, lock_run, record, send_step
from workflows.models import StepRun

LOST = "Its worker was lost too many times; the step was given up."


def steps_reap(*, limit: int = 500) -> dict:
    now = timezone.now()
    expired = list(
        StepRun.objects.filter(status__in=[Status.QUEUED, Status.RUNNING], lease_until__lt=now).order_by("lease_until")[
            :limit
        ]
    )
    for step in expired:
        _requeue(step)
    due = list(StepRun.objects.filter(status=Status.WAITING, wake_at__lte=now).values_list("pk", flat=True)[:limit])
    for step_id in due:
        step_wake(step_id=step_id)
    return {"requeued": len(expired), "woken": len(due)}


@transaction.atomic
def _requeue(step: StepRun) -> None:
    run = lock_run(step.run_id)
    now = timezone.now()
    if step.status == Status.RUNNING and step.claim >= settings.WORKFLOW_MAX_CLAIMS:
        # lost again and again: a step that kills its worker, or whose outcome cannot be recorded
        step.run = run
        if close_step(step, Status.FAILED, from_status=[Status.RUNNING], claim=step.claim, error=LOST):
            after_step(run, step)
        return
    lease = now + timedelta(seconds=settings.WORKFLOW_QUEUE_LEASE_SECONDS)
    if StepRun.objects.filter(pk=step.pk, status=step.status, claim=step.claim, lease_until__lt=now).update(
        status=Status.QUEUED, lease_until=lease, queued_at=now
    ):
        if step.status == Status.RUNNING:
            record(run, "step.reaped", step=step.key, attempt=step.attempt)
        send_step(step)
