"""Workflow steps in traces: each step a worker runs is an `invoke_workflow {workflow}` span (the name the
GenAI conventions give workflow invocations), inside the Celery task's span and so in the trace of the
request that started the run (the task message carries `traceparent`, step after step). An agent step's
`invoke_agent` and `chat` spans are its children. No input or output is recorded."""

from core import tracing


def step_span(step, run):
    if not tracing.active():
        return tracing.OFF
    return tracing.span(
        f"invoke_workflow {run.workflow.name}",
        gen_ai__operation__name="invoke_workflow",
        switchboard__workflow__id=str(run.workflow_id),
        switchboard__workflow__run_id=str(run.pk),
        switchboard__workflow__step=step.key,
        switchboard__workflow__step_kind=step.kind,
        switchboard__workflow__attempt=step.attempt,
    )
