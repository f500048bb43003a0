"""The usage ledger: daily roll-ups, reconciliation with the counters, the usage API, the periodic jobs."""

import pytest
from django_redis import get_redis_connection

from quotas.limiter import user_tag, window
from quotas.models import UsageDaily, UsageRecord
from quotas.services.ledger import usage_reconcile, usage_roll_up
from tests.agents.conftest import ask
from tests.conftest import api_client, make_user
from tests.quotas.helpers import admit


@pytest.mark.django_db
def test_every_run_is_in_the_ledger_rolled_up_per_day_and_reconciled_with_the_counters(
    alice, agent, fake_llm, settings
):
    settings.QUOTA_DEFAULTS = {"requests_per_minute": 1000, "tokens_per_day": 1_000_000}
    client = api_client(alice)
    ask(client, agent, "hello there")
    ask(client, agent, "hello there")  # a hit
    ask(client, agent, "another question here")

    records = UsageRecord.objects.filter(user=alice)
    assert records.count() == 3 and records.filter(cached=True).count() == 1
    from django.utils import timezone

    today = timezone.now().date()
    assert usage_roll_up(day=today) == 1
    assert usage_roll_up(day=today) == 1, "idempotent"
    daily = UsageDaily.objects.get(user=alice)
    assert (daily.requests, daily.input_tokens + daily.output_tokens) == (
        3,
        sum(r.input_tokens + r.output_tokens for r in records),
    )
    assert daily.cost == sum(r.cost for r in records)

    assert usage_reconcile() == []
    window_id, _, _ = window("day")
    get_redis_connection("default").incrby(f"{user_tag(alice.pk)}:@default:u{alice.pk}:tokens_per_day:{window_id}", 5)
    [drift] = usage_reconcile()
    assert drift["counter_tokens"] - drift["ledger_tokens"] == 5


@pytest.mark.django_db
def test_usage_api_shows_your_own_usage_and_operators_anyones(alice, bob, agent, fake_llm):
    from django.utils import timezone

    ask(api_client(alice), agent, "hello there")
    usage_roll_up(day=timezone.now().date())

    mine = api_client(alice).get("/api/v1/usage").json()
    by_model = api_client(alice).get("/api/v1/usage?group_by=model").json()

    assert [row["requests"] for row in mine] == [1] and by_model[0]["model"] == "fake-gpt"
    assert api_client(bob).get("/api/v1/usage").json() == []
    assert api_client(bob).get(f"/api/v1/usage?user={alice.pk}").status_code == 403
    operator = make_user("olga", role="operator")
    assert api_client(operator).get(f"/api/v1/usage?user={alice.pk}").json()[0]["requests"] == 1
    assert api_client(alice).get("/api/v1/usage?days=1000").status_code == 400
    page = api_client(alice)
    page.force_login(alice)
    html = page.get("/usage/").content.decode()
    assert 'id="usage-data"' in html and "fake-gpt" in html


@pytest.mark.django_db
def test_reconciliation_sees_a_reservation_that_was_never_settled(alice, settings):
    settings.QUOTA_DEFAULTS = {"tokens_per_day": 1_000_000}

    admit(alice, tokens=5000)  # never settled: no ledger row

    [drift] = usage_reconcile()
    assert (drift["user"], drift["ledger_tokens"], drift["counter_tokens"]) == (alice.pk, 0, 5000)


def test_the_platforms_periodic_jobs_are_on_the_database_schedule(migrated_schedule):
    from django_celery_beat.models import PeriodicTask

    tasks = dict(PeriodicTask.objects.values_list("name", "task"))

    assert tasks["roll up usage"] == "quotas.roll_up_usage"
    assert tasks["reconcile quota counters"] == "quotas.reconcile"
    assert tasks["dispatch due webhook deliveries"] == "webhooks.dispatch_due"
    assert tasks["resend queued tasks"] == "tasks.resend_queued"


@pytest.mark.django_db(transaction=True)
def test_the_worker_rolls_up_usage(celery_worker, alice, agent, fake_llm):
    from quotas.tasks import roll_up_usage_task

    ask(api_client(alice), agent)

    assert roll_up_usage_task.delay().get(timeout=30) == 1
    assert UsageDaily.objects.get(user=alice).requests == 1
