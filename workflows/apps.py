from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "workflows"
    verbose_name = "Workflows"

    key_scopes = {
        "workflows:read": "Read workflows and their runs",
        "workflows:write": "Create and change workflows",
        "workflows:run": "Start, cancel and signal runs; decide approvals",
    }
    default_key_scopes = ["workflows:read", "workflows:run"]

    # Viewers read; members build and run their own workflows.
    role_permissions = {
        "viewer": ["workflows.view_workflow", "workflows.view_workflowrun"],
        "member": [
            "workflows.add_workflow",
            "workflows.change_workflow",
            "workflows.delete_workflow",
            "workflows.add_workflowrun",
            "workflows.change_workflowrun",
        ],
    }

    def ready(self):
        from auditlog.registry import auditlog

        from tasks.models import WebhookEndpoint
        from workflows.models import ApprovalDecision, Workflow, WorkflowVersion

        auditlog.register(Workflow, exclude_fields=["hook_secret_encrypted"])
        auditlog.register(WorkflowVersion)
        auditlog.register(ApprovalDecision)
        WebhookEndpoint.EVENT_TYPES.update(
            {
                "workflow.run.succeeded": "A workflow run of yours succeeded",
                "workflow.run.failed": "A workflow run of yours failed",
                "workflow.run.cancelled": "A workflow run of yours was cancelled",
                "workflow.step.succeeded": "A step of a workflow run of yours succeeded",
                "workflow.step.failed": "A step of a workflow run of yours failed",
                "workflow.approval.requested": "A workflow run of yours waits for an approval (with signed links)",
                "workflow.approval.decided": "Someone decided on an approval of a workflow run of yours",
            }
        )
