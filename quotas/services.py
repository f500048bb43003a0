"""Quotas: admit a request against every applicable limit, settle it with the real usage, keep the ledger.

    reservation = quota_admit(user=..., api_key=..., agent_type="helper", model="gpt", tokens=worst, cost=worst)
    ... provider call ...
    quota_settle(reservation=reservation, tokens=used, cost=used_cost)   # or quota_release() on failure

Admission reserves the request's worst case (estimated input plus max output tokens, priced), so spend
can never pass a budget however many requests are in flight; settlement gives back what was not used.
When Redis is unreachable: request limits fall back to a per-process limiter (QUOTA_FAIL_CLOSED makes them
refuse instead), token and cost budgets refuse with 503, both with a log line.
"""

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone

from accounts.models import SecurityEvent
from accounts.services import security_event_record
from core.exceptions import RateLimited, Unavailable
from quotas.limiter import Counter, RedisLimiter, Refusal, local_limiter, window
from quotas.models import LIMITS, LIMITS_BY_FIELD, QuotaPolicy, UsageDaily, UsageRecord

logger = logging.getLogger("switchboard.quotas")

NANO = Decimal(1_000_000_000)  # costs are counted in nano-dollars: integers, exact
DEFAULTS_NAME = "@default"
QUOTA_RETRY_AFTER_SECONDS = 5  # when Redis is unreachable


class QuotaExceeded(RateLimited):
    code = "quota_exceeded"

    def __init__(self, refusal: Refusal):
        counter = refusal.counter
        unit = {"requests": "requests", "tokens": "tokens", "cost": "USD"}[LIMITS_BY_FIELD[counter.field][0]]
        limit = counter.limit / NANO if unit == "USD" else counter.limit
        super().__init__(
            f"Quota {counter.policy!r} exceeded: {counter.field} is {limit} {unit} per "
            f"{counter.window_seconds} s; it resets in {refusal.reset_seconds} s.",
            retry_after=refusal.reset_seconds,
        )
        self.refusal = refusal
        self.body = {
            "policy": counter.policy,
            "limit": counter.field,
            "value": str(limit),
            "window_seconds": counter.window_seconds,
            "reset_seconds": refusal.reset_seconds,
        }
        self.extra_body = {"quota": self.body}
        self.headers = refusal_headers(refusal)


class RequestTooLarge(Exception):
    """The request alone needs more than a limit allows in a whole window: it can never pass (400)."""

    def __init__(self, counter: Counter):
        super().__init__(
            f"This request may need {counter.amount} against the limit {counter.field} of policy "
            f"{counter.policy!r} ({counter.limit}); lower max_tokens or shorten the conversation."
        )


class QuotaUnavailable(Unavailable):
    """Redis is unreachable and this request needs a budget (or the limits fail closed): 503."""

    def __init__(self, message: str):
        super().__init__(message, retry_after=QUOTA_RETRY_AFTER_SECONDS)


@dataclass
class Reservation:
    counters: list[Counter] = field(default_factory=list)
    remaining: list[int] = field(default_factory=list)
    reserved_tokens: int = 0
    reserved_cost: int = 0  # nano-USD
    local: bool = False
    generation: str = ""  # the Redis data generation the reservation was made in

    def headers(self) -> dict[str, str]:
        """RateLimit headers (IETF draft) for the tightest limit of the request."""
        if not self.counters:
            return {}
        index = min(range(len(self.counters)), key=lambda i: self.remaining[i] / max(self.counters[i].limit, 1))
        counter, remaining = self.counters[index], max(self.remaining[index], 0)
        return _ratelimit_headers(counter, remaining, counter.ttl)


def _ratelimit_headers(counter: Counter, remaining: int, reset: int) -> dict[str, str]:
    return {
        "RateLimit-Policy": f'"{counter.policy}";q={counter.limit};w={counter.window_seconds}',
        "RateLimit": f'"{counter.policy}";r={remaining};t={reset}',
    }


def refusal_headers(refusal: Refusal) -> dict[str, str]:
    return {
        "Retry-After": str(refusal.reset_seconds),
        **_ratelimit_headers(refusal.counter, max(refusal.counter.limit - refusal.current, 0), refusal.reset_seconds),
    }


# --- which limits apply --------------------------------------------------------------------------------

_policy_cache: dict = {"policies": [], "loaded_at": 0.0}


def _active_policies() -> list[QuotaPolicy]:
    """All active policies, re-read at most every QUOTA_POLICY_CACHE_SECONDS (the table is small, the path hot)."""
    if time.monotonic() - _policy_cache["loaded_at"] > settings.QUOTA_POLICY_CACHE_SECONDS:
        _policy_cache["policies"] = list(QuotaPolicy.objects.filter(is_active=True))
        _policy_cache["loaded_at"] = time.monotonic()
    return _policy_cache["policies"]


def applicable_policies(
    *, user, api_key, agent_type: str, model: str, type_limits: dict
) -> list[tuple[str, dict, str]]:
    """(name, limits, counter subject) of every policy that applies: settings, agent type, then the table."""
    user_subject = f"u{user.pk}"
    found = []
    # Built-in names start with "@", which no policy name (a slug) can: their counters never mix.
    defaults = {name: value for name, value in settings.QUOTA_DEFAULTS.items() if value is not None}
    if defaults:
        found.append((DEFAULTS_NAME, defaults, user_subject))
    type_defaults = {name: value for name, value in type_limits.items() if value is not None}
    if type_defaults:
        found.append((f"@type-{agent_type}", type_defaults, user_subject))
    role = user.role
    policies = [
        policy
        for policy in _active_policies()
        if (
            policy.applies_to == "everyone"
            or (policy.applies_to == "role" and policy.role == role)
            or (policy.applies_to == "user" and policy.user_id == user.pk)
            or (policy.applies_to == "api_key" and api_key is not None and policy.api_key_id == api_key.pk)
        )
        and policy.agent_type in ("", agent_type)
        and policy.model in ("", model)
    ]
    for policy in policies:
        limits = {name: getattr(policy, name) for name, _, _ in LIMITS if getattr(policy, name) is not None}
        subject = f"k{api_key.pk}" if policy.applies_to == "api_key" else user_subject
        found.append((policy.name, limits, subject))
    return found


def _counters(policies, tokens: int, cost_nano: int, now: float) -> list[Counter]:
    counters = []
    for name, limits, subject in policies:
        for field_name, value in limits.items():
            dimension, window_name = LIMITS_BY_FIELD[field_name]
            window_id, ttl, length = window(window_name, now)
            amount = {"requests": 1, "tokens": tokens, "cost": cost_nano}[dimension]
            limit = int(Decimal(value) * NANO) if dimension == "cost" else int(value)
            key = f"sb:q:{name}:{subject}:{field_name}:{window_id}"
            counters.append(Counter(key, limit, amount, ttl, name, field_name, length))
    return counters


# --- admit, settle, release ----------------------------------------------------------------------------


def quota_admit(
    *,
    user,
    api_key,
    agent_type: str,
    model: str,
    tokens: int,
    cost: Decimal,
    type_limits: dict | None = None,
    now: float | None = None,
) -> Reservation:
    """Count the request against every applicable limit at once, reserving `tokens` and `cost` (worst case)."""
    cost_nano = math.ceil(cost * NANO)
    policies = applicable_policies(
        user=user, api_key=api_key, agent_type=agent_type, model=model, type_limits=type_limits or {}
    )
    counters = _counters(policies, tokens, cost_nano, time.time() if now is None else now)
    for counter in counters:
        if counter.amount > counter.limit:
            raise RequestTooLarge(counter)
    reservation = Reservation(counters=counters, reserved_tokens=tokens, reserved_cost=cost_nano)
    try:
        refusal, remaining, reservation.generation = RedisLimiter().admit(counters)
    except Exception as error:
        refusal, remaining, reservation.generation = _admit_without_redis(reservation, error)
    if refusal is not None:
        _record_refusal(user, api_key, refusal)
        raise QuotaExceeded(refusal)
    reservation.remaining = remaining
    return reservation


def _admit_without_redis(reservation: Reservation, error: Exception):
    budgets = [c for c in reservation.counters if LIMITS_BY_FIELD[c.field][0] != "requests"]
    logger.warning(
        "quota limiter: Redis unavailable (%s)", error.__class__.__name__, extra={"metric": "quota_redis_unavailable"}
    )
    if budgets or settings.QUOTA_FAIL_CLOSED:
        raise QuotaUnavailable("Quotas cannot be checked right now; try again shortly.") from error
    reservation.local = True
    return local_limiter.admit(reservation.counters)


def quota_settle(*, reservation: Reservation, tokens: int, cost: Decimal) -> None:
    """Replace the reserved worst case with what was really used, as the ledger records it.

    A provider may spend past the reservation (one that ignores max_tokens): the excess is counted too, so
    the counters keep agreeing with the ledger and, once a budget is overrun, the next request is refused.
    """
    used_cost = math.ceil(cost * NANO)
    if tokens > reservation.reserved_tokens or used_cost > reservation.reserved_cost:
        logger.warning(
            "usage above its reservation, charged in full: %s tokens (reserved %s), %s nano-USD (reserved %s)",
            tokens,
            reservation.reserved_tokens,
            used_cost,
            reservation.reserved_cost,
            extra={"metric": "quota_reservation_exceeded"},
        )
    deltas = []
    for counter in reservation.counters:
        dimension = LIMITS_BY_FIELD[counter.field][0]
        if dimension == "tokens":
            deltas.append((counter.key, tokens - reservation.reserved_tokens))
        elif dimension == "cost":
            deltas.append((counter.key, used_cost - reservation.reserved_cost))
    try:
        (local_limiter if reservation.local else RedisLimiter()).adjust(deltas, reservation.generation)
    except Exception as error:
        logger.warning("quota settle failed (%s); counters keep the reservation", error.__class__.__name__)


def quota_release(*, reservation: Reservation) -> None:
    """A failed call: give back every token and dollar reserved (the request itself still counts)."""
    quota_settle(reservation=reservation, tokens=0, cost=Decimal(0))


def _record_refusal(user, api_key, refusal: Refusal) -> None:
    key = f"quota-refused:{user.pk}:{refusal.counter.policy}:{refusal.counter.field}"
    try:
        first = cache.add(key, 1, timeout=60)
    except Exception:  # without Redis, log rather than write a row per refused request
        logger.warning("quota refused for user %s: %s", user.pk, refusal.counter.field)
        first = False
    if first:  # one security event a minute per user and limit
        security_event_record(
            kind=SecurityEvent.Kind.QUOTA_EXCEEDED,
            user=user,
            api_key=api_key,
            policy=refusal.counter.policy,
            limit=refusal.counter.field,
        )


# --- the ledger ----------------------------------------------------------------------------------------


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
    for key in redis.scan_iter(match=f"sb:q:*:u*:tokens_per_day:{window_id}", count=1000):
        _, _, name, subject, _, _ = key.decode().split(":")
        if name not in names:
            continue
        user_id, counted = int(subject[1:]), int(redis.get(key) or 0)
        if counted != ledger.get(user_id, 0):
            row = {"user": user_id, "policy": name, "ledger_tokens": ledger.get(user_id, 0), "counter_tokens": counted}
            drift.append(row)
            logger.warning("quota drift: %s", row, extra={"metric": "quota_drift"})
    return sorted(drift, key=lambda row: (row["user"], row["policy"]))
