"""The engine's Celery tasks, thin: each takes ids and calls one engine or service function. They are not
tracked tasks: the step runs are their records, with their own attempts and retries."""

from celery import shared_task

from workflows.engine.execution import step_execute, step_wake
from workflows.engine.reaper import steps_reap

# Late acknowledgement: a worker that dies mid-step leaves the message to be delivered again; the claim
# makes the copy harmless.
ENGINE_TASK = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@shared_task(name="workflows.step", **ENGINE_TASK)
def step_task(*, step_id: int, attempt: int):
    step_execute(step_id=step_id, attempt=attempt)


@shared_task(name="workflows.wake", **ENGINE_TASK)
def wake_task(step_id: int):
    step_wake(step_id=step_id)


@shared_task(name="workflows.reap", ignore_result=True)
def reap_task():
    return steps_reap()


@shared_task(name="workflows.child_finished", **ENGINE_TASK)
def child_finished_task(run_id: str):
    from workflows.services.runs import child_run_finished

    child_run_finished(run_id=run_id)


@shared_task(name="workflows.cancel_run", **ENGINE_TASK)
def cancel_run_task(run_id: str):
    from workflows.models import WorkflowRun
    from workflows.services.runs import run_cancel

    run = WorkflowRun.objects.filter(pk=run_id).first()
    if run is not None:
        run_cancel(run=run, reason="The run that called it ended.")


@shared_task(name="workflows.start_scheduled", ignore_result=True)
def start_scheduled_task(*, schedule_id: int):
    from workflows.services.runs import run_start_scheduled

    run_start_scheduled(schedule_id=schedule_id)
