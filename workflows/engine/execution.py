"""A worker takes a step, runs its kind and records the outcome; waiting steps resume from here too.

Taking a step is a claim: queued -> running with the claim number bumped, in one conditional UPDATE. The
outcome is recorded only under that claim, so a copy of the task (a redelivery, a re-send by the reaper)
finds nothing to claim, and a worker that lost its step to the reaper records nothing. While a worker runs
a step, a thread of its process renews the step's lease; when the process dies the lease runs out and the
reaper queues the step again (the same attempt: an agent step's run is found by its idempotency key).
"""

import contextlib
import logging
import threading
import time
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Now
from django.utils import timezone

from workflows import expressions
from workflows.engine import kinds, telemetry
from workflows.engine.definitions import specs_of
from workflows.engine.scheduling import (
    Status,
    after_step,
    charge,
    children_progress,
    close_step,
    lock_run,
    record,
    send_step,
)
from workflows.models import StepRun, WorkflowRun

logger = logging.getLogger("switchboard.workflows")


def step_execute(*, step_id: int, attempt: int) -> None:
    lease = timezone.now() + timedelta(seconds=settings.WORKFLOW_STEP_LEASE_SECONDS)
    if not StepRun.objects.filter(pk=step_id, status=Status.QUEUED, attempt=attempt).update(
        status=Status.RUNNING, claim=F("claim") + 1, started_at=Coalesce(F("started_at"), Now()), lease_until=lease
    ):
        return  # a copy of a task already taken, or a step cancelled meanwhile
    step = StepRun.objects.select_related("run__owner", "run__workflow", "run__version").get(pk=step_id)
    run = step.run
    spec = specs_of(run)[step.step_id]
    record(run, "step.started", step=step.key, attempt=step.attempt)
    with held_lease(step), telemetry.step_span(step, run):
        try:
            outcome = kinds.execute(step, spec, run)
        except kinds.StepError as error:
            return step_failed(step, str(error), retry=error.retry, delay=error.delay)
        except expressions.ExpressionError as error:
            return step_failed(step, str(error), retry=False)
        except Exception as error:  # a bug or a dependency down: worth another attempt if the step allows one
            logger.exception("workflow step raised", extra={"run": str(run.pk), "step": step.key})
            return step_failed(step, f"{error.__class__.__name__}: {error}", retry=True)
    # Not caught: a step whose outcome could not be recorded stays running, and once its lease runs out the
    # reaper queues the same attempt again (an agent step finds its recorded run, and is not charged twice).
    _record(step, outcome)


def _record(step: StepRun, outcome) -> None:
    if isinstance(outcome, kinds.Wait):
        step_waits(step, outcome)
    elif isinstance(outcome, kinds.Skip):
        _finish(step, Status.SKIPPED, error=outcome.reason)
    else:
        _finish(
            step,
            Status.SUCCEEDED,
            output=outcome.output,
            input=outcome.input,
            tokens=outcome.tokens,
            cost=outcome.cost,
            agent_run_id=outcome.agent_run_id,
        )


def _finish(step: StepRun, status: str, *, tokens: int = 0, cost=0, **fields) -> None:
    """One transaction: the step's outcome under its claim, the run's totals, and what comes next."""
    with transaction.atomic():
        run = lock_run(step.run_id)
        step.run = run
        if close_step(step, status, from_status=[Status.RUNNING], claim=step.claim, tokens=tokens, cost=cost, **fields):
            charge(run, tokens, cost)
            after_step(run, step)


def step_failed(step: StepRun, error: str, *, retry: bool, delay: float = 0) -> None:
    """Another attempt after the step's backoff, if it may retry and has attempts left; else it failed."""
    policy = specs_of(step.run)[step.step_id]["retries"]
    if retry and step.attempt <= policy["max"]:
        wait = max(delay, min(policy["backoff"] * policy["factor"] ** (step.attempt - 1), policy["max_delay"]))
        with transaction.atomic():
            run = lock_run(step.run_id)
            now = timezone.now()
            lease = now + timedelta(seconds=settings.WORKFLOW_QUEUE_LEASE_SECONDS + wait)
            retried = StepRun.objects.filter(pk=step.pk, status=Status.RUNNING, claim=step.claim).update(
                status=Status.QUEUED, attempt=F("attempt") + 1, error=error[:2000], queued_at=now, lease_until=lease
            )
            if retried and run.status == WorkflowRun.Status.RUNNING:
                step.attempt += 1
                record(run, "step.retrying", step=step.key, error=error[:2000], attempt=step.attempt, delay=wait)
                send_step(step, countdown=wait)
        return
    _finish(step, Status.FAILED, error=error[:2000])


def step_waits(step: StepRun, outcome: kinds.Wait) -> None:
    with transaction.atomic():
        run = lock_run(step.run_id)
        step.run = run
        if not StepRun.objects.filter(pk=step.pk, status=Status.RUNNING, claim=step.claim).update(
            status=Status.WAITING, lease_until=None, wake_at=outcome.wake_at, input=outcome.input
        ):
            return
        step.status, step.wake_at = Status.WAITING, outcome.wake_at
        record(run, "step.waiting", step=step.key)
        if outcome.children:
            StepRun.objects.bulk_create(StepRun(run=run, parent=step, **child) for child in outcome.children)
            children_progress(run, step)
        if outcome.then is not None:
            outcome.then(step, run)
    if outcome.wake_at is not None:
        wake_later(step, outcome.wake_at)


def wake_later(step: StepRun, wake_at) -> None:
    """A timer for a near wake-up (the reaper wakes the later ones, and any timer lost)."""
    delay = (wake_at - timezone.now()).total_seconds()
    if delay <= settings.WORKFLOW_TIMER_MAX_SECONDS:
        transaction.on_commit(
            lambda: current_app.send_task("workflows.wake", args=[step.pk], countdown=max(delay, 0) + 0.05)
        )


@transaction.atomic
def step_resume(*, step_id: int, status: str = Status.SUCCEEDED, output=None, error: str = "", tokens=0, cost=0):
    """A waiting step goes on: an approval decided, an event posted, a child run ended, its time came."""
    step = StepRun.objects.get(pk=step_id)
    run = lock_run(step.run_id)
    step.run = run
    if close_step(step, status, from_status=[Status.WAITING], output=output, error=error, tokens=tokens, cost=cost):
        charge(run, tokens, cost)
        after_step(run, step)
        return True
    return False


@transaction.atomic
def step_wake(*, step_id: int) -> None:
    """A waiting step's time came: a wait ends, an event wait or a child workflow times out, an approval
    expires."""
    from workflows.services.approvals import approval_expire

    step = StepRun.objects.select_related("run__version").filter(pk=step_id, status=Status.WAITING).first()
    if step is None or step.wake_at is None or step.wake_at > timezone.now():
        return
    spec = specs_of(step.run)[step.step_id]
    lock_run(step.run_id)
    if spec["kind"] == "approval":
        approval_expire(step=step)
    elif spec["kind"] == "wait" and spec.get("event"):
        step_resume(step_id=step.pk, output={"event": None, "data": None, "timed_out": True})
    elif spec["kind"] == "wait":
        step_resume(step_id=step.pk, output={"waited_until": step.wake_at.isoformat()})
    else:  # a called workflow over its timeout: the step fails and the child run is cancelled
        step_resume(step_id=step.pk, status=Status.FAILED, error=f"Timed out after {spec['timeout']:g} s.")
        for child in step.child_runs.filter(status=WorkflowRun.Status.RUNNING).values_list("pk", flat=True):
            transaction.on_commit(lambda child=child: current_app.send_task("workflows.cancel_run", args=[str(child)]))


# --- leases ---------------------------------------------------------------------------------------------

_held: dict[int, int] = {}
_held_lock = threading.Lock()
_renewer: threading.Thread | None = None


@contextlib.contextmanager
def held_lease(step: StepRun):
    """Renew the step's lease while this process runs it (one UPDATE for all its steps, every third of a
    lease)."""
    global _renewer
    with _held_lock:
        _held[step.pk] = step.claim
        if _renewer is None or not _renewer.is_alive():
            _renewer = threading.Thread(target=_renew_forever, name="workflow-leases", daemon=True)
            _renewer.start()
    try:
        yield
    finally:
        with _held_lock:
            _held.pop(step.pk, None)


def _renew_forever() -> None:
    while True:
        time.sleep(settings.WORKFLOW_STEP_LEASE_SECONDS / 3)
        with _held_lock:
            held = list(_held)
        if not held:
            continue
        try:
            lease = timezone.now() + timedelta(seconds=settings.WORKFLOW_STEP_LEASE_SECONDS)
            StepRun.objects.filter(pk__in=held, status=Status.RUNNING).update(lease_until=lease)
        except Exception:
            logger.exception("workflow leases not renewed")
            close_old_connections()
