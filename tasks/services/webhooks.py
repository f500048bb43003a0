"""Webhook endpoints, the events emitted to them, and the dispatch of their deliveries."""

import random
import secrets
import uuid
from base64 import b64encode
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core import local_cache
from core.encryption import encrypt
from tasks import outbound
from tasks.broker import send_on_commit
from tasks.models import WebhookDelivery, WebhookEndpoint

# The task that sends a test event: it emits that event and nothing else (no task.* event of its own).
PING_TASK = "webhooks.ping"


def _new_secret() -> str:
    return "whsec_" + b64encode(secrets.token_bytes(24)).decode()


def _validate_endpoint(url: str, events) -> list[str]:
    unknown = sorted(set(events) - WebhookEndpoint.EVENT_TYPES.keys())
    if unknown:
        raise ValidationError({"events": f"Unknown event types: {', '.join(unknown)}."})
    if not events:
        raise ValidationError({"events": "Subscribe to at least one event type."})
    try:
        outbound.check_url(url)
    except outbound.UnsafeDestination as error:
        raise ValidationError({"url": str(error) + _allow_hint(url, error)}) from error
    return sorted(set(events))


def _allow_hint(url: str, error: outbound.UnsafeDestination) -> str:
    """In development, how to let a refused local host receive webhooks anyway; never in production."""
    if settings.PRODUCTION or "non-public address" not in str(error):
        return ""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f" In development, set WEBHOOK_ALLOWED_HOSTS={parts.hostname}:{port} to allow this host."


def webhook_endpoint_create(*, owner, url: str, events, description: str = "") -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret, which is shown once."""
    events = _validate_endpoint(url, events)
    secret = _new_secret()
    endpoint = WebhookEndpoint.objects.create(
        owner=owner, url=url, events=events, description=description, secret_encrypted=encrypt(secret)
    )
    return endpoint, secret


def webhook_endpoint_update(*, endpoint: WebhookEndpoint, **fields) -> WebhookEndpoint:
    """Change url, events, description or is_active; re-enabling clears the failure count."""
    url = fields.get("url", endpoint.url)
    events = _validate_endpoint(url, fields.get("events", endpoint.events))
    endpoint.url, endpoint.events = url, events
    endpoint.description = fields.get("description", endpoint.description)
    if fields.get("is_active") and not endpoint.is_active:
        endpoint.is_active, endpoint.disabled_reason, endpoint.disabled_at = True, "", None
        endpoint.consecutive_failures = 0
    elif fields.get("is_active") is False:
        endpoint.is_active, endpoint.disabled_reason, endpoint.disabled_at = False, "Disabled by you.", timezone.now()
    endpoint.save()
    return endpoint


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Delete the endpoint with its deliveries and their attempts."""
    endpoint.delete()


def webhook_ping_start(*, endpoint: WebhookEndpoint, owner, idempotency_key: str = ""):
    """Send a test event to the endpoint in the background: (the task record, whether it was created)."""
    from tasks.services.records import task_start  # records tells webhooks when tasks end

    return task_start(kind=PING_TASK, owner=owner, input={"endpoint_id": endpoint.pk}, idempotency_key=idempotency_key)


def webhook_endpoint_rotate_secret(*, endpoint: WebhookEndpoint, grace: timedelta | None = None) -> str:
    """A new secret; for the grace period events are signed with both, so receivers can switch over."""
    grace = grace if grace is not None else timedelta(hours=settings.WEBHOOK_SECRET_ROTATION_GRACE_HOURS)
    secret = _new_secret()
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted
    endpoint.previous_secret_valid_until = timezone.now() + grace
    endpoint.secret_encrypted = encrypt(secret)
    endpoint.save(update_fields=["secret_encrypted", "previous_secret_encrypted", "previous_secret_valid_until"])
    return secret


def webhooks_emit(*, owner_id: int, event_type: str, data) -> list[WebhookDelivery]:
    """One delivery per active endpoint of the owner subscribed to `event_type`, sent after commit. `data` may
    be a function that builds it: called only when an endpoint is subscribed (most owners have none)."""
    endpoint_ids = [pk for pk, events in _subscriptions(owner_id) if event_type in events]
    if endpoint_ids and callable(data):
        data = data()
    deliveries = [_new_delivery(endpoint_id, event_type, data) for endpoint_id in endpoint_ids]
    for delivery in deliveries:
        send_delivery_on_commit(delivery.pk)
    return deliveries


def webhooks_emit_to(*, endpoint: WebhookEndpoint, event_type: str, data: dict) -> list[WebhookDelivery]:
    """One delivery to this endpoint, attempted by the caller (the ping task)."""
    return [_new_delivery(endpoint.pk, event_type, data)]


def _subscriptions(owner_id: int) -> list[tuple[int, list[str]]]:
    """The owner's active endpoints and their events, kept in the process (every task that ends asks; most
    owners have none) and dropped everywhere when one changes (tasks.invalidation)."""
    return local_cache.get(
        "webhook-endpoints",
        owner_id,
        load=lambda: list(
            WebhookEndpoint.objects.filter(owner_id=owner_id, is_active=True).values_list("pk", "events")
        ),
    )


def _new_delivery(endpoint_id: int, event_type, data) -> WebhookDelivery:
    payload = {"type": event_type, "timestamp": timezone.now().isoformat(), "data": data}
    return WebhookDelivery.objects.create(
        endpoint_id=endpoint_id,
        event_id=f"msg_{uuid.uuid4().hex}",
        event_type=event_type,
        payload=payload,
        next_attempt_at=timezone.now(),
    )


def send_delivery_on_commit(delivery_id: int, countdown: float = 0) -> None:
    """Send the attempt's message after commit and mark the delivery as dispatched (see deliveries_dispatch_due)."""
    from tasks.tasks import webhook_deliver_task

    WebhookDelivery.objects.filter(pk=delivery_id).update(dispatched_at=timezone.now())
    send_on_commit(webhook_deliver_task, args=[delivery_id], countdown=countdown)


def retry_delay(attempt: int) -> timedelta | None:
    """How long after failed attempt number `attempt` (1-based) to try again; None when retries are over.

    WEBHOOK_RETRY_SCHEDULE spaced with +-WEBHOOK_RETRY_JITTER, so many failing deliveries spread out.
    """
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    if attempt > len(schedule):
        return None
    jitter = settings.WEBHOOK_RETRY_JITTER
    return timedelta(seconds=schedule[attempt - 1] * random.uniform(1 - jitter, 1 + jitter))


def deliveries_dispatch_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """Send the pending deliveries whose next attempt is due (beat job, for waits too long to hold)."""
    now = now or timezone.now()
    # A delivery whose message went out recently is in a worker's hands (or held for its countdown); one
    # dispatched long ago, or never, has lost its message or waits on the database: send it.
    stale = now - timedelta(seconds=settings.WEBHOOK_MAX_COUNTDOWN_SECONDS * 2)
    due = list(
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
        .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=stale))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    for delivery_id in due:
        send_delivery_on_commit(delivery_id)
    return len(due)


@transaction.atomic
def delivery_replay(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a finished delivery again (operators): same event id and payload, a fresh round of attempts."""
    replay = WebhookDelivery.objects.create(
        endpoint=delivery.endpoint,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        payload=delivery.payload,
        next_attempt_at=timezone.now(),
    )
    send_delivery_on_commit(replay.pk)
    return replay
