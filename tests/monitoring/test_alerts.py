"""Alert rules and the alert state machine: each kind of rule, opening once per crossing, the cooldown, resolving by
itself, and one evaluator at a time. The three LiteLLM budget-alert failures are regression tests here."""

import io
import json
import logging
import threading
import time
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from celery import current_app
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from kombu import Queue

from agents.models import AgentRun
from monitoring import error_log, watchdog
from monitoring.models import Alert, AlertNotification, AlertRule
from monitoring.services import alerts_evaluate, alerts_silence
from quotas.models import QuotaPolicy, UsageRecord
from quotas.services.ledger import usage_record
from tasks import heartbeats
from tasks.models import TaskRecord
from tests.factories import AgentFactory, ApiKeyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_default_rules(db):
    """The migration's default rules watch the whole test platform; each test makes the rules it means."""
    AlertRule.objects.all().delete()


def rule(kind: str, threshold, **fields) -> AlertRule:
    fields.setdefault("email_to", "oncall@example.com")
    return AlertRule.objects.create(
        name=fields.pop("name", f"{kind} {threshold}"), kind=kind, threshold=threshold, **fields
    )


def spend(user, usd: str, api_key=None, agent_type="assistant"):
    usage_record(
        run_id=uuid.uuid4(),
        user=user,
        api_key=api_key,
        agent_type=agent_type,
        model="echo",
        input_tokens=10,
        output_tokens=10,
        cost=Decimal(usd),
        cached=False,
    )


def daily_budget(user, usd: str, name="alice-daily") -> QuotaPolicy:
    return QuotaPolicy.objects.create(name=name, applies_to="user", user=user, cost_per_day=Decimal(usd))


def early_today():
    """A minute past midnight (UTC) today, with what was spent so far dated then: the hours a test then evaluates
    stay in today's budget window, whatever the time it runs at."""
    start = timezone.now().replace(hour=0, minute=1, second=0, microsecond=0)
    UsageRecord.objects.update(created_at=start)
    return start


def notifications(event=None) -> list[AlertNotification]:
    found = AlertNotification.objects.order_by("pk")
    return list(found.filter(event=event) if event else found)


# --- budgets, and the three LiteLLM failures ----------------------------------------------------------------


def test_a_budget_crossing_opens_one_alert_however_many_requests_follow_it(alice):
    """LiteLLM #3738: its budget alert fired on every request past the threshold."""
    rule("budget", 80)
    daily_budget(alice, "10")
    spend(alice, "8.10")
    alerts_evaluate()
    for _ in range(25):  # the user keeps calling: every call is past 80 %, each round sees it
        spend(alice, "0.05")
        alerts_evaluate()

    [alert] = Alert.objects.all()
    assert alert.state == "open"
    assert alert.subject == "user alice: alice-daily cost_per_day"
    assert alert.value == Decimal("93.50")
    assert "alice used 94% of cost_per_day under alice-daily (9.35 of 10 USD)" in alert.summary
    assert [(n.event, n.destination) for n in notifications()] == [("opened", "oncall@example.com")]


def test_an_alert_is_notified_again_only_once_its_cooldown_has_passed(alice):
    rule("budget", 80, cooldown_minutes=60)
    daily_budget(alice, "10")
    spend(alice, "9")
    start = early_today()
    alerts_evaluate(now=start)
    alerts_evaluate(now=start + timedelta(minutes=59))
    assert [n.event for n in notifications()] == ["opened"]

    alerts_evaluate(now=start + timedelta(minutes=61))
    alerts_evaluate(now=start + timedelta(minutes=62))
    assert [n.event for n in notifications()] == ["opened", "repeated"]
    assert Alert.objects.get().last_notified_at == start + timedelta(minutes=61)


def test_a_silenced_alert_sends_nothing_until_its_silence_ends_then_follows_its_cooldown(alice, operator):
    rule("budget", 80, cooldown_minutes=60)
    daily_budget(alice, "10")
    spend(alice, "9")
    start = early_today()
    alerts_evaluate(now=start)
    alert = Alert.objects.get()
    assert alerts_silence(alerts=[alert], user=operator, until=start + timedelta(hours=3)) == 1

    for minutes in (61, 125, 179):  # cooled down three times over, silenced throughout
        alerts_evaluate(now=start + timedelta(minutes=minutes))
    alert.refresh_from_db()
    assert [n.event for n in notifications()] == ["opened"]
    assert alert.state == "open" and alert.value == Decimal("90.00") and alert.silenced_by == operator

    alerts_evaluate(now=start + timedelta(minutes=181))  # the silence is over and the cooldown long passed
    assert [n.event for n in notifications()] == ["opened", "repeated"]


def test_an_alert_that_resolves_while_silenced_says_nothing_and_the_next_crossing_is_not_silenced(alice, operator):
    rule("budget", 80)
    policy = daily_budget(alice, "10")
    spend(alice, "9")
    alerts_evaluate()
    first = Alert.objects.get()
    alerts_silence(alerts=Alert.objects.all(), user=operator, until=timezone.now() + timedelta(hours=1))

    policy.cost_per_day = Decimal("100")
    policy.save()
    alerts_evaluate()
    first.refresh_from_db()
    assert first.state == "resolved"
    assert [n.event for n in notifications()] == ["opened"]  # no resolve message while silenced

    policy.cost_per_day = Decimal("10")
    policy.save()
    alerts_evaluate()
    assert [n.event for n in notifications()] == ["opened", "opened"]  # a new alert: it speaks
    assert alerts_silence(alerts=[first], user=operator, until=None) == 0  # a resolved alert is left as it is


def test_the_command_line_silences_and_unsilences_open_alerts(alice, operator):
    rule("budget", 80)
    daily_budget(alice, "10")
    spend(alice, "9")
    alerts_evaluate()
    alert = Alert.objects.get()

    out = io.StringIO()
    call_command("alerts", "silence", str(alert.pk), "--hours", "2", "--by", operator.username, stdout=out)
    assert out.getvalue().startswith("1 open alert(s) silenced until ")
    listed = io.StringIO()
    call_command("alerts", "open", stdout=listed)
    assert "(silenced until " in listed.getvalue()
    with pytest.raises(CommandError, match="may manage alert rules"):
        call_command("alerts", "silence", str(alert.pk), "--hours", "2", "--by", alice.username)

    call_command("alerts", "silence", str(alert.pk), "--hours", "0", "--by", operator.username, stdout=io.StringIO())
    alert.refresh_from_db()
    assert alert.silenced_until is None and alert.silenced_by is None


def test_an_alert_resolves_by_itself_and_the_next_crossing_opens_and_notifies_again(alice):
    """LiteLLM #16185: its budget alert fired once and never again, whatever happened next."""
    rule("budget", 80)
    policy = daily_budget(alice, "10")
    spend(alice, "8.50")
    alerts_evaluate()

    policy.cost_per_day = Decimal("20")  # the operator raises the budget: 42 %
    policy.save()
    alerts_evaluate()
    first = Alert.objects.get()
    assert first.state == "resolved" and first.resolved_at is not None

    spend(alice, "8")  # 82 % of the new budget
    alerts_evaluate()
    assert Alert.objects.filter(state="open").exclude(pk=first.pk).count() == 1
    assert [n.event for n in notifications()] == ["opened", "resolved", "opened"]


def test_a_budget_alert_resolves_when_its_window_ends(alice):
    rule("budget", 80)
    daily_budget(alice, "10")
    spend(alice, "9")
    alerts_evaluate()
    alerts_evaluate(now=timezone.now() + timedelta(days=1))  # a new day: nothing spent yet
    assert Alert.objects.get().state == "resolved"
    assert [n.event for n in notifications()] == ["opened", "resolved"]


def test_each_budget_level_opens_once_as_spending_crosses_80_100_and_120_percent(alice):
    for threshold in (80, 100, 120):
        rule("budget", threshold, name=f"Budget at {threshold}%")
    policy = daily_budget(alice, "10")
    spend(alice, "8.20")
    alerts_evaluate()
    spend(alice, "1.80")
    alerts_evaluate()
    policy.cost_per_day = Decimal("8")  # lowered below what was spent: 125 %
    policy.save()
    alerts_evaluate()
    alerts_evaluate()

    opened = [n.alert.rule.name for n in notifications("opened")]
    assert opened == ["Budget at 80%", "Budget at 100%", "Budget at 120%"]
    assert Alert.objects.filter(state="open").count() == 3


def test_several_evaluators_at_once_open_exactly_one_alert_and_send_one_notification(transactional_db, alice):
    """LiteLLM #35800: with several replicas its budget alerts went missing (or came twice)."""
    AlertRule.objects.all().delete()
    rule("budget", 80)
    daily_budget(alice, "10")
    spend(alice, "9")
    rounds = []
    start = threading.Barrier(6)

    def evaluate():
        start.wait()
        rounds.append(alerts_evaluate())
        connection.close()

    threads = [threading.Thread(target=evaluate) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Alert.objects.count() == 1
    assert len(notifications()) == 1
    assert sum(1 for done in rounds if done is not None and done.opened) == 1


def test_a_policy_on_a_key_alerts_on_that_key(alice):
    key = ApiKeyFactory(owner=alice, name="ci")
    rule("budget", 50)
    QuotaPolicy.objects.create(name="ci-key", applies_to="api_key", api_key=key, cost_per_month=Decimal("2"))
    spend(alice, "1.50", api_key=key)
    spend(alice, "5")  # without the key: not under that policy
    alerts_evaluate()
    [alert] = Alert.objects.all()
    assert alert.subject == f"key {key} of alice: ci-key cost_per_month"
    assert alert.value == Decimal("75.00")


def test_a_role_policy_counts_each_user_of_that_role_only(alice, bob, operator):
    rule("budget", 80)
    QuotaPolicy.objects.create(name="members", applies_to="role", role="member", cost_per_day=Decimal("1"))
    spend(alice, "0.9")
    spend(operator, "0.9")
    alerts_evaluate()
    assert [alert.subject for alert in Alert.objects.all()] == ["user alice: members cost_per_day"]


def test_a_rule_turned_off_resolves_its_open_alerts(alice):
    budget_rule = rule("budget", 80)
    daily_budget(alice, "10")
    spend(alice, "9")
    alerts_evaluate()
    budget_rule.is_active = False
    budget_rule.save()
    alerts_evaluate()
    alert = Alert.objects.get()
    assert alert.state == "resolved"
    assert alert.summary == f"The rule {budget_rule} was turned off."


# --- the other kinds ------------------------------------------------------------------------------------------


def runs(alice, *, failed: int, succeeded: int, model_name: str = "echo"):
    agent = AgentFactory(owner=alice)
    rows = [
        AgentRun(
            agent=agent,
            user=alice,
            agent_version=agent.version,
            model_name=model_name,
            input=[],
            status=status,
            cache=AgentRun.Cache.MISS,
            error="upstream failed" if status == AgentRun.Status.FAILED else "",
        )
        for status, count in ((AgentRun.Status.FAILED, failed), (AgentRun.Status.SUCCEEDED, succeeded))
        for _ in range(count)
    ]
    AgentRun.objects.bulk_create(rows)


def test_the_error_rate_rule_needs_enough_runs_and_a_high_enough_share_of_failures(alice):
    rule("error_rate", 10, min_runs=20, window_minutes=5)
    runs(alice, failed=5, succeeded=10)  # a third failed, but only 15 runs
    alerts_evaluate()
    assert not Alert.objects.exists()

    runs(alice, failed=0, succeeded=35)  # 5 of 50: 10 %
    alerts_evaluate()
    alert = Alert.objects.get()
    assert (alert.subject, alert.value) == ("all agents", Decimal("10.00"))
    assert alert.summary == "10.0% of 50 agent runs failed in the last 5 min"

    runs(alice, failed=0, succeeded=50)  # 5 %
    alerts_evaluate()
    assert Alert.objects.get().state == "resolved"


def test_the_provider_rule_counts_failed_calls_per_provider(alice):
    rule("provider_failures", 3)
    runs(alice, failed=3, succeeded=1)  # the echo model is the built-in echo provider's
    alerts_evaluate()
    alert = Alert.objects.get()
    assert alert.subject == "provider echo"
    assert alert.summary == "Provider echo: 3 failed calls in the last 5 min"


def test_the_provider_rule_opens_when_a_breaker_is_open_without_any_failed_run(alice, settings):
    from asgiref.sync import async_to_sync

    from agents import breaker

    rule("provider_failures", 100)
    for _ in range(settings.BREAKER_FAILURES):
        async_to_sync(breaker.record_failure)("echo")
    alerts_evaluate()
    alert = Alert.objects.get()
    assert alert.subject == "provider echo"
    assert alert.summary.startswith("Provider echo: circuit breaker open")


def test_the_task_rule_counts_tasks_that_failed_for_good_per_kind(alice):
    rule("task_failures", 2, window_minutes=15)
    now = timezone.now()
    for finished in (now, now - timedelta(minutes=5), now - timedelta(hours=1)):
        TaskRecord.objects.create(kind="memory.import", owner=alice, status="failed", finished_at=finished)
    TaskRecord.objects.create(kind="webhooks.ping", owner=alice, status="failed", finished_at=now)
    alerts_evaluate()
    alert = Alert.objects.get()
    assert (alert.subject, alert.value) == ("task memory.import", Decimal("2.00"))


def wait_for_error_record(message: str, since) -> list:
    """The records since `since` once the one with `message` reached Redis (the handler writes twice a second)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = error_log.since(since) or []
        if any(record.message == message for record in found):
            return found
        time.sleep(0.05)
    raise AssertionError("the error records never reached Redis")


def test_errors_logged_by_the_platform_open_an_alert_and_others_do_not_count():
    rule("error_logs", 1, window_minutes=5)
    start = timezone.now()
    logging.getLogger("urllib3.connectionpool").error("someone else's error")
    logging.getLogger("agents.services.pipeline").warning("only a warning")
    logging.getLogger("agents.services.pipeline").error("the provider answered %s", "nonsense")
    records = wait_for_error_record("the provider answered nonsense", start)
    assert ("agents.services.pipeline", "the provider answered nonsense") in [(r.logger, r.message) for r in records]
    assert not [r for r in records if r.logger.startswith("urllib3") or r.message == "only a warning"]

    alerts_evaluate()
    alert = Alert.objects.get()
    assert alert.subject == "platform"
    assert alert.summary.endswith("the last from agents.services.pipeline: the provider answered nonsense")


def test_the_command_line_runs_a_round_and_lists_the_open_alerts(alice):
    rule("budget", 80, severity="critical")
    daily_budget(alice, "10")
    spend(alice, "9")
    out = io.StringIO()
    call_command("alerts", "evaluate", stdout=out)
    assert json.loads(out.getvalue()) == {"opened": 1, "repeated": 0, "resolved": 0, "skipped_rules": []}
    out = io.StringIO()
    call_command("alerts", "open", stdout=out)
    assert "critical  budget 80  user alice: alice-daily cost_per_day  user alice used 90%" in out.getvalue()


def test_a_queue_whose_oldest_message_waits_past_the_threshold_opens_an_alert_and_resolves_once_taken(settings):
    name = f"alert-age-{uuid.uuid4().hex[:8]}"  # a queue no worker consumes, routed like the platform's own
    settings.CELERY_TASK_ROUTES = {**settings.CELERY_TASK_ROUTES, "tests.never_taken": {"queue": name}}
    rule("queue_age", 1)
    with current_app.connection_for_write() as connection:
        queue = Queue(name, routing_key=name)
        try:
            current_app.send_task("tests.never_taken", queue=name)
            time.sleep(1.1)
            alerts_evaluate()
            alert = Alert.objects.get(subject=f"queue {name}")  # (other queues may hold old messages of other tests)
            assert alert.summary.startswith(f"The oldest message on queue {name} has waited")
        finally:
            queue(connection.default_channel).purge()
            queue(connection.default_channel).delete()
    alerts_evaluate()
    assert Alert.objects.get(subject=f"queue {name}").state == "resolved"


def test_a_silent_queue_and_a_silent_beat_open_alerts_a_queue_never_seen_counts_from_the_first_round(settings):
    settings.HEARTBEAT_QUEUES = ["celery", "agents"]
    rule("silent", 120)
    now = timezone.now()
    heartbeats.record_worker_heartbeat(queue_name="celery", hostname="celery@box", at=now - timedelta(minutes=5))
    heartbeats.record_beat_heartbeat(at=now - timedelta(seconds=10))
    alerts_evaluate(now=now)  # the agents queue has no heartbeat yet: its time starts now
    assert [(a.subject, a.summary) for a in Alert.objects.all()] == [
        ("queue celery", "The heartbeat of queue celery last taken 300 s ago (celery@box)")
    ]

    alerts_evaluate(now=now + timedelta(seconds=130))
    assert sorted(a.subject for a in Alert.objects.filter(state="open")) == ["beat", "queue agents", "queue celery"]
    assert (
        Alert.objects.get(subject="queue agents").summary
        == "The heartbeat of queue agents has never been taken by a worker"
    )

    heartbeats.record_worker_heartbeat(queue_name="celery", hostname="celery@box")
    heartbeats.record_worker_heartbeat(queue_name="agents", hostname="agents@box")
    heartbeats.record_beat_heartbeat()
    alerts_evaluate()
    assert not Alert.objects.filter(state="open").exists()


def test_the_watchdog_runs_a_round_only_when_none_ran_lately(settings, alice):
    settings.ALERT_WATCHDOG_SECONDS = 30
    rule("budget", 80)
    daily_budget(alice, "10")
    spend(alice, "9")
    cache.delete(watchdog.LAST_ROUND)
    assert watchdog.check() is True  # beat never started a round
    assert Alert.objects.count() == 1
    assert watchdog.check() is False  # the round it ran is recent

    cache.set(watchdog.LAST_ROUND, time.time() - 61)
    assert watchdog.overdue()
    alerts_evaluate()  # beat's round
    assert not watchdog.overdue()
