"""Quotas: admit a request against every applicable limit, settle it with the real usage.

    reservation = quota_admit(user=..., api_key=..., agent_type="helper", model="gpt", tokens=worst, cost=worst)
    ... provider call ...
    quota_settle(reservation=reservation, tokens=used, cost=used_cost)   # or quota_release() on failure

Admission reserves the request's worst case (estimated input plus max output tokens, priced), so spend
can never pass a budget however many requests are in flight; settlement charges what was really used.
When Redis is unreachable: request limits fall back to a per-process limiter (QUOTA_FAIL_CLOSED makes them
refuse instead), token and cost budgets refuse with 503, both with a log line.

The invocation pipeline (async) does the same in its own Redis pipelines, one round trip for several
steps: `reservation_plan` -> `limiter.admit_call` -> `admission_concluded`, and `settlement_deltas`.
"""

import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache

from accounts.models import SecurityEvent
from accounts.services import security_event_record
from core import local_cache, metrics
from core.exceptions import RateLimited, Unavailable
from quotas.limiter import Counter, RedisLimiter, Refusal, local_limiter, user_tag, window
from quotas.models import LIMITS, LIMITS_BY_FIELD, QuotaPolicy

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
    user_id: int = 0
    counters: list[Counter] = field(default_factory=list)
    remaining: list[int] = field(default_factory=list)
    reserved_tokens: int = 0
    reserved_cost: int = 0  # nano-USD
    local: bool = False
    generation: str = ""  # the Redis data generation the reservation was made in
    hold: str = field(default_factory=lambda: uuid.uuid4().hex)  # what Redis holds the reservation under
    deadline: float = 0  # when an unsettled reservation is given back (its process is gone)

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


def active_policies() -> list[QuotaPolicy]:
    """All active policies, read once per process and dropped when one changes (quotas.invalidation)."""
    return local_cache.get("quotapolicies", "all", load=_load_policies)


async def active_policies_async() -> list[QuotaPolicy]:
    return await local_cache.aget("quotapolicies", "all", load=_load_policies)


def _load_policies() -> list[QuotaPolicy]:
    return list(QuotaPolicy.objects.filter(is_active=True))


def applicable_policies(
    *, user, api_key, agent_type: str, model: str, type_limits: dict, policies: list[QuotaPolicy]
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
        for policy in policies
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


def _counters(policies, user_id: int, tokens: int, cost_nano: int, now: float) -> list[Counter]:
    counters = []
    for name, limits, subject in policies:
        for field_name, value in limits.items():
            dimension, window_name = LIMITS_BY_FIELD[field_name]
            window_id, ttl, length = window(window_name, now)
            amount = {"requests": 1, "tokens": tokens, "cost": cost_nano}[dimension]
            limit = int(Decimal(value) * NANO) if dimension == "cost" else int(value)
            key = f"{user_tag(user_id)}:{name}:{subject}:{field_name}:{window_id}"
            counters.append(Counter(key, limit, amount, ttl, name, field_name, length, dimension != "requests"))
    return counters


# --- admit, settle, release ----------------------------------------------------------------------------


def reservation_plan(
    *, user, api_key, agent_type: str, model: str, tokens: int, cost: Decimal, type_limits: dict, policies, now=None
) -> Reservation:
    """The counters a request adds to and what it reserves; RequestTooLarge when it could never pass."""
    cost_nano = math.ceil(cost * NANO)
    applicable = applicable_policies(
        user=user, api_key=api_key, agent_type=agent_type, model=model, type_limits=type_limits, policies=policies
    )
    now = time.time() if now is None else now
    counters = _counters(applicable, user.pk, tokens, cost_nano, now)
    for counter in counters:
        if counter.amount > counter.limit:
            raise RequestTooLarge(counter)
    return Reservation(
        user_id=user.pk,
        counters=counters,
        reserved_tokens=tokens,
        reserved_cost=cost_nano,
        deadline=now + settings.QUOTA_HOLD_SECONDS,
    )


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
    reservation = reservation_plan(
        user=user,
        api_key=api_key,
        agent_type=agent_type,
        model=model,
        tokens=tokens,
        cost=cost,
        type_limits=type_limits or {},
        policies=active_policies(),
        now=now,
    )
    try:
        outcome = RedisLimiter().admit(user.pk, reservation.counters, reservation.hold, reservation.deadline)
    except Exception as error:
        outcome = admit_without_redis(reservation, error)
    refusal = admission_concluded(reservation, outcome)
    if refusal is not None:
        record_refusal(user, api_key, refusal)
        raise QuotaExceeded(refusal)
    return reservation


def admission_concluded(reservation: Reservation, outcome) -> Refusal | None:
    """Take the limiter's answer into the reservation; the refusal, if it refused."""
    refusal, remaining, reservation.generation = outcome
    reservation.remaining = remaining
    return refusal


def admit_without_redis(reservation: Reservation, error: Exception):
    budgets = [c for c in reservation.counters if LIMITS_BY_FIELD[c.field][0] != "requests"]
    logger.warning(
        "quota limiter: Redis unavailable (%s)", error.__class__.__name__, extra={"metric": "quota_redis_unavailable"}
    )
    if budgets or settings.QUOTA_FAIL_CLOSED:
        raise QuotaUnavailable("Quotas cannot be checked right now; try again shortly.") from error
    reservation.local = True
    return local_limiter.admit(reservation.user_id, reservation.counters)


def settlement_deltas(reservation: Reservation, *, tokens: int, cost: Decimal) -> list[tuple[str, int, int]]:
    """What replaces the reserved worst case with what was really used, as the ledger records it: (counter
    key, delta, amount reserved) for each budget counter.

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
            deltas.append((counter.key, tokens - reservation.reserved_tokens, reservation.reserved_tokens))
        elif dimension == "cost":
            deltas.append((counter.key, used_cost - reservation.reserved_cost, reservation.reserved_cost))
    return deltas


def quota_settle(*, reservation: Reservation, tokens: int, cost: Decimal) -> None:
    """Replace the reserved worst case with what was really used (see settlement_deltas)."""
    deltas = settlement_deltas(reservation, tokens=tokens, cost=cost)
    try:
        limiter = local_limiter if reservation.local else RedisLimiter()
        limiter.adjust(reservation.user_id, deltas, reservation.generation, reservation.hold)
    except Exception as error:
        logger.warning("quota settle failed (%s); counters keep the reservation", error.__class__.__name__)


def quota_holds_release(*, now: float | None = None) -> int:
    """Beat job: give back the reservations of requests that never settled (their process died) once their
    deadline (QUOTA_HOLD_SECONDS after admission) has passed; how many."""
    released = RedisLimiter().release_expired(time.time() if now is None else now)
    if released:
        logger.warning(
            "released %s quota reservations never settled", released, extra={"metric": "quota_holds_released"}
        )
    return released


def quota_release(*, reservation: Reservation) -> None:
    """A failed call: give back every token and dollar reserved (the request itself still counts)."""
    quota_settle(reservation=reservation, tokens=0, cost=Decimal(0))


def record_refusal(user, api_key, refusal: Refusal) -> None:
    metrics.QUOTA_REFUSALS.of(metrics.bounded(refusal.counter.field, LIMITS_BY_FIELD)).inc()
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
