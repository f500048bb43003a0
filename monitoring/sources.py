"""What each kind of alert rule looks at: one function per kind, answering the subjects that meet the rule now.

A source answers `{subject: Reading}` for every subject at or past the rule's threshold (an empty dict: all
clear), or None when it cannot tell (its data store is down): the evaluator then leaves that rule's alerts as
they are rather than resolving them on missing data.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.core.cache import cache
from django.db.models import Count, Q

from accounts.models import ApiKey, TrailCheck, User
from agents import breaker
from agents.models import AgentRun, AgentType, LanguageModel, Provider
from monitoring import error_log
from monitoring.models import AlertRule
from quotas.selectors import budget_usage
from tasks import heartbeats
from tasks.models import TaskRecord
from tasks.selectors import queue_oldest_ages, worker_queues

logger = logging.getLogger("switchboard.monitoring")


@dataclass(frozen=True)
class Reading:
    value: Decimal
    summary: str


def error_rate(rule: AlertRule, now) -> dict[str, Reading]:
    """The share of agent runs that failed over the window (refusals by quotas are not failures)."""
    counts = AgentRun.objects.filter(created_at__gte=now - timedelta(minutes=rule.window_minutes)).aggregate(
        failed=Count("pk", filter=Q(status=AgentRun.Status.FAILED)),
        succeeded=Count("pk", filter=Q(status=AgentRun.Status.SUCCEEDED)),
    )
    judged = counts["failed"] + counts["succeeded"]
    if judged == 0 or judged < rule.min_runs:
        return {}
    rate = Decimal(counts["failed"] * 100) / judged
    if rate < rule.threshold:
        return {}
    summary = f"{rate:.1f}% of {judged} agent runs failed in the last {rule.window_minutes} min"
    return {"all agents": Reading(rate.quantize(Decimal("0.01")), summary)}


def provider_failures(rule: AlertRule, now) -> dict[str, Reading] | None:
    """Failed runs per provider over the window, and any provider whose circuit breaker is open."""
    provider_of = dict(LanguageModel.objects.values_list("name", "provider__name"))
    failures: dict[str, int] = {}
    rows = (
        AgentRun.objects.filter(
            created_at__gte=now - timedelta(minutes=rule.window_minutes), status=AgentRun.Status.FAILED
        )
        .values("model_name")
        .annotate(failed=Count("pk"))
    )
    for row in rows:
        provider = provider_of.get(row["model_name"], "other")
        failures[provider] = failures.get(provider, 0) + row["failed"]
    names = list(Provider.objects.order_by("name").values_list("name", flat=True))
    states = breaker.states(names)
    if names and not states:
        return None  # Redis cannot say whether a breaker is open
    found = {}
    for name in sorted(set(failures) | {name for name, state in states.items() if state == breaker.OPEN}):
        count = failures.get(name, 0)
        is_open = states.get(name) == breaker.OPEN
        if count < rule.threshold and not is_open:
            continue
        parts = [f"{count} failed calls in the last {rule.window_minutes} min"]
        if is_open:
            parts.insert(0, "circuit breaker open")
        found[f"provider {name}"] = Reading(Decimal(count), f"Provider {name}: " + ", ".join(parts))
    return found


def budget(rule: AlertRule, now) -> dict[str, Reading]:
    """Every user or key whose spending reached the threshold's share of one of its budgets."""
    type_limits = dict(AgentType.objects.filter(tokens_per_day__isnull=False).values_list("slug", "tokens_per_day"))
    crossed = [use for use in budget_usage(type_limits=type_limits, now=now) if use.percent >= rule.threshold]
    users = User.objects.in_bulk({use.user_id for use in crossed})
    keys = ApiKey.objects.in_bulk({use.api_key_id for use in crossed if use.api_key_id})
    found = {}
    for use in crossed:
        who = f"user {users[use.user_id].username}"
        if use.api_key_id:
            who = f"key {keys[use.api_key_id]} of {users[use.user_id].username}"
        amount = "USD" if use.limit.startswith("cost") else "tokens"
        summary = (
            f"{who} used {use.percent:.0f}% of {use.limit} under {use.policy} "
            f"({use.used.normalize():f} of {use.allowed.normalize():f} {amount})"
        )
        found[f"{who}: {use.policy} {use.limit}"] = Reading(Decimal(use.percent).quantize(Decimal("0.01")), summary)
    return found


def task_failures(rule: AlertRule, now) -> dict[str, Reading]:
    """Tracked tasks that failed for good over the window, per kind of task."""
    rows = (
        TaskRecord.objects.filter(
            status=TaskRecord.Status.FAILED, finished_at__gte=now - timedelta(minutes=rule.window_minutes)
        )
        .values("kind")
        .annotate(failed=Count("pk"))
    )
    return {
        f"task {row['kind']}": Reading(
            Decimal(row["failed"]), f"{row['failed']} {row['kind']} tasks failed in the last {rule.window_minutes} min"
        )
        for row in rows
        if row["failed"] >= rule.threshold
    }


def error_logs(rule: AlertRule, now) -> dict[str, Reading] | None:
    """Records at ERROR or above logged by the platform's own code over the window (see monitoring.error_log)."""
    recent = error_log.since(now - timedelta(minutes=rule.window_minutes))
    if recent is None:
        return None
    if not recent or len(recent) < rule.threshold:
        return {}
    last = recent[-1]
    summary = f"{len(recent)} errors logged in the last {rule.window_minutes} min; the last from {last.logger}: "
    summary += last.message
    return {"platform": Reading(Decimal(len(recent)), summary[:500])}


def security_trail(rule: AlertRule, now) -> dict[str, Reading]:
    """The last verification of the security-event chain (accounts.trail), while it says the chain is broken."""
    last = TrailCheck.objects.order_by("-checked_at").first()
    if last is None or last.ok:
        return {}
    summary = f"The security-event trail is broken at {last.problem} (verified {last.checked_at:%Y-%m-%d %H:%M} UTC)"
    return {"security-event trail": Reading(Decimal(last.broken_at or 0), summary[:500])}


def queue_age(rule: AlertRule, now) -> dict[str, Reading] | None:
    """Each queue whose oldest waiting message has waited the threshold (seconds), from its published-at stamp."""
    ages = queue_oldest_ages(worker_queues())
    if not ages:
        return None  # the broker did not answer (or is not Redis: AMQP cannot show a message without taking it)
    return {
        f"queue {name}": Reading(Decimal(round(age)), f"The oldest message on queue {name} has waited {age:.0f} s")
        for name, age in sorted(ages.items())
        if age >= rule.threshold
    }


MISSING_SINCE = "monitoring:missing-since:{}"


def silent(rule: AlertRule, now) -> dict[str, Reading] | None:
    """Each queue no worker has taken a heartbeat from, and beat, silent for the threshold (seconds).

    A heartbeat never recorded (a queue no worker has ever consumed since Redis was emptied) counts from the
    first round that found it missing, so a platform just started is given the threshold to report in.
    """
    try:
        beats = heartbeats.heartbeats(now)
    except Exception:
        return None
    found = {}
    for name, seen in [*sorted(beats["workers"].items()), ("beat", beats["beat"])]:
        subject = "beat" if name == "beat" else f"queue {name}"
        if seen["status"] == "missing":
            cache.add(MISSING_SINCE.format(name), now.timestamp(), timeout=None)
            age = now.timestamp() - float(cache.get(MISSING_SINCE.format(name), now.timestamp()))
            what = "has never ticked" if name == "beat" else "has never been taken by a worker"
        else:
            cache.delete(MISSING_SINCE.format(name))
            age = seen["age_seconds"]
            what = (
                f"last ticked {age:.0f} s ago" if name == "beat" else f"last taken {age:.0f} s ago ({seen['hostname']})"
            )
        if age >= rule.threshold:
            who = "Beat" if name == "beat" else f"The heartbeat of queue {name}"
            found[subject] = Reading(Decimal(round(age)), f"{who} {what}")
    return found


SOURCES = {
    AlertRule.Kind.ERROR_RATE: error_rate,
    AlertRule.Kind.PROVIDER_FAILURES: provider_failures,
    AlertRule.Kind.BUDGET: budget,
    AlertRule.Kind.TASK_FAILURES: task_failures,
    AlertRule.Kind.ERROR_LOGS: error_logs,
    AlertRule.Kind.SECURITY_TRAIL: security_trail,
    AlertRule.Kind.QUEUE_AGE: queue_age,
    AlertRule.Kind.SILENT: silent,
}


def read(rule: AlertRule, now) -> dict[str, Reading] | None:
    """The rule's source, or None when it failed (logged: a broken source must not stop the other rules)."""
    try:
        return SOURCES[rule.kind](rule, now)
    except Exception:
        logger.warning("alert rule %s could not be evaluated", rule.name, exc_info=True, extra={"rule": rule.pk})
        return None
