"""What templates/workflows/_diagram.html draws, for the workflow and run pages and the admin's."""

import json

from rest_framework.renderers import JSONRenderer

from workflows.models import WorkflowRun
from workflows.serializers import RunDetailSerializer


def money(value) -> str:
    """A cost as the diagram writes it: cents from a cent up, two significant digits below."""
    value = float(value or 0)
    if not value:
        return "$0"
    return f"${value:.2f}" if value >= 0.01 else f"${value:.2g}"


def diagram_context(definition: dict, run: WorkflowRun | None = None) -> dict:
    """What templates/workflows/_diagram.html draws: a definition, and a run's steps on it (the API's JSON)."""
    context = {"definition": definition, "definition_json": json.dumps(definition), "run_json": ""}
    if run is not None:
        context["run_json"] = JSONRenderer().render(RunDetailSerializer(run).data).decode()
    return context
