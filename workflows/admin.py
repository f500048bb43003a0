from django.contrib import admin, messages

from accounts.admin import ReadOnlyAdmin
from workflows.models import Approval, ApprovalDecision, RunEvent, StepRun, Workflow, WorkflowRun, WorkflowVersion
from workflows.services.runs import run_cancel
from workflows.views.diagram import diagram_context


class VersionInline(admin.TabularInline):
    model = WorkflowVersion
    fields = ["number", "format", "note", "created_by", "created_at"]
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Workflow)
class WorkflowAdmin(ReadOnlyAdmin):
    change_form_template = "admin/workflows/workflow/change_form.html"  # the diagram of the current version
    list_display = ["name", "owner", "current_version", "updated_at"]
    search_fields = ["name", "owner__username", "description"]
    list_select_related = ["owner", "current_version"]
    exclude = ["hook_secret_encrypted"]
    inlines = [VersionInline]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        workflow = self.get_object(request, object_id)
        if workflow is not None and workflow.current_version_id:
            extra_context = {**(extra_context or {}), "diagram": diagram_context(workflow.current_version.definition)}
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(WorkflowVersion)
class WorkflowVersionAdmin(ReadOnlyAdmin):
    list_display = ["workflow", "number", "format", "note", "created_by", "created_at"]
    search_fields = ["workflow__name"]
    list_select_related = ["workflow", "created_by"]


class StepInline(admin.TabularInline):
    model = StepRun
    fields = ["key", "kind", "status", "attempt", "tokens", "cost", "reused", "started_at", "finished_at", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WorkflowRun)
class WorkflowRunAdmin(ReadOnlyAdmin):
    change_form_template = "admin/workflows/workflowrun/change_form.html"  # the run's steps on its diagram
    list_display = ["id", "workflow", "owner", "status", "trigger", "tokens", "cost", "created_at", "finished_at"]
    list_filter = ["status", "trigger", "created_at"]
    search_fields = ["id", "workflow__name", "owner__username"]
    date_hierarchy = "created_at"
    list_select_related = ["workflow", "owner"]
    inlines = [StepInline]
    actions = ["cancel_runs"]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        if run is not None:
            run = WorkflowRun.objects.select_related("version").prefetch_related("steps__parent").get(pk=run.pk)
            extra_context = {**(extra_context or {}), "diagram": diagram_context(run.version.definition, run)}
        return super().change_view(request, object_id, form_url, extra_context)

    def has_cancel_permission(self, request):
        return request.user.has_perm("workflows.change_workflowrun")

    @admin.action(description="Cancel the selected runs", permissions=["cancel"])
    def cancel_runs(self, request, queryset):
        cancelled = 0
        for run in queryset.filter(status=WorkflowRun.Status.RUNNING):
            run_cancel(run=run, reason=f"Cancelled by {request.user.username} in the admin.")
            cancelled += 1
        messages.success(request, f"{cancelled} run(s) cancelled.")


class DecisionInline(admin.TabularInline):
    model = ApprovalDecision
    fields = ["user", "decision", "comment", "via", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyAdmin):
    list_display = ["step", "run", "status", "role", "required", "expires_at", "decided_at"]
    list_filter = ["status"]
    list_select_related = ["step", "run"]
    inlines = [DecisionInline]


@admin.register(RunEvent)
class RunEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "run", "type", "step", "created_at"]
    list_filter = ["type"]
    search_fields = ["run__id", "step"]
    list_select_related = ["run"]
