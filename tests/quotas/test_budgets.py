"""Token budgets: reserved up front, settled to the real usage, given back, never overspent."""

import random
import threading
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django_redis import get_redis_connection

from quotas.models import QuotaPolicy
from quotas.services.admission import QuotaExceeded, quota_release, quota_settle
from tests.agents.conftest import ask
from tests.conftest import api_client
from tests.quotas.helpers import admit, counter, run_in_threads


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
def test_a_stream_never_read_gives_its_reservation_back(alice, agent, fake_llm):
    from agents.models import AgentRun
    from agents.services.streaming import agent_invoke_stream

    QuotaPolicy.objects.create(name="budget", tokens_per_day=100_000)
    stream = async_to_sync(agent_invoke_stream)(user=alice, agent=agent, messages=[{"role": "user", "content": "hi"}])
    assert counter("budget", alice, "tokens_per_day") > 0, "reserved while the response waits"

    stream.close()  # the response closes before its body was read: the client left

    assert counter("budget", alice, "tokens_per_day") == 0
    assert AgentRun.objects.get().status == "failed" and fake_llm.chat_calls() == 0
