"""The hot path's rule: a cache hit reads no PostgreSQL row and makes at most two Redis round trips."""

import pytest
import redis.asyncio.connection
import redis.connection

from core import local_cache
from quotas.models import QuotaPolicy
from tests.agents.conftest import ask
from tests.conftest import api_client, make_key
from tests.tasks.conftest import wait_until


@pytest.fixture
def round_trips(monkeypatch):
    """Every round trip to Redis (one send of one or many commands), sync and async, by its first command.
    Not counted: opening a connection (a process opens its connections once; each request of the test
    client runs in an event loop of its own, so it opens them every time) and the invalidation listener's
    own pub/sub traffic."""
    sent = []

    def first_command(packed) -> str:
        raw = b"".join(packed) if isinstance(packed, list) else packed
        return raw.split(b"\r\n")[2].decode().upper()

    def spy(send):
        def counted(self, command, *args, **kwargs):
            if first_command(command) not in {"HELLO", "CLIENT", "SELECT", "AUTH", "SUBSCRIBE", "PING"}:
                sent.append(first_command(command))
            return send(self, command, *args, **kwargs)

        return counted

    for module in (redis.connection, redis.asyncio.connection):
        monkeypatch.setattr(
            module.AbstractConnection, "send_packed_command", spy(module.AbstractConnection.send_packed_command)
        )
    return sent


@pytest.mark.django_db
def test_a_cache_hit_reads_no_database_row_and_makes_two_redis_round_trips(
    alice, agent, fake_llm, settings, django_assert_num_queries, round_trips
):
    # Given a token budget, runs recorded through the stream (as in production), and an answer cached by
    # an earlier call that also brought the key, the agent and the policies into the process's cache
    settings.RUN_RECORDING = "stream"
    QuotaPolicy.objects.create(name="budget", tokens_per_day=100_000, requests_per_minute=100)
    client = api_client(key=make_key(alice, scopes=["agents:invoke"]))
    assert ask(client, agent)["X-Cache"] == "MISS"
    wait_until(lambda: local_cache._cache.listening)  # entries are kept once the listener is subscribed
    assert ask(client, agent)["X-Cache"] == "HIT"
    round_trips.clear()

    # When the same question is asked again
    with django_assert_num_queries(0):
        response = ask(client, agent)

    # Then it is a hit, answered from Redis alone: the admission script with the entry's GET, then the
    # closing pipeline (the counter, the run appended to the stream)
    assert response.status_code == 200 and response["X-Cache"] == "HIT"
    assert len(round_trips) == 2, round_trips
