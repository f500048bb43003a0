"""The definitions the engine reads: the normalised definition of the version a run is pinned to, its steps
by id, the names an expression of a run may read. The engine loads a run with its version (`lock_run`);
versions never change, so each process keeps the index of steps it has built, under the version's id and
creation time (ids alone repeat in a test database flushed with its sequences reset)."""

from workflows.models import StepRun, WorkflowRun

_specs: dict[tuple, dict[str, dict]] = {}


def definition_of(run: WorkflowRun) -> dict:
    return run.version.definition


def specs_of(run: WorkflowRun) -> dict[str, dict]:
    """Every step of the run's definition by id: top-level steps, parallel branches and map steps."""
    key = (run.version_id, run.version.created_at)
    found = _specs.get(key)
    if found is None:
        if len(_specs) > 512:
            _specs.clear()
        found = _specs[key] = _index(run.version.definition)
    return found


def _index(definition: dict) -> dict[str, dict]:
    found = {}

    def add(spec):
        found[spec["id"]] = spec
        for branch in spec.get("branches", []) if spec["kind"] == "parallel" else []:
            add(branch)
        if spec["kind"] == "map":
            add(spec["step"])

    for spec in definition["steps"]:
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
