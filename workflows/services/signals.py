"""Events posted to a run, for its `wait: {event: ...}` steps: kept until a step takes one, so an event
posted before the step waits is not lost."""

from django.core.exceptions import ValidationError
from django.db import transaction

from core.exceptions import Conflict
from workflows.engine.definitions import specs_of
from workflows.engine.execution import step_resume
from workflows.engine.scheduling import lock_run, record
from workflows.models import RunSignal, StepRun, WorkflowRun


@transaction.atomic
def signal_post(*, run: WorkflowRun, name: str, data=None) -> RunSignal:
    if not isinstance(name, str) or not 0 < len(name) <= 100:
        raise ValidationError({"name": "The event's name, up to 100 characters."})
    run = lock_run(run.pk)
    if run.status != WorkflowRun.Status.RUNNING:
        raise Conflict(f"The run is {run.status}; it takes no more events.")
    signal = RunSignal.objects.create(run=run, name=name, data=data)
    record(run, "event.received", name=name)
    specs = specs_of(run)
    for step in run.steps.filter(status=StepRun.Status.WAITING, kind="wait").order_by("id"):
        if specs[step.step_id].get("event") == name:
            signal_take(step=step, run=run, name=name)
            break
    return signal


def signal_take(*, step: StepRun, run: WorkflowRun, name: str) -> bool:
    """A waiting step takes the oldest event of its name not yet taken, if there is one."""
    signal = RunSignal.objects.filter(run=run, name=name, taken_by=None).order_by("id").first()
    if signal is None:
        return False
    RunSignal.objects.filter(pk=signal.pk).update(taken_by=step)
    return step_resume(step_id=step.pk, output={"event": name, "data": signal.data, "timed_out": False})
