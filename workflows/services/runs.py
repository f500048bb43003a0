"""Starting, cancelling and re-running workflow runs."""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Sum

from workflows.engine.definitions import definition_of, routes_of
from workflows.engine.scheduling import advance, cancel_run, lock_run, record
from workflows.models import StepRun, Workflow, WorkflowRun

TYPES = {
    "string": str,
    "number": (int, float),
    "integer": int,
    "boolean": bool,
    "object": dict,
    "array": list,
}


def run_inputs(definition: dict, given) -> dict:
    """The run's inputs: the given ones checked against the declared types, defaults filled."""
    if not isinstance(given, dict):
        raise ValidationError({"inputs": "An object of the workflow's inputs."})
    declared = definition.get("inputs") or {}
    errors = {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        errors["inputs"] = f"Unknown inputs: {', '.join(unknown)}. Declared: {', '.join(declared) or 'none'}."
    inputs = {}
    for name, spec in declared.items():
        if name not in given:
            if "default" in spec:
                inputs[name] = spec["default"]
            elif spec.get("required", True):
                errors[f"inputs.{name}"] = "This input is required."
            continue
        value = given[name]
        expected = TYPES[spec.get("type", "string")]
        if not isinstance(value, expected) or (isinstance(value, bool) and spec.get("type") in ("number", "integer")):
            errors[f"inputs.{name}"] = f"A {spec.get('type', 'string')}, not {type(value).__name__}."
        inputs[name] = value
    if errors:
        raise ValidationError(errors)
    return inputs


def run_start(
    *, workflow: Workflow, user, inputs=None, trigger: str = WorkflowRun.Trigger.API, idempotency_key: str = ""
) -> tuple[WorkflowRun, bool]:
    """Start a run of the workflow's current version: (the run, whether it was created). A repeated
    Idempotency-Key gives back the run it started."""
    if idempotency_key:
        prior = WorkflowRun.objects.filter(owner=user, workflow=workflow, idempotency_key=idempotency_key).first()
        if prior is not None:
            return prior, False
    version = workflow.current_version
    values = run_inputs(version.definition, inputs or {})
    try:
        with transaction.atomic():
            run = _begin(
                workflow=workflow,
                version=version,
                user=user,
                inputs=values,
                trigger=trigger,
                idempotency_key=idempotency_key,
            )
    except IntegrityError:
        return WorkflowRun.objects.get(owner=user, workflow=workflow, idempotency_key=idempotency_key), False
    return run, True


def run_start_child(*, workflow: Workflow, parent_step: StepRun, inputs: dict) -> WorkflowRun:
    """A `workflow` step's run, inside the transaction that makes the step wait."""
    parent_run = parent_step.run
    try:
        values = run_inputs(workflow.current_version.definition, inputs)
    except ValidationError as error:
        from workflows.engine.execution import step_resume

        step_resume(step_id=parent_step.pk, status=StepRun.Status.FAILED, error="; ".join(error.messages))
        return None
    return _begin(
        workflow=workflow,
        version=workflow.current_version,
        user=parent_run.owner,
        inputs=values,
        trigger=WorkflowRun.Trigger.WORKFLOW,
        parent_step=parent_step,
    )


def _begin(*, workflow, version, user, inputs, trigger, copied=(), **fields) -> WorkflowRun:
    run = WorkflowRun.objects.create(
        workflow=workflow, version=version, owner=user, inputs=inputs, trigger=trigger, **fields
    )
    copied = {step.step_id: step for step in copied}
    StepRun.objects.bulk_create(
        _copy(run, copied[spec["id"]])
        if spec["id"] in copied
        else StepRun(run=run, key=spec["id"], step_id=spec["id"], kind=spec["kind"])
        for spec in version.definition["steps"]
    )
    record(run, "run.started", trigger=trigger, version=version.number)
    advance(lock_run(run.pk))
    return run


def _copy(run, step: StepRun) -> StepRun:
    return StepRun(
        run=run,
        key=step.key,
        step_id=step.step_id,
        kind=step.kind,
        status=step.status,
        input=step.input,
        output=step.output,
        error=step.error,
        tokens=step.tokens,
        cost=step.cost,
        agent_run_id=step.agent_run_id,
        reused=True,
        started_at=step.started_at,
        finished_at=step.finished_at,
    )


@transaction.atomic
def run_cancel(*, run: WorkflowRun, reason: str = "Cancelled by its owner.") -> WorkflowRun:
    run = lock_run(run.pk)
    cancel_run(run, reason)
    return run


def downstream_of(definition: dict, step_id: str) -> set[str]:
    """The step and every top-level step that depends on it (through needs or a route)."""
    dependents = {}
    for spec in definition["steps"]:
        for need in spec["needs"]:
            dependents.setdefault(need, set()).add(spec["id"])
        for route in routes_of(spec):
            dependents.setdefault(spec["id"], set()).add(route)
    found, frontier = {step_id}, [step_id]
    while frontier:
        for dependent in dependents.get(frontier.pop(), ()):
            if dependent not in found:
                found.add(dependent)
                frontier.append(dependent)
    return found


def run_rerun(*, run: WorkflowRun, user, from_step: str, idempotency_key: str = "") -> WorkflowRun:
    """A new run of the same version and inputs that starts again at `from_step`: the steps before it (and
    beside it) that succeeded or were skipped are reused with their outputs, tokens and cost."""
    definition = definition_of(run)
    if from_step not in {spec["id"] for spec in definition["steps"]}:
        raise ValidationError({"from_step": f"The workflow has no top-level step {from_step!r}."})
    again = downstream_of(definition, from_step)
    reused = list(
        run.steps.filter(parent=None, status__in=[StepRun.Status.SUCCEEDED, StepRun.Status.SKIPPED]).exclude(
            step_id__in=again
        )
    )
    saved = run.steps.filter(pk__in=[step.pk for step in reused]).aggregate(tokens=Sum("tokens"), cost=Sum("cost"))
    with transaction.atomic():
        return _begin(
            workflow=run.workflow,
            version=run.version,
            user=user,
            inputs=run.inputs,
            trigger=WorkflowRun.Trigger.RERUN,
            copied=reused,
            rerun_of=run,
            rerun_from=from_step,
            saved_tokens=saved["tokens"] or 0,
            saved_cost=saved["cost"] or 0,
            idempotency_key=idempotency_key,
        )


@transaction.atomic
def child_run_finished(*, run_id) -> None:
    """A `workflow` step's child run ended: the step goes on with its outputs (or fails with its error)."""
    from workflows.engine.execution import step_resume

    child = WorkflowRun.objects.get(pk=run_id)
    if child.parent_step_id is None:
        return
    if child.status == WorkflowRun.Status.SUCCEEDED:
        step_resume(step_id=child.parent_step_id, output=child.outputs, tokens=child.tokens, cost=child.cost)
    else:
        step_resume(
            step_id=child.parent_step_id,
            status=StepRun.Status.FAILED,
            error=f"The called workflow's run {child.status}: {child.error}",
            tokens=child.tokens,
            cost=child.cost,
        )


def run_start_scheduled(*, schedule_id: int):
    """Beat's tick of a schedule: a run as its owner, if they may still run the workflow."""
    from workflows.models import WorkflowSchedule
    from workflows.selectors import workflow_usable_named

    schedule = WorkflowSchedule.objects.select_related("workflow__owner", "owner").filter(pk=schedule_id).first()
    if schedule is None:
        return None
    workflow = schedule.workflow
    qualified = (
        workflow.name if workflow.owner_id == schedule.owner_id else f"{workflow.owner.username}/{workflow.name}"
    )
    if workflow_usable_named(user=schedule.owner, name=qualified) is None:
        return None
    run, _ = run_start(
        workflow=workflow, user=schedule.owner, inputs=schedule.inputs, trigger=WorkflowRun.Trigger.SCHEDULE
    )
    return run
