from django.urls import path

from workflows import api, views

urlpatterns = [
    path("", views.workflow_list, name="workflows"),
    path("import/", views.workflow_import, name="workflow_import"),
    path("<int:pk>/", views.workflow_detail, name="workflow_detail"),
    path("<int:pk>/start/", views.workflow_start, name="workflow_start"),
    path("<int:pk>/export/", views.workflow_export, name="workflow_export"),
    path("<int:pk>/delete/", views.workflow_delete, name="workflow_delete"),
    path("<int:pk>/versions/<int:number>/rollback/", views.workflow_rollback, name="workflow_rollback"),
    path("<int:pk>/hook-secret/", views.workflow_hook_secret, name="workflow_hook_secret"),
    path("<int:pk>/shares/", views.workflow_share, name="workflow_share"),
    path("<int:pk>/shares/<str:username>/delete/", views.workflow_unshare, name="workflow_unshare"),
    path("<int:pk>/schedules/", views.workflow_schedule_add, name="workflow_schedule_add"),
    path("<int:pk>/schedules/<int:schedule>/delete/", views.workflow_schedule_delete, name="workflow_schedule_delete"),
    path("runs/<uuid:pk>/", views.workflow_run, name="workflow_run"),
    path("runs/<uuid:pk>/cancel/", views.workflow_run_cancel, name="workflow_run_cancel"),
    path("runs/<uuid:pk>/rerun/", views.workflow_run_rerun, name="workflow_run_rerun"),
    path("approvals/", views.approvals, name="approvals"),
    path("approvals/<int:pk>/decide/", views.approval_decide_view, name="approval_decide"),
    path("approvals/link/<str:token>/", views.approval_link, name="approval_link"),
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
