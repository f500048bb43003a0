from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, F, Sum
from django.utils import timezone

from accounts.models import ApiKey, User
from quotas.models import QuotaPolicy, UsageDaily, UsageRecord
from quotas.services.admission import DEFAULTS_NAME


def usage_by_day(*, user=None, days: int = 30) -> list[dict]:
    """Requests, tokens and cost per day from the roll-up, for one user or (user=None) everyone."""
    since = timezone.now().date() - timedelta(days=days - 1)
    rows = UsageDaily.objects.filter(day__gte=since)
    if user is not None:
        rows = rows.filter(user=user)
    return list(
        rows.values("day")
        .annotate(
            requests=Sum("requests"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cost=Sum("cost"),
        )
        .order_by("day")
    )


def usage_by(*, user=None, days: int = 30, dimension: str) -> list[dict]:
    """The same totals per model, agent type or API key over the period."""
    since = timezone.now().date() - timedelta(days=days - 1)
    rows = UsageDaily.objects.filter(day__gte=since)
    if user is not None:
        rows = rows.filter(user=user)
    return list(
        rows.values(dimension)
        .annotate(
            requests=Sum("requests"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cost=Sum("cost"),
        )
        .order_by(dimension)
    )


# --- budgets --------------------------------------------------------------------------------------------

# The limits that are budgets (an amount spent over a day or a month), as opposed to request rates.
BUDGET_LIMITS = ("tokens_per_day", "cost_per_day", "cost_per_month")


@dataclass(frozen=True)
class BudgetUse:
    """What one user (or, for a policy on a key, one key) has spent of one budget in its current window."""

    policy: str  # the policy's name, "@default" for QUOTA_DEFAULTS, "@type-<slug>" for an agent type's limits
    limit: str  # one of BUDGET_LIMITS
    user_id: int
    api_key_id: int | None
    used: Decimal
    allowed: Decimal

    @property
    def percent(self) -> float:
        return float(self.used * 100 / self.allowed) if self.allowed else 0.0

    @property
    def remaining(self) -> Decimal:
        return self.allowed - self.used


@dataclass(frozen=True)
class _Budget:
    policy: str
    limits: dict
    filters: dict
    per_key: bool = False
    role: str = ""


def budget_usage(*, type_limits: dict[str, int] | None = None, now=None) -> list[BudgetUse]:
    """Every budget's use in its current (UTC) window, per user or key that spent anything, from the ledger.

    `type_limits` maps an agent type's slug to its tokens_per_day (agents are above quotas, so the caller
    passes them). A month adds the roll-up of the days before today to today's ledger rows, so the cost is
    one aggregate per budget over at most a day of rows. The ledger trails the answers by the run backlog
    (seconds); reservations of calls in flight are not spending yet.
    """
    now = now or timezone.now()
    found = []
    for budget in _budgets(type_limits or {}):
        group = "api_key_id" if budget.per_key else "user_id"
        for limit, allowed in budget.limits.items():
            spent = _spent(budget.filters, group, limit, now)
            if budget.role:
                spent = _of_role(spent, budget.role)
            found += [
                BudgetUse(
                    policy=budget.policy,
                    limit=limit,
                    user_id=user_id,
                    api_key_id=key_id if budget.per_key else None,
                    used=used,
                    allowed=Decimal(allowed),
                )
                for (key_id, user_id), used in spent.items()
                if used > 0
            ]
    return found


def _budgets(type_limits: dict[str, int]) -> list[_Budget]:
    budgets = []
    if settings.QUOTA_DEFAULTS.get("tokens_per_day"):
        budgets.append(_Budget(DEFAULTS_NAME, {"tokens_per_day": settings.QUOTA_DEFAULTS["tokens_per_day"]}, {}))
    for slug, tokens in sorted(type_limits.items()):
        if tokens:
            budgets.append(_Budget(f"@type-{slug}", {"tokens_per_day": tokens}, {"agent_type": slug}))
    for policy in QuotaPolicy.objects.filter(is_active=True).order_by("name"):
        limits = {name: getattr(policy, name) for name in BUDGET_LIMITS if getattr(policy, name) is not None}
        if not limits:
            continue
        filters = {name: getattr(policy, name) for name in ("agent_type", "model") if getattr(policy, name)}
        if policy.applies_to == QuotaPolicy.AppliesTo.USER:
            filters["user_id"] = policy.user_id
        elif policy.applies_to == QuotaPolicy.AppliesTo.API_KEY:
            filters["api_key_id"] = policy.api_key_id
        per_key = policy.applies_to == QuotaPolicy.AppliesTo.API_KEY
        role = policy.role if policy.applies_to == QuotaPolicy.AppliesTo.ROLE else ""
        budgets.append(_Budget(policy.name, limits, filters, per_key, role))
    return budgets


def _spent(filters: dict, group: str, limit: str, now) -> dict[tuple[int | None, int], Decimal]:
    """(key id or None, user id) -> tokens or USD spent in the limit's current window."""
    today = now.astimezone(UTC).date()
    amount = "cost" if limit.startswith("cost") else "tokens"
    totals: dict[tuple[int | None, int], Decimal] = {}
    sources = [UsageRecord.objects.filter(created_at__gte=datetime.combine(today, time.min, tzinfo=UTC))]
    if limit.endswith("_month") and today.day > 1:
        sources.append(UsageDaily.objects.filter(day__gte=today.replace(day=1), day__lt=today))
    for rows in sources:
        rows = (
            rows.filter(**filters)
            .values(*({group, "user_id"}))
            .annotate(cost=Sum("cost"), tokens=Sum(F("input_tokens") + F("output_tokens")))
        )
        for row in rows:
            subject = (row["api_key_id"] if group == "api_key_id" else None, row["user_id"])
            totals[subject] = totals.get(subject, Decimal(0)) + Decimal(row[amount] or 0)
    return totals


def _of_role(spent: dict, role: str) -> dict:
    users = {user.pk: user for user in User.objects.filter(pk__in={u for _, u in spent}).prefetch_related("groups")}
    return {subject: used for subject, used in spent.items() if users[subject[1]].role == role}


# --- one user's figures, live: today from the ledger, earlier days from the roll-up ---------------------

# How the usage page groups: GET value -> (the column of both tables, the heading of the table's first column).
USAGE_GROUPINGS = {
    "day": ("day", "Day (UTC)"),
    "model": ("model", "Model"),
    "agent_type": ("agent_type", "Agent type"),
    "key": ("api_key", "API key"),
}
_SUMS = ("requests", "input_tokens", "output_tokens", "cost")


def _day_start(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _ledger_sums() -> dict:
    return {
        "requests": Count("id"),
        "input_tokens": Sum("input_tokens"),
        "output_tokens": Sum("output_tokens"),
        "cost": Sum("cost"),
    }


def _rollup_sums() -> dict:
    return {name: Sum(name) for name in _SUMS}


def _add(total: dict, row: dict) -> None:
    for name in _SUMS:
        total[name] = total.get(name, 0) + (row.get(name) or 0)


def usage_totals(*, user, now=None) -> dict[str, dict]:
    """The user's requests, tokens and cost today and this month (UTC), live: today's ledger rows (seconds
    behind the answers) plus the roll-up of the month's earlier days, never the roll-up of today (5 minutes
    behind). Two queries."""
    today = (now or timezone.now()).astimezone(UTC).date()
    live = UsageRecord.objects.filter(user=user, created_at__gte=_day_start(today)).aggregate(**_ledger_sums())
    earlier = UsageDaily.objects.filter(user=user, day__gte=today.replace(day=1), day__lt=today).aggregate(
        **_rollup_sums()
    )
    day, month = {}, {}
    _add(day, live)
    _add(month, live)
    _add(month, earlier)
    for figures in (day, month):
        figures["tokens"] = figures["input_tokens"] + figures["output_tokens"]
    return {"today": day, "month": month}


def usage_live_by(*, user, grouping: str = "day", days: int = 30, now=None) -> list[dict]:
    """The user's usage over the last `days` days per day, model, agent type or key (USAGE_GROUPINGS), with
    today from the ledger and earlier days from the roll-up, so today's figures are live. Each row has a
    `label` for the page; rows are ordered by day, or by cost (most first) for the other groupings."""
    column, _ = USAGE_GROUPINGS[grouping]
    today = (now or timezone.now()).astimezone(UTC).date()
    since = today - timedelta(days=days - 1)
    earlier = UsageDaily.objects.filter(user=user, day__gte=since, day__lt=today)
    live = UsageRecord.objects.filter(user=user, created_at__gte=_day_start(today))
    rows: dict = {}
    if grouping == "day":
        sources = [earlier.values("day").annotate(**_rollup_sums()).order_by(), [live.aggregate(**_ledger_sums())]]
        for row in sources[1]:
            row["day"] = today
    else:
        sources = [
            earlier.values(column).annotate(**_rollup_sums()).order_by(),
            live.values(column).annotate(**_ledger_sums()).order_by(),
        ]
    for source in sources:
        for row in source:
            if row["requests"]:
                _add(rows.setdefault(row[column], {column: row[column]}), row)
    found = list(rows.values())
    for row in found:
        row["tokens"] = row["input_tokens"] + row["output_tokens"]
    if grouping == "day":
        found.sort(key=lambda row: row["day"])
    else:
        found.sort(key=lambda row: (-row["cost"], -row["tokens"], str(row[column])))
    _label(found, grouping, user)
    return found


def _label(rows: list[dict], grouping: str, user) -> None:
    if grouping == "key":
        keys = {key.pk: key for key in ApiKey.objects.filter(user=user, pk__in=[row["api_key"] for row in rows])}
        for row in rows:
            key = keys.get(row["api_key"])
            row["label"] = f"{key.name} ({key.prefix})" if key else "no key (browser or deleted key)"
    else:
        for row in rows:
            row["label"] = row["day"].isoformat() if grouping == "day" else row[USAGE_GROUPINGS[grouping][0]]


def user_budget_usage(*, user, type_limits: dict[str, int] | None = None, now=None) -> list[BudgetUse]:
    """Every budget that applies to the user, with what they spent of it in its current window, 0 included
    (their home page). The same budgets, windows and sums as `budget_usage`, filtered to the user: a role's
    policy if they hold the role, a key's policy per key of theirs. An agent type's daily tokens apply when
    they use agents of that type, so all of them are listed."""
    now = now or timezone.now()
    budgets = _budgets(type_limits or {})
    key_ids = set()
    if any("api_key_id" in budget.filters for budget in budgets):
        key_ids = set(ApiKey.objects.filter(user=user).values_list("pk", flat=True))
    found = []
    for budget in budgets:
        key_id = budget.filters.get("api_key_id")
        if (
            (budget.role and budget.role != user.role)
            or budget.filters.get("user_id", user.pk) != user.pk
            or (key_id is not None and key_id not in key_ids)
        ):
            continue
        for limit, allowed in budget.limits.items():
            spent = _spent({**budget.filters, "user_id": user.pk}, "user_id", limit, now)
            found.append(
                BudgetUse(
                    policy=budget.policy,
                    limit=limit,
                    user_id=user.pk,
                    api_key_id=key_id,
                    used=sum(spent.values(), Decimal(0)),
                    allowed=Decimal(allowed),
                )
            )
    return found


def budget_title(use: BudgetUse) -> str:
    """A budget in words, for people: whose limit it is and over what window."""
    if use.policy == DEFAULTS_NAME:
        whose = "Platform default"
    elif use.policy.startswith("@type-"):
        whose = f"Agents of type {use.policy[6:]}"
    else:
        whose = f"Policy {use.policy}"
    window = {"tokens_per_day": "tokens per day", "cost_per_day": "USD per day", "cost_per_month": "USD per month"}
    return f"{whose}: {window[use.limit]}"
