from celery import shared_task
from django.conf import settings

from tasks.models import WebhookDelivery, WebhookEndpoint
from tasks.services import records, webhooks
from tasks.services.delivery import webhook_attempt
from tasks.tracked import tracked_task

# A slow receiver cannot hold a worker longer than this (each socket read has WEBHOOK_TIMEOUT_SECONDS).
WEBHOOK_TIME_LIMITS = {
    "soft_time_limit": settings.WEBHOOK_TIMEOUT_SECONDS * 3,
    "time_limit": settings.WEBHOOK_TIMEOUT_SECONDS * 3 + 10,
}


@shared_task(name="webhooks.deliver", acks_late=True, reject_on_worker_lost=True, **WEBHOOK_TIME_LIMITS)
def webhook_deliver_task(delivery_id: int) -> str:
    """One attempt of a delivery; the service schedules the next one. Receivers dedupe on webhook-id."""
    delivery = webhook_attempt(delivery_id=delivery_id)
    return delivery.status if delivery else "gone"


@shared_task(name="webhooks.dispatch_due")
def webhooks_dispatch_due_task() -> int:
    """Beat job: send deliveries whose next attempt is due."""
    return webhooks.deliveries_dispatch_due()


@shared_task(name="tasks.resend_queued")
def tasks_resend_queued_task() -> int:
    """Beat job: send again tracked tasks whose message never reached a worker (broker down at the time)."""
    return records.tasks_resend_queued()


@tracked_task("webhooks.ping", max_retries=0, **WEBHOOK_TIME_LIMITS)
def webhook_ping_task(self, *, endpoint_id: int) -> dict:
    """Send a test event to one endpoint and report what the receiver answered."""
    endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
    [delivery] = webhooks.webhooks_emit_to(endpoint=endpoint, event_type="webhook.ping", data={"endpoint": endpoint.pk})
    delivery = webhook_attempt(delivery_id=delivery.pk)
    last = delivery.attempt_log.order_by("-number").first()
    return {
        "delivered": delivery.status == WebhookDelivery.Status.SUCCEEDED,
        "status_code": last.status_code if last else None,
        "error": last.error if last else "",
    }
