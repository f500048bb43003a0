from django.urls import path

from workflows import api
from workflows.views import approvals, runs, workflows

urlpatterns = [
    path("", workflows.workflow_list, name="workflows"),
    path("import/", workflows.workflow_import, name="workflow_import"),
    path("<int:pk>/", workflows.workflow_detail, name="workflow_detail"),
    path("<int:pk>/start/", workflows.workflow_start, name="workflow_start"),
    path("<int:pk>/export/", workflows.workflow_export, name="workflow_export"),
    path("<int:pk>/delete/", workflows.workflow_delete, name="workflow_delete"),
    path("<int:pk>/versions/<int:number>/rollback/", workflows.workflow_rollback, name="workflow_rollback"),
    path("<int:pk>/hook-secret/", workflows.workflow_hook_secret, name="workflow_hook_secret"),
    path("<int:pk>/shares/", workflows.workflow_share, name="workflow_share"),
    path("<int:pk>/shares/<str:username>/delete/", workflows.workflow_unshare, name="workflow_unshare"),
    path("<int:pk>/schedules/", workflows.workflow_schedule_add, name="workflow_schedule_add"),
    path(
        "<int:pk>/schedules/<int:schedule>/delete/", workflows.workflow_schedule_delete, name="workflow_schedule_delete"
    ),
    path("runs/<uuid:pk>/", runs.workflow_run, name="workflow_run"),
    path("runs/<uuid:pk>/cancel/", runs.workflow_run_cancel, name="workflow_run_cancel"),
    path("runs/<uuid:pk>/rerun/", runs.workflow_run_rerun, name="workflow_run_rerun"),
    path("approvals/", approvals.approvals, name="approvals"),
    path("approvals/<int:pk>/decide/", approvals.approval_decide_view, name="approval_decide"),
    path("approvals/link/<str:token>/", approvals.approval_link, name="approval_link"),
]

api_urlpatterns = [
    path("workflows/<str:pk>/runs", api.WorkflowStartView.as_view(), name="workflow-start"),
    path("workflow-runs/<str:pk>/stream", api.RunStreamView.as_view(), name="workflow-run-stream"),
    path("hooks/workflows/<str:pk>", api.WorkflowHookView.as_view(), name="workflow-hook"),
]

api_routes = [
    ("workflows", api.WorkflowViewSet, "workflow"),
    ("workflow-runs", api.RunViewSet, "workflowrun"),
    ("approvals", api.ApprovalViewSet, "approval"),
]
