import random
import threading
import time
from decimal import Decimal

import pytest
from django.db import connection
from django_redis import get_redis_connection

from accounts.models import SecurityEvent
from quotas.limiter import window
from quotas.models import QuotaPolicy, UsageDaily, UsageRecord
from quotas.services import (
    QuotaExceeded,
    QuotaUnavailable,
    quota_admit,
    quota_release,
    quota_settle,
    usage_reconcile,
    usage_roll_up,
)
from tests.agents.conftest import ask
from tests.conftest import api_client, make_key, make_user


def admit(user, tokens=0, cost="0", **extra):
    return quota_admit(
        user=user, api_key=None, agent_type="helper", model="fake-gpt", tokens=tokens, cost=Decimal(cost), **extra
    )


def counter(name, user, field, window_name="day"):
    window_id, _, _ = window(window_name)
    value = get_redis_connection("default").get(f"sb:q:{name}:u{user.pk}:{field}:{window_id}")
    return int(value or 0)


def run_in_threads(count, target):
    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.mark.django_db(transaction=True)
def test_many_threads_at_one_limit_admit_exactly_the_limit(alice):
    QuotaPolicy.objects.create(name="rpm", requests_per_minute=25)
    admitted, barrier = [], threading.Barrier(8)

    def fire(_):
        barrier.wait()
        try:
            for _ in range(10):
                try:
                    admit(alice)
                    admitted.append(1)
                except QuotaExceeded:
                    pass
        finally:
            connection.close()

    run_in_threads(8, fire)

    assert len(admitted) == 25
    assert counter("rpm", alice, "requests_per_minute", "minute") == 25


@pytest.mark.django_db(transaction=True)
def test_a_budget_is_never_overspent_by_50_concurrent_requests_of_varying_sizes(alice):
    QuotaPolicy.objects.create(name="tokens", tokens_per_day=20_000, cost_per_day=Decimal("0.5"))
    rng = random.Random(7)
    sizes = [(rng.randint(200, 1500), rng.random()) for _ in range(50)]
    spent, reserved_total, lock = [], [], threading.Lock()
    start, all_admitted = threading.Barrier(50), threading.Barrier(50)

    def fire(n):
        reserved, used_share = sizes[n]
        start.wait()
        try:
            reservation = admit(alice, tokens=reserved, cost=str(Decimal(reserved) / 50_000))
            with lock:
                reserved_total.append(reserved)
        except QuotaExceeded:
            reservation = None
        finally:
            connection.close()
        all_admitted.wait()  # every admitted request is in flight at once before any settles
        if reservation is not None:
            used = int(reserved * used_share)  # the real usage is never above the worst case
            quota_settle(reservation=reservation, tokens=used, cost=Decimal(used) / 50_000)
            with lock:
                spent.append(used)

    run_in_threads(50, fire)

    assert 0 < len(spent) < 50, "the budget should admit some and refuse others"
    assert sum(reserved_total) <= 20_000, "more was reserved at once than the budget holds"
    assert sum(spent) <= 20_000
    assert counter("tokens", alice, "tokens_per_day") == sum(spent)


@pytest.mark.django_db
def test_a_request_refused_by_one_limit_consumes_nothing_from_the_others(alice):
    QuotaPolicy.objects.create(name="rpm", requests_per_minute=100)
    QuotaPolicy.objects.create(name="tpm", tokens_per_minute=1000)

    admit(alice, tokens=600)
    with pytest.raises(QuotaExceeded) as refused:
        admit(alice, tokens=600)

    assert refused.value.body["policy"] == "tpm" and refused.value.body["limit"] == "tokens_per_minute"
    assert counter("rpm", alice, "requests_per_minute", "minute") == 1, "the refused request was counted"
    assert counter("tpm", alice, "tokens_per_minute", "minute") == 600


@pytest.mark.django_db
def test_a_new_window_starts_from_zero(alice):
    QuotaPolicy.objects.create(name="rpm", requests_per_minute=1)
    start = (int(time.time()) // 60) * 60 + 10.0

    admit(alice, now=start)
    with pytest.raises(QuotaExceeded) as refused:
        admit(alice, now=start + 30)
    admit(alice, now=start + 60)  # the next minute

    assert 1 <= refused.value.refusal.reset_seconds <= 60


def test_windows_end_where_they_should():
    assert window("minute", 120.0)[1:] == (60, 60)
    assert window("minute", 179.5)[1] == 1
    assert window("day", 86400 * 3 + 3600)[1:] == (82800, 86400)
    month_id, until_end, length = window("month", 1_706_745_600.0)  # 2024-02-01 00:00 UTC
    assert (month_id, until_end, length) == ("202402", 29 * 86400 + 1, 29 * 86400)


@pytest.mark.django_db
def test_every_applicable_policy_must_pass_and_others_do_not_apply(alice, bob):
    QuotaPolicy.objects.create(name="for-bob", applies_to="user", user=bob, requests_per_minute=1)
    QuotaPolicy.objects.create(name="other-type", agent_type="not-helper", requests_per_minute=1)
    QuotaPolicy.objects.create(name="members", applies_to="role", role="member", requests_per_minute=3)

    for _ in range(3):
        admit(alice)
    with pytest.raises(QuotaExceeded) as refused:
        admit(alice)
    assert refused.value.body["policy"] == "members"

    admit(bob)
    with pytest.raises(QuotaExceeded):
        admit(bob)


@pytest.mark.django_db
def test_settle_release_and_cache_hits_through_the_pipeline(alice, agent, fake_llm):
    QuotaPolicy.objects.create(name="budget", tokens_per_day=100_000, requests_per_day=100)
    client = api_client(alice)

    ask(client, agent, "hello there")  # 4 input + 3 output tokens really used
    assert counter("budget", alice, "tokens_per_day") == 7, "settled to the real usage, not the reservation"

    ask(client, agent, "hello there")  # a hit: a request, no tokens
    assert counter("budget", alice, "tokens_per_day") == 7
    assert counter("budget", alice, "requests_per_day") == 2

    fake_llm.failures = [500]
    assert ask(client, agent, "fails").status_code == 502
    assert counter("budget", alice, "tokens_per_day") == 7, "a failed call gives everything back"
    assert counter("budget", alice, "requests_per_day") == 3


@pytest.mark.django_db
def test_refusals_are_429s_with_retry_after_ratelimit_headers_and_a_body_naming_the_limit(alice, agent, fake_llm):
    QuotaPolicy.objects.create(name="slow", requests_per_minute=2)
    client = api_client(alice)

    first = ask(client, agent, "one")
    ask(client, agent, "two")
    refused = ask(client, agent, "three")

    assert first["RateLimit-Policy"] == '"slow";q=2;w=60' and first["RateLimit"].startswith('"slow";r=1;t=')
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused["RateLimit"].startswith('"slow";r=0;t=')
    quota = refused.json()["quota"]
    assert (quota["policy"], quota["limit"], quota["window_seconds"]) == ("slow", "requests_per_minute", 60)
    assert refused.json()["errors"][0]["code"] == "quota_exceeded"
    assert SecurityEvent.objects.filter(kind="quota_exceeded", user=alice).count() == 1
    assert fake_llm.chat_calls() == 2


@pytest.mark.django_db
def test_a_policy_on_an_api_key_counts_that_key_only(alice, agent, fake_llm):
    limited_key = make_key(alice, scopes=["agents:invoke"], name="limited")
    other_key = make_key(alice, scopes=["agents:invoke"], name="other")
    from accounts.models import ApiKey

    QuotaPolicy.objects.create(
        name="one-per-minute", applies_to="api_key", api_key=ApiKey.objects.get(name="limited"), requests_per_minute=1
    )

    assert ask(api_client(key=limited_key), agent, "a").status_code == 200
    assert ask(api_client(key=limited_key), agent, "b").status_code == 429
    assert ask(api_client(key=other_key), agent, "c").status_code == 200


@pytest.mark.django_db
def test_agent_type_default_limits_apply(alice, agent, agent_type, fake_llm):
    agent_type.requests_per_minute = 1
    agent_type.save()

    assert ask(api_client(alice), agent, "a").status_code == 200
    refused = ask(api_client(alice), agent, "b")
    assert refused.status_code == 429 and refused.json()["quota"]["policy"] == "@type-helper"


@pytest.mark.django_db
def test_unpriced_models_and_prompts_too_big_are_refused_before_any_provider_call(alice, agent, model, fake_llm):
    model.context_window = 50
    model.save()
    too_big = ask(api_client(alice), agent, "word " * 200)
    model.input_price_per_mtok = None
    model.save()
    unpriced = ask(api_client(alice), agent, "hi")

    assert too_big.status_code == 400 and too_big.json()["errors"][0]["attr"] == "messages"
    assert unpriced.status_code == 400 and unpriced.json()["errors"][0]["attr"] == "model"
    assert fake_llm.chat_calls() == 0


@pytest.mark.django_db
def test_max_tokens_are_clamped_to_what_the_context_window_leaves(alice, agent, model, fake_llm):
    model.context_window = 100
    model.save()

    ask(api_client(alice), agent, "hello there")

    assert fake_llm.requests[0]["body"]["max_tokens"] < 100


def dead_redis(settings, tmp_path):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"unix://{tmp_path}/no-redis.sock",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.1, "SOCKET_TIMEOUT": 0.1},
        }
    }


@pytest.mark.django_db
def test_with_redis_down_rate_limits_fall_back_to_the_process_and_budgets_refuse(alice, bob, settings, tmp_path):
    QuotaPolicy.objects.create(name="rpm", requests_per_minute=2)
    QuotaPolicy.objects.create(name="bob-budget", applies_to="user", user=bob, tokens_per_day=10_000)
    dead_redis(settings, tmp_path)

    reservations = [admit(alice), admit(alice)]
    with pytest.raises(QuotaExceeded):
        admit(alice)
    assert all(r.local for r in reservations), "counted by the per-process limiter"

    with pytest.raises(QuotaUnavailable):
        admit(bob, tokens=10)

    settings.QUOTA_FAIL_CLOSED = True
    with pytest.raises(QuotaUnavailable):
        admit(make_user("carol"))


@pytest.mark.django_db
def test_a_budget_refused_for_lack_of_redis_is_a_503_over_the_api(alice, agent, fake_llm, settings, tmp_path):
    QuotaPolicy.objects.create(name="budget", tokens_per_day=10_000)
    dead_redis(settings, tmp_path)

    response = ask(api_client(alice), agent)

    assert response.status_code == 503 and fake_llm.chat_calls() == 0


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
    get_redis_connection("default").incrby(f"sb:q:@default:u{alice.pk}:tokens_per_day:{window_id}", 5)
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
    assert "<svg" in html and "fake-gpt" in html


def test_huge_page_sizes_are_clamped(rf):
    from rest_framework.request import Request

    from core.pagination import LimitOffsetPagination

    assert LimitOffsetPagination().get_limit(Request(rf.get("/api/v1/keys?limit=100000"))) == 200


@pytest.mark.django_db
def test_signup_and_key_creation_are_rate_limited(client, alice, settings):
    settings.SIGNUP_RATE, settings.KEY_CREATION_RATE = "2/h", "2/h"
    statuses = [
        api_client()
        .post(
            "/api/v1/auth/signup",
            {"username": f"u{n}", "email": f"u{n}@example.com", "password": "A-long-passphrase-1"},
            format="json",
            REMOTE_ADDR="203.0.113.50",
        )
        .status_code
        for n in range(3)
    ]
    keys = [
        api_client(alice).post("/api/v1/keys", {"name": f"k{n}", "scopes": ["account:read"]}, format="json").status_code
        for n in range(3)
    ]

    assert statuses == [201, 201, 429]
    assert keys == [201, 201, 429]


@pytest.mark.django_db
def test_usage_above_the_reservation_is_charged_at_the_reservation_and_logged(alice):
    QuotaPolicy.objects.create(name="budget", tokens_per_day=1000)
    reservation = admit(alice, tokens=900)

    quota_settle(reservation=reservation, tokens=3000, cost=Decimal(0))

    assert counter("budget", alice, "tokens_per_day") == 900


@pytest.mark.django_db
def test_a_release_after_a_redis_restart_never_drives_a_counter_below_zero(alice):
    QuotaPolicy.objects.create(name="budget", tokens_per_day=1000)
    before_restart = admit(alice, tokens=900)
    get_redis_connection("default").delete(*get_redis_connection("default").keys("sb:q:*"))  # the restart
    after = admit(alice, tokens=900)

    quota_release(reservation=before_restart)

    assert counter("budget", alice, "tokens_per_day") >= 0
    with pytest.raises(QuotaExceeded):
        admit(alice, tokens=900)
    quota_release(reservation=after)


@pytest.mark.django_db
def test_a_request_bigger_than_a_whole_limit_is_a_400_not_an_endless_429(alice, agent, fake_llm):
    QuotaPolicy.objects.create(name="tiny", tokens_per_minute=100)

    response = ask(api_client(alice), agent)

    assert response.status_code == 400 and response.json()["errors"][0]["attr"] == "max_tokens"


@pytest.mark.django_db
def test_a_budget_503_says_when_to_retry(alice, agent, fake_llm, settings, tmp_path):
    QuotaPolicy.objects.create(name="budget", tokens_per_day=10_000)
    dead_redis(settings, tmp_path)

    response = ask(api_client(alice), agent)

    assert response.status_code == 503 and response["Retry-After"] == "5"


@pytest.mark.django_db
def test_a_stream_never_read_gives_its_reservation_back(alice, agent, fake_llm):
    from agents.models import AgentRun
    from agents.services.invocation import agent_invoke_stream

    QuotaPolicy.objects.create(name="budget", tokens_per_day=100_000)
    stream = agent_invoke_stream(user=alice, agent=agent, messages=[{"role": "user", "content": "hi"}])
    assert counter("budget", alice, "tokens_per_day") > 0, "reserved while the response waits"

    stream.close()  # the response closes before its body was read: the client left

    assert counter("budget", alice, "tokens_per_day") == 0
    assert AgentRun.objects.get().status == "failed" and fake_llm.chat_calls() == 0


@pytest.mark.django_db
def test_reconciliation_sees_a_reservation_that_was_never_settled(alice, settings):
    settings.QUOTA_DEFAULTS = {"tokens_per_day": 1_000_000}

    admit(alice, tokens=5000)  # never settled: no ledger row

    [drift] = usage_reconcile()
    assert (drift["user"], drift["ledger_tokens"], drift["counter_tokens"]) == (alice.pk, 0, 5000)


@pytest.mark.django_db
def test_a_policy_named_like_the_built_in_defaults_counts_on_its_own(alice, settings):
    settings.QUOTA_DEFAULTS = {"requests_per_minute": 3}
    QuotaPolicy.objects.create(name="default", requests_per_minute=3)

    for _ in range(3):
        admit(alice)
    with pytest.raises(QuotaExceeded):
        admit(alice)


@pytest.mark.django_db
def test_the_platforms_periodic_jobs_are_on_the_database_schedule():
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
