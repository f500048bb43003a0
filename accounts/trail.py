"""The security-event trail, tamper-evident: each event is sealed with an HMAC of its content and of the seal
of the event before it, so changing, removing or inserting an event breaks the chain from there on, and only
the holder of SECURITY_TRAIL_KEY could seal an edit again.

Writers take a PostgreSQL advisory lock for their transaction before they read the last seal, so concurrent
writers queue up instead of forking the chain (unique sequence numbers back this up). The seal covers what
never changes: the event's kind, time, address, user agent, request id, detail and the ids of its actor,
user and key as they were when it was written (`*_ref`: a deleted user empties the foreign key, not the
reference). `trail_verify` walks the chain and names the first broken link; each verification is kept, so
the next one also notices events removed from the end.
"""

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import UTC

from django.conf import settings
from django.db import connection, transaction

from accounts.models import SecurityEvent, TrailCheck

logger = logging.getLogger("switchboard.security")

TRAIL_LOCK = 0x7EA1_5EA1  # pg_advisory_xact_lock's key for appending to the trail
GENESIS = "0" * 64  # the previous seal of the first event


def _key() -> bytes:
    if settings.SECURITY_TRAIL_KEY:
        return settings.SECURITY_TRAIL_KEY.encode()
    return hmac.new(settings.SECRET_KEY.encode(), b"switchboard security trail", hashlib.sha256).digest()


def seal_of(event: SecurityEvent, key: bytes | None = None) -> str:
    content = {
        "sequence": event.sequence,
        "previous": event.previous_seal,
        "kind": event.kind,
        "at": event.created_at.astimezone(UTC).isoformat(),
        "actor": event.actor_ref,
        "user": event.user_ref,
        "api_key": event.api_key_ref,
        "ip": event.ip_address,
        "user_agent": event.user_agent,
        "request_id": event.request_id,
        "detail": event.detail,
    }
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(key or _key(), text.encode(), hashlib.sha256).hexdigest()


def trail_append(event: SecurityEvent) -> SecurityEvent:
    """Seal a just-created event as the next link of the chain (inside the caller's transaction)."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [TRAIL_LOCK])
        last = SecurityEvent.objects.filter(sequence__isnull=False).order_by("-sequence").only("sequence", "seal")
        last = last.first()
        # The seal covers the values as PostgreSQL gives them back (an address, the JSON detail, the time).
        event.refresh_from_db(fields=["created_at", "ip_address", "detail"])
        event.sequence = last.sequence + 1 if last else 1
        event.previous_seal = last.seal if last else GENESIS
        event.actor_ref, event.user_ref, event.api_key_ref = event.actor_id, event.user_id, event.api_key_id
        event.seal = seal_of(event)
        event.save(update_fields=["sequence", "previous_seal", "actor_ref", "user_ref", "api_key_ref", "seal"])
    return event


@dataclass(frozen=True)
class Break:
    sequence: int | None
    event_id: int | None
    reason: str

    def __str__(self):
        where = [f"#{self.sequence}"] if self.sequence else []
        where += [f"(id {self.event_id})" if self.sequence else f"id {self.event_id}"] if self.event_id else []
        return f"event {' '.join(where)}: {self.reason}"


def trail_verify(*, batch: int = 2000) -> TrailCheck:
    """Walk the whole chain, record the result (the first broken link, if any) and return it."""
    key = _key()
    checked, first_break = 0, None
    previous: SecurityEvent | None = None
    for event in SecurityEvent.objects.order_by("sequence").iterator(chunk_size=batch):
        if event.sequence is None:
            first_break = first_break or Break(None, event.pk, "it is outside the chain (written without a seal)")
            continue
        checked += 1
        if first_break is None:
            first_break = _link_break(event, previous, key)
        previous = event
    last = TrailCheck.objects.order_by("-checked_at").first()
    if first_break is None and last and last.head_sequence:
        if previous is None or previous.sequence < last.head_sequence:
            first_break = Break(last.head_sequence, None, "it was removed: the last verification ended there")
        elif SecurityEvent.objects.filter(sequence=last.head_sequence, seal=last.head_seal).count() != 1:
            first_break = Break(last.head_sequence, None, "it differs from what the last verification saw")
    if first_break is not None:
        logger.error("the security-event trail is broken at %s", first_break)
    return TrailCheck.objects.create(
        ok=first_break is None,
        events=checked,
        head_sequence=previous.sequence if previous else None,
        head_seal=previous.seal if previous else "",
        broken_at=first_break.sequence if first_break else None,
        problem=str(first_break) if first_break else "",
    )


def _link_break(event: SecurityEvent, previous: SecurityEvent | None, key: bytes) -> Break | None:
    expected = previous.sequence + 1 if previous else 1
    if event.sequence != expected:
        return Break(expected, None, f"it is missing (the chain goes from #{expected - 1} to #{event.sequence})")
    if event.previous_seal != (previous.seal if previous else GENESIS):
        return Break(event.sequence, event.pk, f"it does not follow event #{expected - 1}")
    if not hmac.compare_digest(event.seal, seal_of(event, key)):
        return Break(event.sequence, event.pk, "its content or seal was changed")
    for field in ("actor", "user", "api_key"):
        current = getattr(event, f"{field}_id")
        if current is not None and current != getattr(event, f"{field}_ref"):
            return Break(event.sequence, event.pk, f"its {field} was changed")
    return None
