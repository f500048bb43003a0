"""The home page shows the user's own figures: usage today and this month (live from the ledger), each budget
that applies to them, their last runs, their open tasks and their failing webhook endpoints."""

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from agents.models import AgentRun
from core.encryption import encrypt
from quotas.models import QuotaPolicy, UsageRecord
from quotas.services.ledger import usage_record, usage_roll_up
from tasks.models import TaskRecord, WebhookEndpoint

pytestmark = pytest.mark.django_db


def spend(user, tokens=(100, 50), cost="0.01", model="fake-gpt", agent_type="helper", api_key=None, when=None):
    record = usage_record(
        run_id=uuid.uuid4(),
        user=user,
        api_key=api_key,
        agent_type=agent_type,
        model=model,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cost=Decimal(cost),
        cached=False,
    )
    if when is not None:
        UsageRecord.objects.filter(pk=record.pk).update(created_at=when)
    return record


def run(user, agent, **fields):
    return AgentRun.objects.create(
        agent=agent,
        user=user,
        agent_version=1,
        model_name="fake-gpt",
        input={"messages": []},
        status=AgentRun.Status.SUCCEEDED,
        cache=AgentRun.Cache.MISS,
        **fields,
    )


def home(client):
    response = client.get(reverse("dashboard"))
    assert response.status_code == 200
    return response


def test_today_and_this_month_count_calls_made_since_the_last_roll_up(client, alice, bob):
    # Given usage earlier this month (rolled up), and today's rolled up before one more call
    today = timezone.now().date()
    earlier = today - timedelta(days=1)
    if earlier.month == today.month:
        spend(alice, tokens=(1000, 0), cost="1", when=timezone.now() - timedelta(days=1))
        usage_roll_up(day=earlier)
    spend(alice)
    usage_roll_up(day=today)
    spend(alice)
    spend(bob, tokens=(9999, 0))
    client.force_login(alice)

    context = home(client).context

    assert context["totals"]["today"]["requests"] == 2
    assert context["totals"]["today"]["tokens"] == 300
    assert context["totals"]["today"]["cost"] == Decimal("0.02")
    month = context["totals"]["month"]
    assert (month["requests"], month["tokens"]) == ((3, 1300) if earlier.month == today.month else (2, 300))


def test_every_budget_that_applies_shows_with_what_is_left_even_when_nothing_is_spent(client, alice, bob, settings):
    settings.QUOTA_DEFAULTS = {"tokens_per_day": 1000}
    QuotaPolicy.objects.create(name="everyone-cost", cost_per_day=Decimal("2"))
    QuotaPolicy.objects.create(name="monthly", cost_per_month=Decimal("50"))
    QuotaPolicy.objects.create(name="operators", applies_to="role", role="operator", tokens_per_day=5)
    QuotaPolicy.objects.create(name="bobs", applies_to="user", user=bob, tokens_per_day=5)
    spend(alice, tokens=(200, 50), cost="0.5")
    client.force_login(alice)

    response = home(client)

    shown = {(use.policy, use.limit): use for use, _ in response.context["budgets"]}
    assert set(shown) == {
        ("@default", "tokens_per_day"),
        ("everyone-cost", "cost_per_day"),
        ("monthly", "cost_per_month"),
    }
    assert shown[("@default", "tokens_per_day")].used == 250 and shown[("@default", "tokens_per_day")].remaining == 750
    assert shown[("everyone-cost", "cost_per_day")].percent == 25
    page = response.content.decode()
    assert "Platform default: tokens per day" in page and "250 of 1000 tokens used, 750 left" in page
    assert page.count("<meter") == 3


def test_a_budget_nobody_has_touched_shows_at_zero(client, alice):
    QuotaPolicy.objects.create(name="everyone-cost", cost_per_day=Decimal("2"))
    client.force_login(alice)

    [(use, title)] = home(client).context["budgets"]

    assert use.used == 0 and use.percent == 0 and title == "Policy everyone-cost: USD per day"


def test_the_last_five_runs_link_to_their_pages_and_other_users_runs_stay_out(client, alice, bob, agent):
    mine = [run(alice, agent) for _ in range(6)]
    run(bob, agent)
    client.force_login(alice)

    response = home(client)

    assert [r.pk for r in response.context["runs"]] == [r.pk for r in sorted(mine, key=lambda r: r.created_at)][::-1][
        :5
    ]
    assert reverse("agent_run", args=[mine[-1].pk]) in response.content.decode()


def test_open_tasks_and_failing_webhooks_are_listed_and_finished_or_healthy_ones_are_not(client, alice, bob):
    queued = TaskRecord.objects.create(kind="memory.import", owner=alice)
    TaskRecord.objects.create(kind="memory.export", owner=alice, status=TaskRecord.Status.SUCCEEDED)
    TaskRecord.objects.create(kind="memory.reindex", owner=bob)
    secret = encrypt("whsec_" + "A" * 32)
    failing = WebhookEndpoint.objects.create(
        owner=alice,
        url="https://a.example/hook",
        events=["task.failed"],
        secret_encrypted=secret,
        consecutive_failures=3,
    )
    WebhookEndpoint.objects.create(
        owner=alice, url="https://ok.example/hook", events=["task.failed"], secret_encrypted=secret
    )
    paused = WebhookEndpoint.objects.create(
        owner=alice,
        url="https://paused.example/hook",
        events=["task.failed"],
        secret_encrypted=secret,
        is_active=False,
        disabled_at=timezone.now(),
        disabled_reason="Disabled by you.",
    )
    client.force_login(alice)

    response = home(client)

    assert [t.pk for t in response.context["open_tasks"]] == [queued.pk]
    assert [e.pk for e in response.context["failing_endpoints"]] == [failing.pk]
    page = response.content.decode()
    assert reverse("webhook_detail", args=[failing.pk]) in page and "3 failures in a row" in page
    assert reverse("tasks") in page and paused.url not in page


def test_the_home_page_makes_as_many_queries_with_many_runs_tasks_and_endpoints_as_with_one(
    client, alice, agent, settings
):
    settings.QUOTA_DEFAULTS = {"tokens_per_day": 1000}
    QuotaPolicy.objects.create(name="everyone-cost", cost_per_day=Decimal("2"), cost_per_month=Decimal("9"))
    secret = encrypt("whsec_" + "A" * 32)
    client.force_login(alice)

    def add_one_of_each():
        run(alice, agent)
        spend(alice)
        TaskRecord.objects.create(kind="memory.import", owner=alice)
        WebhookEndpoint.objects.create(
            owner=alice,
            url="https://a.example/h",
            events=["task.failed"],
            secret_encrypted=secret,
            consecutive_failures=1,
        )

    add_one_of_each()
    home(client)  # warm the session and the permission caches
    with CaptureQueriesContext(connection) as few:
        home(client)
    for _ in range(5):
        add_one_of_each()
    with CaptureQueriesContext(connection) as many:
        home(client)

    assert len(many) == len(few) <= 20, [q["sql"] for q in many]
