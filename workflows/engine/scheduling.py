"""Which steps run now, the transitions of a step, and the end of a run.

Every function here runs inside a transaction that holds the run's row lock (`lock_run`), taken before any
step row: one scheduler per run at a time, and no two transactions ever lock in the opposite order. A step
goes pending -> queued only by a conditional UPDATE under that lock, so it is never scheduled twice; its
task is sent when the transaction commits.
"""

import logging
from datetime import timedelta
from decimal import Decimal

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Sum
from django.utils import timezone

from core import metrics
from tasks.services.webhooks import webhooks_emit
from workflows import expressions
from workflows.definition import KINDS
from workflows.engine.definitions import context_of, definition_of, routes_of, specs_of
from workflows.models import Approval, RunEvent, StepRun, WorkflowRun

logger = logging.getLogger("switchboard.workflows")

Status = StepRun.Status
RunStatus = WorkflowRun.Status
OPEN = (Status.PENDING, *StepRun.ACTIVE)
# Steps that wait for people or for time hold no worker; everything else runs in a task.
WEBHOOK_EVENTS = {
    "run.succeeded": "workflow.run.succeeded",
    "run.failed": "workflow.run.failed",
    "run.cancelled": "workflow.run.cancelled",
    "step.succeeded": "workflow.step.succeeded",
    "step.failed": "workflow.step.failed",
    "approval.requested": "workflow.approval.requested",
    "approval.decided": "workflow.approval.decided",
}
# Agent calls go to the agents' I/O queue (a worker holds many at once); the rest to the default queue.
IO_KINDS = {"agent"}


def lock_run(run_id) -> WorkflowRun:
    """The run, locked, with the version it is pinned to (not locked)."""
    return WorkflowRun.objects.select_for_update(of=("self",)).select_related("version").get(pk=run_id)


def record(run: WorkflowRun, event_type: str, *, step: str = "", webhook: dict | None = None, **data) -> None:
    """An event of the run's history (the run page, its event stream) and, for some, the owner's webhooks
    (`webhook`: what only the webhook carries, such as an approval's signed links)."""
    RunEvent.objects.create(run=run, type=event_type, step=step, data=data)
    if event_type in WEBHOOK_EVENTS:
        webhooks_emit(
            owner_id=run.owner_id,
            event_type=WEBHOOK_EVENTS[event_type],
            data={"run": str(run.pk), "workflow": run.workflow_id, "step": step, **data, **(webhook or {})},
        )


def send_step(step: StepRun, countdown: float = 0) -> None:
    """Send the step's task when the transaction commits. A lost send is not lost work: the step stays
    queued with a lease, and the reaper sends it again when the lease runs out."""
    kwargs = {"step_id": step.pk, "attempt": step.attempt}
    queue = "agents" if step.kind in IO_KINDS else "celery"

    def send():
        try:
            current_app.send_task("workflows.step", kwargs=kwargs, queue=queue, countdown=countdown or None)
        except Exception:
            logger.exception("workflow step not sent; the reaper will send it", extra={"step": step.pk})

    transaction.on_commit(send)


def queue_step(step: StepRun, countdown: float = 0) -> bool:
    now = timezone.now()
    lease = now + timedelta(seconds=settings.WORKFLOW_QUEUE_LEASE_SECONDS + countdown)
    if not StepRun.objects.filter(pk=step.pk, status=Status.PENDING).update(
        status=Status.QUEUED, queued_at=now, lease_until=lease
    ):
        return False
    step.status = Status.QUEUED
    send_step(step, countdown)
    return True


def close_step(step: StepRun, status: str, *, from_status=None, claim=None, **fields) -> bool:
    """Finish a step (conditional on the status and claim it was in) and record it."""
    match = {"pk": step.pk, "status__in": from_status or OPEN}
    if claim is not None:
        match["claim"] = claim
    fields.update(status=status, finished_at=timezone.now(), lease_until=None, wake_at=None)
    if not StepRun.objects.filter(**match).update(**fields):
        return False
    for name, value in fields.items():
        setattr(step, name, value)
    details = {"error": fields["error"]} if fields.get("error") else {}
    record(step.run, f"step.{status}", step=step.key, **details)
    _count_step(step, status)
    return True


def _count_step(step: StepRun, status: str) -> None:
    kind, outcome = metrics.bounded(step.kind, KINDS), metrics.bounded(status, metrics.WORKFLOW_OUTCOMES)
    took = (step.finished_at - step.started_at).total_seconds() if step.started_at else None

    def count():
        metrics.WORKFLOW_STEPS.of(kind, outcome).inc()
        if took is not None:
            metrics.WORKFLOW_STEP_DURATION.of(kind, outcome).observe(took)

    transaction.on_commit(count)


# --- scheduling the top-level steps ---------------------------------------------------------------------


def advance(run: WorkflowRun) -> None:
    """Queue every top-level step whose needs are met, skip those that can no longer run, and end the run
    when every step has finished. The join rule: a step runs once all its needs have finished and at least
    one of them did not skip (or it has none); it is skipped when all were skipped, when the switch or
    approval before it chose another branch, or when its `if` is false."""
    if run.status != RunStatus.RUNNING:
        return
    definition = definition_of(run)
    steps = {step.step_id: step for step in run.steps.filter(parent=None)}
    for step in steps.values():
        step.run = run
    progress = True
    while progress:
        progress = False
        for spec in definition["steps"]:
            step = steps[spec["id"]]
            if step.status != Status.PENDING:
                continue
            verdict = _readiness(run, spec, steps)
            if verdict is None:
                continue
            progress = True
            if verdict == "run":
                queue_step(step)
            elif verdict.startswith("fail:"):
                close_step(step, Status.FAILED, error=verdict[5:])
                if definition["on_failure"] == "stop":
                    fail_run(run, f"Step {step.key} failed: {verdict[5:]}")
                    return
            else:
                close_step(step, Status.SKIPPED, error=verdict)
    if all(step.status in StepRun.FINISHED for step in steps.values()):
        finish_run(run, steps)


def _readiness(run, spec, steps) -> str | None:
    """None: not yet; "run"; "fail:<why>"; else the reason it is skipped."""
    needs = [steps[name] for name in spec["needs"]]
    if any(need.status not in StepRun.FINISHED for need in needs):
        return None
    for need in needs:
        need_spec = specs_of(run)[need.step_id]
        if spec["id"] in routes_of(need_spec) and need.status == Status.SUCCEEDED:
            if spec["id"] not in (need.output or {}).get("steps", []):
                return f"{need.step_id} chose another branch."
    if needs and all(need.status == Status.SKIPPED for need in needs):
        return "Every step it needs was skipped."
    failed = [need.step_id for need in needs if need.status in (Status.FAILED, Status.CANCELLED)]
    if failed:
        return f"A step it needs did not succeed ({', '.join(failed)})."
    if spec.get("if"):
        try:
            if not expressions.is_true(spec["if"], context_of(run)):
                return "Its condition is false."
        except expressions.ExpressionError as error:
            return f"fail:{error}"
    return "run"


# --- after a step ---------------------------------------------------------------------------------------


def after_step(run: WorkflowRun, step: StepRun) -> None:
    """What a finished step leads to: its map or parallel parent moves on, or the run does."""
    if run.status != RunStatus.RUNNING:
        return
    definition = definition_of(run)
    if _over_budget(run, definition) and run.steps.filter(status__in=OPEN).exists():
        fail_run(run, f"The run's budget is spent ({run.tokens} tokens, {run.cost:.6f} USD).")
        return
    if step.parent_id:
        children_progress(run, StepRun.objects.get(pk=step.parent_id))
        return
    if step.status == Status.FAILED and definition["on_failure"] == "stop":
        fail_run(run, f"Step {step.key} failed: {step.error}")
        return
    advance(run)


def _over_budget(run: WorkflowRun, definition: dict) -> bool:
    budget = definition.get("budget") or {}
    return bool(
        (budget.get("tokens") and run.tokens >= budget["tokens"])
        or (budget.get("usd") and run.cost >= Decimal(str(budget["usd"])))
    )


def charge(run: WorkflowRun, tokens: int, cost) -> None:
    if tokens or cost:
        WorkflowRun.objects.filter(pk=run.pk).update(tokens=F("tokens") + tokens, cost=F("cost") + cost)
        run.tokens += tokens
        run.cost += Decimal(cost)


def children_progress(run: WorkflowRun, parent: StepRun) -> None:
    """A map or parallel step whose children moved: queue more (a map's `max_concurrency`), or finish it.
    Counts by status, so a child's end costs the same whatever the number of its siblings."""
    if parent.status != Status.WAITING:
        return
    parent.run = run
    spec = specs_of(run)[parent.step_id]
    children = parent.children.all()
    counts = dict(children.order_by().values_list("status").annotate(count=Count("id")))
    succeeded = counts.get(Status.SUCCEEDED, 0)
    failed = counts.get(Status.FAILED, 0) + counts.get(Status.CANCELLED, 0)
    unfinished = sum(count for status, count in counts.items() if status not in StepRun.FINISHED)
    if spec["kind"] == "parallel":
        if succeeded >= spec["at_least"]:
            outputs = dict(children.filter(status=Status.SUCCEEDED).values_list("step_id", "output"))
            _close_parent(run, parent, Status.SUCCEEDED, outputs)
        elif succeeded + unfinished < spec["at_least"]:
            errors = "; ".join(f"{step_id}: {error}" for step_id, error in _failures(children))
            _close_parent(run, parent, Status.FAILED, None, f"The join cannot be met ({errors}).")
        else:
            _queue(run, children.filter(status=Status.PENDING))
        return
    if failed and spec["on_error"] == "stop":
        index, error = (
            children.filter(status__in=[Status.FAILED, Status.CANCELLED])
            .order_by("index")
            .values_list("index", "error")[0]
        )
        _close_parent(run, parent, Status.FAILED, None, f"Item {index} failed: {error}")
        return
    if not unfinished:
        items = children.order_by("index").values_list("status", "output")
        if spec["on_error"] == "drop":
            output = [output for status, output in items if status != Status.FAILED]
        else:
            output = [output if status == Status.SUCCEEDED else None for status, output in items]
        _close_parent(run, parent, Status.SUCCEEDED, output)
        return
    room = spec["max_concurrency"] - sum(counts.get(status, 0) for status in StepRun.ACTIVE)
    if room > 0:
        _queue(run, children.filter(status=Status.PENDING).order_by("index")[:room])


def _failures(children):
    return (
        children.filter(status__in=[Status.FAILED, Status.CANCELLED]).order_by("index").values_list("step_id", "error")
    )


def _queue(run, steps) -> None:
    for step in steps:
        step.run = run
        queue_step(step)


def _close_parent(run, parent, status, output, error=""):
    """Finish a map or parallel step: what is still open of its children is cancelled (a worker running
    one records nothing), its tokens and cost are theirs."""
    children = parent.children.all()
    children.filter(status__in=OPEN).update(
        status=Status.CANCELLED, error="No longer needed.", finished_at=timezone.now(), lease_until=None, wake_at=None
    )
    totals = children.aggregate(tokens=Sum("tokens"), cost=Sum("cost"))
    if close_step(
        parent,
        status,
        from_status=[Status.WAITING],
        output=output,
        error=error,
        tokens=totals["tokens"] or 0,
        cost=totals["cost"] or Decimal(0),
    ):
        after_step(run, parent)


# --- the end of a run -----------------------------------------------------------------------------------


def finish_run(run: WorkflowRun, steps: dict[str, StepRun]) -> None:
    definition = definition_of(run)
    failed = [step for step in steps.values() if step.status == Status.FAILED]
    if failed:
        _end_run(run, RunStatus.FAILED, error=f"Step {failed[0].key} failed: {failed[0].error}")
        return
    try:
        outputs = expressions.render_value(definition.get("outputs") or {}, context_of(run))
    except expressions.ExpressionError as error:
        _end_run(run, RunStatus.FAILED, error=f"The workflow's outputs: {error}")
        return
    _end_run(run, RunStatus.SUCCEEDED, outputs=outputs)


def fail_run(run: WorkflowRun, error: str) -> None:
    _end_run(run, RunStatus.FAILED, error=error)


def cancel_run(run: WorkflowRun, reason: str = "Cancelled.") -> bool:
    if run.status != RunStatus.RUNNING:
        return False
    _end_run(run, RunStatus.CANCELLED, error=reason)
    return True


def _end_run(run: WorkflowRun, status: str, *, outputs=None, error: str = "") -> None:
    """End the run; whatever is still open is cancelled (a worker still running one of its steps finds it
    cancelled and records nothing), open approvals close, child runs are cancelled, a parent step resumes."""
    now = timezone.now()
    WorkflowRun.objects.filter(pk=run.pk).update(status=status, outputs=outputs, error=error, finished_at=now)
    run.status, run.outputs, run.error, run.finished_at = status, outputs, error, now
    StepRun.objects.filter(run=run, status__in=OPEN).update(
        status=Status.CANCELLED, finished_at=now, lease_until=None, wake_at=None
    )
    Approval.objects.filter(run=run, status=Approval.Status.OPEN).update(status=Approval.Status.CANCELLED)
    children = list(
        WorkflowRun.objects.filter(parent_step__run=run, status=RunStatus.RUNNING).values_list("pk", flat=True)
    )
    record(run, f"run.{status}", **({"error": error} if error else {}))
    transaction.on_commit(lambda: metrics.WORKFLOW_RUNS.of(status).inc())
    for child in children:
        transaction.on_commit(lambda child=child: current_app.send_task("workflows.cancel_run", args=[str(child)]))
    if run.parent_step_id:
        transaction.on_commit(lambda: current_app.send_task("workflows.child_finished", args=[str(run.pk)]))
