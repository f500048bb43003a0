"""The definitions the engine reads: a version's normalised definition, its steps by id, the names an
expression of a run may read. Versions never change, so each process keeps what it has read."""

import functools

from workflows.models import StepRun, WorkflowVersion


@functools.lru_cache(maxsize=512)
def definition_of(version_id: int) -> dict:
    return WorkflowVersion.objects.values_list("definition", flat=True).get(pk=version_id)


@functools.lru_cache(maxsize=512)
def specs_of(version_id: int) -> dict[str, dict]:
    """Every step of the definition by id: top-level steps, parallel branches and map steps."""
    found = {}

    def add(spec):
        found[spec["id"]] = spec
        for branch in spec.get("branches", []) if spec["kind"] == "parallel" else []:
            add(branch)
        if spec["kind"] == "map":
            add(spec["step"])

    for spec in definition_of(version_id)["steps"]:
        add(spec)
    return found


def routes_of(spec: dict) -> list[str]:
    """The steps a switch or an approval chooses between."""
    return spec.get("routes", [])


def context_of(run, *, item=None, has_item: bool = False) -> dict:
    """What an expression of this run reads: inputs, the finished top-level steps, the run, a map's item."""
    steps = {
        step_id: {"output": output, "status": status}
        for step_id, output, status in run.steps.filter(parent=None, status__in=StepRun.FINISHED).values_list(
            "step_id", "output", "status"
        )
    }
    context = {
        "inputs": run.inputs,
        "steps": steps,
        "run": {
            "id": str(run.pk),
            "workflow": run.workflow_id,
            "version": run.version_id,
            "started_at": run.created_at.isoformat(),
        },
    }
    if has_item:
        context["item"] = item
    return context
