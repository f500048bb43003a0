"""The usage ledger (one row per run), its daily roll-up and its reconciliation with the Redis counters."""

import logging
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone

from quotas.limiter import RedisLimiter
from quotas.models import QuotaPolicy, UsageDaily, UsageRecord
from quotas.services.admission import DEFAULTS_NAME

logger = logging.getLogger("switchboard.quotas")


def usage_record(
    *,
    run_id,
    user,
    api_key,
    agent_type: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cost: Decimal,
    cached: bool,
) -> UsageRecord:
    return UsageRecord.objects.create(
        run_id=run_id,
        user=user,
        api_key=api_key,
        agent_type=agent_type,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost=cost,
        cached=cached,
    )


def _day_start(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


@transaction.atomic
def usage_roll_up(*, day: date) -> int:
    """Recompute one day's roll-up from the ledger (idempotent: run it again any time)."""
    start = _day_start(day)
    rows = (
        UsageRecord.objects.filter(created_at__gte=start, created_at__lt=start + timedelta(days=1))
        .values("user_id", "api_key_id", "agent_type", "model")
        .annotate(
            requests=Count("id"), input_tokens=Sum("input_tokens"), output_tokens=Sum("output_tokens"), cost=Sum("cost")
        )
    )
    UsageDaily.objects.filter(day=day).delete()
    UsageDaily.objects.bulk_create(UsageDaily(day=day, **row) for row in rows)
    return len(rows)


def usage_reconcile(*, day: date | None = None) -> list[dict]:
    """Compare the Redis day counters of tokens with the ledger, per user and policy; log and return drift.

    Every day counter of a policy that counts all of a user's requests (no agent type or model filter) is
    read, so a reservation never settled shows up as well as a ledger row never counted. A request still
    in flight shows as drift until it settles.
    """
    day = day or timezone.now().date()
    names = {DEFAULTS_NAME} if settings.QUOTA_DEFAULTS.get("tokens_per_day") else set()
    names |= set(
        QuotaPolicy.objects.filter(
            is_active=True,
            tokens_per_day__isnull=False,
            agent_type="",
            model="",
            applies_to__in=["everyone", "role", "user"],
        ).values_list("name", flat=True)
    )
    start = _day_start(day)
    ledger = dict(
        UsageRecord.objects.filter(created_at__gte=start, created_at__lt=start + timedelta(days=1))
        .values("user_id")
        .annotate(tokens=Sum("input_tokens") + Sum("output_tokens"))
        .values_list("user_id", "tokens")
    )
    window_id = str(int(start.timestamp()) // 86400)
    redis = RedisLimiter().redis
    drift = []
    for key in redis.scan_iter(match=f"sb:q:*:*:u*:tokens_per_day:{window_id}", count=1000):
        _, _, _, name, subject, _, _ = key.decode().split(":")
        if name not in names:
            continue
        user_id, counted = int(subject[1:]), int(redis.get(key) or 0)
        if counted != ledger.get(user_id, 0):
            row = {"user": user_id, "policy": name, "ledger_tokens": ledger.get(user_id, 0), "counter_tokens": counted}
            drift.append(row)
            logger.warning("quota drift: %s", row, extra={"metric": "quota_drift"})
    return sorted(drift, key=lambda row: (row["user"], row["policy"]))
