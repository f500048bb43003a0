"""Your workflows (the editor, import, examples) and one workflow: its diagram, runs, versions and their diff,
sharing, schedules, the inbound webhook."""

import difflib
import json
import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import ProtectedError
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.models import User
from accounts.selectors import object_shares, user_may_use
from accounts.services import object_share, object_unshare
from core.exceptions import DomainError
from workflows import selectors
from workflows.forms import ImportForm, RunForm, ScheduleForm, ShareForm, SourceForm, WorkflowForm
from workflows.models import WorkflowRun, WorkflowSchedule
from workflows.services import runs, schedules
from workflows.services import workflows as services
from workflows.services.hooks import hook_url
from workflows.services.workflows import DefinitionRejected
from workflows.views.diagram import diagram_context


def _form_errors(form, error: ValidationError) -> None:
    """A service's ValidationError on the form: on the field it names, else above the form."""
    for field, problems in getattr(error, "message_dict", {None: error.messages}).items():
        form.add_error(field if field in form.fields else None, problems)


def _rejected(form, rejected: DefinitionRejected) -> list:
    form.add_error("source", f"{rejected} They are listed below the editor.")
    described = f"{form['source'].auto_id}_helptext {form['source'].auto_id}_error source-problems"
    form.fields["source"].widget.attrs.update({"aria-describedby": described, "aria-invalid": "true"})
    return rejected.problems


# --- your workflows ------------------------------------------------------------------------------------------


@login_required
def workflow_list(request):
    if request.method == "POST" and not request.user.has_perm("workflows.add_workflow"):
        raise PermissionDenied("Your role may not create workflows.")
    found = services.workflow_examples()
    example = request.GET.get("example", "")
    initial = {"name": example, "source": found[example], "format": "yaml"} if example in found else {}
    form = WorkflowForm(request.POST or None, initial=initial)
    problems, preview = [], None
    if request.method == "POST" and form.is_valid():
        fields = form.cleaned_data
        try:
            if "validate" in request.POST:
                preview = services.definition_check(
                    owner=request.user, source=fields["source"], format=fields["format"]
                )
            else:
                workflow = services.workflow_create(owner=request.user, **fields)
                messages.success(request, f"Workflow {workflow.name} created.")
                return redirect("workflow_detail", pk=workflow.pk)
        except DefinitionRejected as rejected:
            problems = _rejected(form, rejected)
        except ValidationError as error:
            _form_errors(form, error)
    context = {
        "form": form,
        "problems": problems,
        "preview": preview,
        "preview_json": json.dumps(preview) if preview else "",
        "import_form": ImportForm(),
        "examples": found,
        "example": example,
        "workflows": selectors.workflow_list(user=request.user),
        "runs": selectors.run_list(user=request.user)[:10],
        "approvals_waiting": selectors.approvals_for(user=request.user).count(),
    }
    return render(request, "workflows/workflows.html", context)


@login_required
@permission_required("workflows.add_workflow", raise_exception=True)
@require_POST
def workflow_import(request):
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, " ".join(" ".join(errors) for errors in form.errors.values()))
        return redirect("workflows")
    try:
        workflow = services.workflow_import(owner=request.user, document=form.cleaned_data["file"])
    except DefinitionRejected as rejected:
        places = "; ".join(
            f"line {p.line}:{p.column} {p.message}" if p.line else p.message for p in rejected.problems[:10]
        )
        messages.error(request, f"Not imported: {rejected} {places}")
        return redirect("workflows")
    except ValidationError as error:
        messages.error(request, "Not imported: " + " ".join(error.messages))
        return redirect("workflows")
    messages.success(request, f"Imported {workflow.name} (version {workflow.current_version.number}).")
    return redirect("workflow_detail", pk=workflow.pk)


# --- one workflow ----------------------------------------------------------------------------------------------


def _diff(workflow, query) -> dict | None:
    """Two versions' sources as a unified diff, lines marked for their colour."""
    numbers = query.get("from", ""), query.get("to", "")
    if not all(number.isdigit() for number in numbers):
        return None
    found = {version.number: version for version in workflow.versions.filter(number__in=[int(n) for n in numbers])}
    old, new = found.get(int(numbers[0])), found.get(int(numbers[1]))
    if old is None or new is None:
        return None
    text = difflib.unified_diff(
        old.source.splitlines(),
        new.source.splitlines(),
        fromfile=f"version {old.number}",
        tofile=f"version {new.number}",
        lineterm="",
    )
    kinds = {"+": "add", "-": "del", "@": "hunk"}
    lines = [(kinds.get(line[:1], "") if not line.startswith(("+++", "---")) else "hunk", line) for line in text]
    return {"from": old.number, "to": new.number, "lines": lines}


def _detail(request, workflow, *, source_form=None, run_form=None, problems=(), preview=None, status=200):
    user = request.user
    version = workflow.current_version
    definition = version.definition
    owner = workflow.owner_id == user.pk
    context = {
        **diagram_context(definition),
        "workflow": workflow,
        "version": version,
        "owner": owner,
        "can_run": user.has_perm("workflows.add_workflowrun") and user_may_use(user=user, obj=workflow),
        "run_form": run_form or RunForm(inputs=definition.get("inputs") or {}),
        "start_key": uuid.uuid4().hex,
        "runs": selectors.run_list(user=user).filter(workflow=workflow)[:20],
        "versions": workflow.versions.select_related("created_by").order_by("-number")[:100],
        "diff": _diff(workflow, request.GET),
        "problems": problems,
        "preview": preview,
        "preview_json": json.dumps(preview) if preview else "",
    }
    if owner:
        context.update(
            source_form=source_form or SourceForm(initial={"source": version.source, "format": version.format}),
            share_form=ShareForm(prefix="share"),
            shares=object_shares(obj=workflow),
            schedule_form=ScheduleForm(prefix="schedule"),
            schedules=workflow.schedules.select_related("periodic_task"),
            hook_url=hook_url(workflow),
        )
    return render(request, "workflows/workflow_detail.html", context, status=status)


@login_required
def workflow_detail(request, pk):
    if request.method != "POST":
        return _detail(request, selectors.workflow_get(user=request.user, pk=pk))
    if not request.user.has_perm("workflows.change_workflow"):
        raise PermissionDenied("Your role may not change workflows.")
    workflow = selectors.workflow_get_owned(user=request.user, pk=pk)
    form = SourceForm(request.POST)
    problems, preview = [], None
    if form.is_valid():
        fields = form.cleaned_data
        try:
            if "validate" in request.POST:
                preview = services.definition_check(
                    owner=workflow.owner, source=fields["source"], format=fields["format"]
                )
            else:
                version = services.workflow_save(workflow=workflow, user=request.user, **fields)
                messages.success(request, f"Saved as version {version.number}.")
                return redirect("workflow_detail", pk=workflow.pk)
        except DefinitionRejected as rejected:
            problems = _rejected(form, rejected)
        except ValidationError as error:
            _form_errors(form, error)
    return _detail(request, workflow, source_form=form, problems=problems, preview=preview)


@login_required
@permission_required("workflows.add_workflowrun", raise_exception=True)
@require_POST
def workflow_start(request, pk):
    workflow = selectors.workflow_get(user=request.user, pk=pk, level="use")
    form = RunForm(request.POST, inputs=workflow.current_version.definition.get("inputs") or {})
    # The form's one-time key: a second click (or a reload of the answer) gives back the run already started.
    key = request.POST.get("start_key", "")[:64]
    if form.is_valid():
        try:
            run, _ = runs.run_start(
                workflow=workflow,
                user=request.user,
                inputs=form.inputs(),
                trigger=WorkflowRun.Trigger.BROWSER,
                idempotency_key=f"browser:{key}" if key else "",
            )
        except ValidationError as error:
            for field, problems in getattr(error, "message_dict", {None: error.messages}).items():
                name = field.removeprefix("inputs.") if field else None
                form.add_error(name if name in form.fields else None, problems)
        except DomainError as error:
            messages.error(request, str(error))
        else:
            return redirect("workflow_run", pk=run.pk)
    return _detail(request, workflow, run_form=form, status=400)


@login_required
def workflow_export(request, pk):
    workflow = selectors.workflow_get(user=request.user, pk=pk)
    response = JsonResponse(services.workflow_export(workflow=workflow), json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="{workflow.name}.workflow.json"'
    return response


def _owned(request, pk, perm="workflows.change_workflow"):
    if not request.user.has_perm(perm):
        raise PermissionDenied("Your role may not change workflows.")
    return selectors.workflow_get_owned(user=request.user, pk=pk)


@login_required
@require_POST
def workflow_rollback(request, pk, number):
    workflow = _owned(request, pk)
    try:
        version = services.workflow_rollback(workflow=workflow, user=request.user, number=number)
    except DefinitionRejected as rejected:
        messages.error(
            request, f"Version {number} is no longer valid: {'; '.join(p.message for p in rejected.problems[:5])}"
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Rolled back: version {number} is current again, as version {version.number}.")
    return redirect("workflow_detail", pk=workflow.pk)


@login_required
@require_POST
def workflow_delete(request, pk):
    workflow = _owned(request, pk, "workflows.delete_workflow")
    try:
        services.workflow_delete(workflow=workflow)
    except ProtectedError:
        messages.error(request, "This workflow cannot be deleted while it has runs.")
        return redirect("workflow_detail", pk=workflow.pk)
    messages.success(request, f"Workflow {workflow.name} deleted, with its runs.")
    return redirect("workflows")


@login_required
@never_cache
@require_POST
def workflow_hook_secret(request, pk):
    workflow = _owned(request, pk)
    secret = services.workflow_hook_secret_rotate(workflow=workflow)
    return render(
        request, "workflows/hook_secret.html", {"workflow": workflow, "secret": secret, "url": hook_url(workflow)}
    )


@login_required
@require_POST
def workflow_share(request, pk):
    workflow = _owned(request, pk)
    form = ShareForm(request.POST, prefix="share")
    if form.is_valid():
        try:
            object_share(
                obj=workflow,
                owner=request.user,
                request=request,
                user=form.cleaned_data["username"],
                level=form.cleaned_data["level"],
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(
                request, f"Shared with {form.cleaned_data['username'].username} ({form.cleaned_data['level']})."
            )
    else:
        messages.error(request, " ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()))
    return redirect(reverse("workflow_detail", args=[workflow.pk]) + "#sharing")


@login_required
@require_POST
def workflow_unshare(request, pk, username):
    workflow = _owned(request, pk)
    user = get_object_or_404(User, username=username)
    object_unshare(obj=workflow, owner=request.user, user=user, request=request)
    messages.success(request, f"No longer shared with {username}.")
    return redirect(reverse("workflow_detail", args=[workflow.pk]) + "#sharing")


@login_required
@require_POST
def workflow_schedule_add(request, pk):
    workflow = _owned(request, pk)
    form = ScheduleForm(request.POST, prefix="schedule")
    if form.is_valid():
        try:
            schedules.schedule_create(workflow=workflow, owner=request.user, **form.cleaned_data)
        except ValidationError as error:
            messages.error(request, "Schedule not added: " + " ".join(error.messages))
        else:
            messages.success(request, f"Scheduled: {form.cleaned_data['cron']} (UTC).")
    else:
        messages.error(request, " ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()))
    return redirect(reverse("workflow_detail", args=[workflow.pk]) + "#schedules")


@login_required
@require_POST
def workflow_schedule_delete(request, pk, schedule):
    workflow = _owned(request, pk)
    found = get_object_or_404(WorkflowSchedule, workflow=workflow, pk=schedule)
    schedules.schedule_delete(schedule=found)
    messages.success(request, "Schedule deleted.")
    return redirect(reverse("workflow_detail", args=[workflow.pk]) + "#schedules")
