"""One delivery attempt: the event signed per the Standard Webhooks specification, POSTed through the
outbound guard, recorded, and followed by the next attempt or the end of the delivery."""

import json
import logging
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from opentelemetry.trace import SpanKind
from standardwebhooks import Webhook

from core import local_cache, tracing
from core.encryption import decrypt
from tasks import outbound
from tasks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tasks.services.webhooks import retry_delay, send_delivery_on_commit

logger = logging.getLogger("switchboard.tasks")


# A message for a delivery may run this much before its due time (clocks, ETA rounding).
DUE_TOLERANCE = timedelta(seconds=1)


def signature_headers(endpoint: WebhookEndpoint, event_id: str, body: str, now: datetime) -> dict[str, str]:
    """The Standard Webhooks headers; during a secret rotation the signature header carries both."""
    secrets_in_use = [decrypt(endpoint.secret_encrypted)]
    if (
        endpoint.previous_secret_encrypted
        and endpoint.previous_secret_valid_until
        and endpoint.previous_secret_valid_until > now
    ):
        secrets_in_use.append(decrypt(endpoint.previous_secret_encrypted))
    signatures = [Webhook(secret).sign(event_id, now, body) for secret in secrets_in_use]
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
        "user-agent": "Switchboard-Webhooks/1",
    }


def _lease() -> timedelta:
    """How long an attempt holds its delivery: the whole request may take this long before another may try."""
    return timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS * 3 + 30)


def webhook_attempt(*, delivery_id: int) -> WebhookDelivery | None:
    """Make one attempt of a pending delivery, record it, and schedule the next or close the delivery.

    The attempt first leases the delivery (moves its next attempt past the request's deadline), so a second
    message for the same delivery, early or duplicated, finds nothing due and does nothing. No transaction is
    held during the HTTP request.
    """
    now = timezone.now()
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now + DUE_TOLERANCE
    ).update(next_attempt_at=now + _lease(), dispatched_at=None)
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if not claimed:  # not due (a duplicate or early message), finished, or deleted with its endpoint
        return delivery
    endpoint = delivery.endpoint
    if not endpoint.is_active:
        return _close(delivery, WebhookDelivery.Status.FAILED)
    number = delivery.attempts + 1
    attempt, platform_fault = _post_event(delivery, number, now)
    with transaction.atomic():
        attempt.save()
        delivery.attempts = number
        delivery.save(update_fields=["attempts"])
        logger.info(
            "webhook attempt %s of %s: %s",
            number,
            delivery.event_id,
            attempt.status_code or attempt.error,
            extra={"endpoint_id": endpoint.pk, "status_code": attempt.status_code, "latency_ms": attempt.latency_ms},
        )
        if attempt.succeeded:
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=0)
            return _close(delivery, WebhookDelivery.Status.SUCCEEDED)
        if not platform_fault:  # our own failure must not count against the receiver
            _count_failure(endpoint, gone=attempt.status_code == 410)
        delay = None if attempt.status_code == 410 else retry_delay(number)
        if delay is None:
            return _close(delivery, WebhookDelivery.Status.FAILED)
        delivery.next_attempt_at = timezone.now() + delay
        delivery.save(update_fields=["next_attempt_at"])
        if delay.total_seconds() <= settings.WEBHOOK_MAX_COUNTDOWN_SECONDS:
            send_delivery_on_commit(delivery.pk, countdown=delay.total_seconds())
        # longer waits are picked up by the beat job `webhooks.dispatch_due`
        return delivery


def _post_event(delivery: WebhookDelivery, number: int, now: datetime) -> tuple[WebhookAttempt, bool]:
    """One POST of the event: the attempt to record, and whether a failure was ours rather than the receiver's."""
    attempt = WebhookAttempt(delivery=delivery, number=number, started_at=now)
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True)
    try:
        headers = signature_headers(delivery.endpoint, delivery.event_id, body, now)
    except ValueError as error:  # the signing secret cannot be decrypted (FIELD_ENCRYPTION_KEYS changed)
        logger.error("webhook endpoint %s: %s", delivery.endpoint_id, error)
        attempt.error = "Switchboard could not sign the event; operators have been alerted."
        return attempt, True
    try:
        with tracing.span("POST", kind=SpanKind.CLIENT, **_span_attributes(delivery)):
            response = outbound.post(
                delivery.endpoint.url,
                body.encode(),
                tracing.inject(headers),  # the receiver may join the trace (W3C traceparent)
                timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
            )
    except outbound.UnsafeDestination as error:
        attempt.error = str(error)
    except Exception as error:  # refused, timed out, TLS, a malformed answer: all the receiver's failures
        attempt.error = f"{error.__class__.__name__}: {error}"[:500]
    else:
        attempt.status_code, attempt.latency_ms = response.status, response.latency_ms
        attempt.succeeded = 200 <= response.status < 300
        if 300 <= response.status < 400:
            attempt.error = "Redirects are not followed."
        elif not attempt.succeeded:
            attempt.error = response.body_excerpt[:500]
    return attempt, False


def _close(delivery: WebhookDelivery, status: str) -> WebhookDelivery:
    delivery.status, delivery.finished_at, delivery.next_attempt_at = status, timezone.now(), None
    delivery.save(update_fields=["status", "finished_at", "next_attempt_at"])
    return delivery


def _count_failure(endpoint: WebhookEndpoint, *, gone: bool) -> None:
    """A 410 disables the endpoint at once; WEBHOOK_DISABLE_AFTER_FAILURES failed attempts in a row too."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=F("consecutive_failures") + 1)
    endpoint.refresh_from_db(fields=["consecutive_failures", "is_active"])
    reason = ""
    if gone:
        reason = "The receiver answered 410 Gone."
    elif endpoint.consecutive_failures >= settings.WEBHOOK_DISABLE_AFTER_FAILURES:
        reason = f"{endpoint.consecutive_failures} failed attempts in a row."
    if reason and endpoint.is_active:
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
            is_active=False, disabled_reason=reason, disabled_at=timezone.now()
        )
        local_cache.invalidate("webhook-endpoints", endpoint.owner_id)  # an update() sends no signal
        logger.warning("webhook endpoint %s disabled: %s", endpoint.pk, reason)


def _span_attributes(delivery: WebhookDelivery) -> dict:
    url = urlsplit(delivery.endpoint.url)
    return {
        "http__request__method": "POST",
        "server__address": url.hostname,
        "server__port": url.port,
        "switchboard__webhook__event_type": delivery.event_type,
    }
