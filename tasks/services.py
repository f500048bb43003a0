"""Writes and rules of tracked tasks and webhooks."""

import json
import logging
import random
import secrets
import uuid
from base64 import b64encode
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from standardwebhooks import Webhook

from platform_site.correlation import current_request_id
from platform_site.encryption import decrypt, encrypt
from tasks import outbound
from tasks.models import TaskRecord, WebhookAttempt, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger("switchboard.tasks")
Status = TaskRecord.Status


class Conflict(Exception):
    """Valid request, wrong state (answered 409)."""


# --- tracked tasks -------------------------------------------------------------------------------------


def task_start(
    *, kind: str, owner=None, input: dict | None = None, idempotency_key: str = ""
) -> tuple[TaskRecord, bool]:
    """Record a task and send it once the surrounding transaction commits.

    With an idempotency key, asking again (same owner, kind and key) returns the first record and sends
    nothing: (record, created).
    """
    _tracked_task(kind)  # fails early for an unknown kind
    input = input or {}
    if idempotency_key:
        existing = TaskRecord.objects.filter(owner=owner, kind=kind, idempotency_key=idempotency_key).first()
        if existing:
            return existing, False
    try:
        with transaction.atomic():
            record = TaskRecord.objects.create(
                kind=kind,
                owner=owner,
                input=input,
                idempotency_key=idempotency_key,
                request_id=current_request_id() or "",
            )
    except IntegrityError:  # the same key, asked at the same moment
        return TaskRecord.objects.get(owner=owner, kind=kind, idempotency_key=idempotency_key), False
    _send_on_commit(record)
    return record, True


def _tracked_task(kind: str):
    """The Celery task of a kind. Web processes import the apps' task modules on first use (workers at start)."""
    if kind not in current_app.tasks:
        current_app.loader.import_default_modules()
    if kind not in current_app.tasks:
        raise ValueError(f"no tracked task named {kind!r}")
    return current_app.tasks[kind]


def _send_on_commit(record: TaskRecord) -> None:
    task = _tracked_task(record.kind)
    transaction.on_commit(lambda: _send_quietly(task, kwargs=record.input, task_id=str(record.id)))


def _send_quietly(task, **options) -> None:
    """Send a message; with the broker down, log it and leave the row for the beat job that resends."""
    try:
        task.apply_async(**options)
    except Exception:
        logger.exception("could not send %s to the broker; it will be resent", task.name)


def tasks_resend_queued(*, older_than: timedelta = timedelta(minutes=2)) -> int:
    """Beat job: send again tasks still queued long after they were started (their message may be lost).

    Safe because a delivery of a task that has started or finished is dropped by the claim.
    """
    cutoff = timezone.now() - older_than
    stale = list(TaskRecord.objects.filter(status=Status.QUEUED, created_at__lt=cutoff, updated_at__lt=cutoff)[:500])
    for record in stale:
        TaskRecord.objects.filter(pk=record.pk).update(updated_at=timezone.now())
        _send_quietly(_tracked_task(record.kind), kwargs=record.input, task_id=str(record.id))
    return len(stale)


def task_finished(*, task_id, status: str, **fields) -> None:
    """Called by the tracked-task base when a run ends; tells the owner's webhooks."""
    updated = TaskRecord.objects.filter(pk=task_id, status__in=TaskRecord.UNFINISHED).update(
        status=status, finished_at=timezone.now(), **fields
    )
    if updated:
        record = TaskRecord.objects.get(pk=task_id)
        logger.info("task %s %s", record.kind, status, extra={"task_record": str(record.id), "status": status})
        _notify(record)


def task_cancel(*, record: TaskRecord, actor) -> TaskRecord:
    """Cancel a queued or running task: a queued one never starts, a running one stops at its next progress."""
    updated = TaskRecord.objects.filter(pk=record.pk, status__in=TaskRecord.UNFINISHED).update(
        status=Status.CANCELLED, finished_at=timezone.now(), cancelled_by=actor, updated_at=timezone.now()
    )
    if not updated:
        record.refresh_from_db()
        raise Conflict(f"This task has already {record.status}.")
    current_app.control.revoke(str(record.pk))
    record.refresh_from_db()
    logger.info("task %s cancelled", record.kind, extra={"task_record": str(record.id)})
    _notify(record)
    return record


@transaction.atomic
def task_retry(*, record: TaskRecord) -> TaskRecord:
    """Run a failed task again, from the start, under the same id (operators, from the admin)."""
    updated = TaskRecord.objects.filter(pk=record.pk, status=Status.FAILED).update(
        status=Status.QUEUED, error="", result=None, finished_at=None, progress_percent=0, progress_message=""
    )
    if not updated:
        raise Conflict("Only a failed task can be retried.")
    record.refresh_from_db()
    _send_on_commit(record)
    return record


def _notify(record: TaskRecord) -> None:
    if record.owner_id is None:
        return
    from tasks.serializers import TaskRecordSerializer

    webhooks_emit(owner_id=record.owner_id, event_type=f"task.{record.status}", data=TaskRecordSerializer(record).data)


# --- webhook endpoints ---------------------------------------------------------------------------------


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
        raise ValidationError({"url": str(error)}) from error
    return sorted(set(events))


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


def webhook_endpoint_rotate_secret(*, endpoint: WebhookEndpoint, grace: timedelta | None = None) -> str:
    """A new secret; for the grace period events are signed with both, so receivers can switch over."""
    grace = grace if grace is not None else timedelta(hours=settings.WEBHOOK_SECRET_ROTATION_GRACE_HOURS)
    secret = _new_secret()
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted
    endpoint.previous_secret_valid_until = timezone.now() + grace
    endpoint.secret_encrypted = encrypt(secret)
    endpoint.save(update_fields=["secret_encrypted", "previous_secret_encrypted", "previous_secret_valid_until"])
    return secret


# --- deliveries ----------------------------------------------------------------------------------------


def webhooks_emit(*, owner_id: int, event_type: str, data: dict) -> list[WebhookDelivery]:
    """One delivery per active endpoint of the owner subscribed to `event_type`, sent after commit."""
    endpoints = WebhookEndpoint.objects.filter(owner_id=owner_id, is_active=True, events__contains=[event_type])
    deliveries = [_new_delivery(endpoint, event_type, data) for endpoint in endpoints]
    for delivery in deliveries:
        _send_delivery_on_commit(delivery.pk)
    return deliveries


def webhooks_emit_to(*, endpoint: WebhookEndpoint, event_type: str, data: dict) -> list[WebhookDelivery]:
    """One delivery to this endpoint, attempted by the caller (the ping task)."""
    return [_new_delivery(endpoint, event_type, data)]


def _new_delivery(endpoint, event_type, data) -> WebhookDelivery:
    payload = {"type": event_type, "timestamp": timezone.now().isoformat(), "data": data}
    return WebhookDelivery.objects.create(
        endpoint=endpoint,
        event_id=f"msg_{uuid.uuid4().hex}",
        event_type=event_type,
        payload=payload,
        next_attempt_at=timezone.now(),
    )


# A message for a delivery may run this much before its due time (clocks, ETA rounding).
DUE_TOLERANCE = timedelta(seconds=1)


def _send_delivery_on_commit(delivery_id: int, countdown: float = 0) -> None:
    """Send the attempt's message after commit and mark the delivery as dispatched (see deliveries_dispatch_due)."""
    from tasks.tasks import webhook_deliver_task

    WebhookDelivery.objects.filter(pk=delivery_id).update(dispatched_at=timezone.now())
    transaction.on_commit(lambda: _send_quietly(webhook_deliver_task, args=[delivery_id], countdown=countdown))


def retry_delay(attempt: int) -> timedelta | None:
    """How long after failed attempt number `attempt` (1-based) to try again; None when retries are over.

    WEBHOOK_RETRY_SCHEDULE spaced with +-WEBHOOK_RETRY_JITTER, so many failing deliveries spread out.
    """
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    if attempt > len(schedule):
        return None
    jitter = settings.WEBHOOK_RETRY_JITTER
    return timedelta(seconds=schedule[attempt - 1] * random.uniform(1 - jitter, 1 + jitter))


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
            _send_delivery_on_commit(delivery.pk, countdown=delay.total_seconds())
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
        response = outbound.post(
            delivery.endpoint.url, body.encode(), headers, timeout=settings.WEBHOOK_TIMEOUT_SECONDS
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
        logger.warning("webhook endpoint %s disabled: %s", endpoint.pk, reason)


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
        _send_delivery_on_commit(delivery_id)
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
    _send_delivery_on_commit(replay.pk)
    return replay
