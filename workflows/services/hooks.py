"""Each workflow's inbound webhook: a POST signed with the workflow's secret (Standard Webhooks) starts a
run as the workflow's owner. The message id is the run's idempotency key, so a sender's retry of the same
message starts one run."""

import json

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import Http404
from django.urls import reverse
from standardwebhooks import Webhook, WebhookVerificationError

from core.encryption import decrypt
from workflows.models import Workflow, WorkflowRun
from workflows.services.runs import run_start

NO_HOOK = "No such workflow hook, or the request's signature does not verify with its secret."


def hook_url(workflow: Workflow) -> str:
    return settings.PUBLIC_URL.rstrip("/") + reverse("workflow-hook", args=[workflow.pk])


def hook_receive(*, workflow_id: int, body: bytes, headers) -> tuple[WorkflowRun, bool]:
    workflow = Workflow.objects.select_related("owner", "current_version").filter(pk=workflow_id).first()
    if workflow is None:
        raise Http404(NO_HOOK)
    try:
        payload = Webhook(decrypt(workflow.hook_secret_encrypted)).verify(body, dict(headers))
    except WebhookVerificationError:
        raise Http404(NO_HOOK) from None
    except json.JSONDecodeError:
        raise ValidationError({"body": "A JSON body."}) from None
    inputs = payload["inputs"] if isinstance(payload, dict) and "inputs" in payload else {"payload": payload}
    return run_start(
        workflow=workflow,
        user=workflow.owner,
        inputs=inputs,
        trigger=WorkflowRun.Trigger.WEBHOOK,
        idempotency_key=f"hook:{headers.get('webhook-id', '')}"[:200],
    )
