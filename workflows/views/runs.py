"""A run: its page, drawn live while it runs, and cancelling and re-running it."""

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.selectors import user_may_use
from workflows import selectors
from workflows.models import RunEvent, WorkflowRun
from workflows.services import runs
from workflows.views.diagram import diagram_context, money

EVENTS_SHOWN = 500


@login_required
def workflow_run(request, pk):
    run = selectors.run_get(user=request.user, pk=pk)
    run = (
        WorkflowRun.objects.select_related("workflow", "version", "owner")
        .prefetch_related("steps__parent")
        .get(pk=run.pk)
    )
    events = list(RunEvent.objects.filter(run=run).order_by("id")[:EVENTS_SHOWN])
    for event in events:
        event.data_json = json.dumps(event.data) if event.data else ""
    can_rerun = request.user.has_perm("workflows.add_workflowrun") and user_may_use(user=request.user, obj=run.workflow)
    live = None
    if run.status == WorkflowRun.Status.RUNNING:  # the page follows the run: its stream, and reads on each event
        live = {
            "run_url": reverse("workflowrun-detail", args=[run.pk]),
            "events_url": reverse("workflowrun-events", args=[run.pk]),
            "stream_url": reverse("workflow-run-stream", args=[run.pk]),
            "last_event": events[-1].pk if events else 0,
        }
    context = {
        **diagram_context(run.version.definition, run),
        "run": run,
        "steps": list(run.steps.all()),
        "events": events,
        "live": live,
        "cost": money(run.cost),
        "saved_cost": money(run.saved_cost),
        "rerun_url": reverse("workflow_run_rerun", args=[run.pk]) if can_rerun else "",
        "inputs_json": json.dumps(run.inputs, indent=2),
        "outputs_json": json.dumps(run.outputs, indent=2) if run.outputs is not None else "",
        "can_cancel": request.user.has_perm("workflows.change_workflowrun")
        and run.status == WorkflowRun.Status.RUNNING,
    }
    return render(request, "workflows/run.html", context)


@login_required
@permission_required("workflows.change_workflowrun", raise_exception=True)
@require_POST
def workflow_run_cancel(request, pk):
    run = selectors.run_get(user=request.user, pk=pk)
    runs.run_cancel(run=run, reason=f"Cancelled by {request.user.username} in the browser.")
    messages.success(request, "Run cancelled.")
    return redirect("workflow_run", pk=run.pk)


@login_required
@permission_required("workflows.add_workflowrun", raise_exception=True)
@require_POST
def workflow_run_rerun(request, pk):
    run = selectors.run_get(user=request.user, pk=pk)
    selectors.workflow_get(user=request.user, pk=run.workflow_id, level="use")
    try:
        again = runs.run_rerun(run=run, user=request.user, from_step=request.POST.get("from_step", ""))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("workflow_run", pk=run.pk)
    messages.success(request, f"Re-running from {again.rerun_from}: the steps before it are reused.")
    return redirect("workflow_run", pk=again.pk)
