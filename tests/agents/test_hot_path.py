"""The hot path's rules: a cache hit reads no PostgreSQL row and makes at most two Redis round trips; a call
through the gateway leaves nothing for the garbage collector."""

import gc
import socket

import pytest
import redis.asyncio.connection
import redis.connection
from asgiref.sync import async_to_sync
from django.http import HttpRequest, HttpResponseBase
from rest_framework.request import Request
from rest_framework.views import APIView

from core import local_cache
from platform_site.gateway import GatewayHandler
from quotas.models import QuotaPolicy
from tests.agents.conftest import ask, post
from tests.conftest import api_client, make_key
from tests.platform_site.test_serving import start, stop
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


CALL_OBJECTS = (HttpRequest, Request, APIView, HttpResponseBase)


@pytest.mark.django_db(transaction=True)
def test_a_call_through_the_gateway_leaves_nothing_for_the_garbage_collector(alice, agent, fake_llm):
    # Given the gateway under the platform's server, in this process, and a client that has called it before
    key = make_key(alice, scopes=["agents:invoke"])
    question = {"messages": [{"role": "user", "content": "hello there"}]}
    calls = [
        (f"/api/v1/agents/{agent.pk}/invoke", question, key),  # a miss, then hits
        (f"/api/v1/agents/{agent.pk}/invoke", {**question, "stream": True}, key),
        ("/v1/chat/completions", {"model": "alice/helper", **question}, key),
        (f"/api/v1/agents/{agent.pk}/invoke", question, "sb_guessed_key"),  # refused
    ]

    async def serve_and_call() -> tuple[list, list]:
        listener = socket.create_server(("127.0.0.1", 0))
        server, running = await start(GatewayHandler(), listener)
        port = listener.getsockname()[1]
        try:
            for path, body, bearer in calls:  # the process's caches and connections filled
                await post(port, path, body, bearer)
            # When calls are made with the collector off, its finds kept
            gc.collect()
            gc.disable()
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                statuses = [(await post(port, path, body, bearer))[0] for path, body, bearer in calls * 3]
                gc.collect()
                left = [type(found).__name__ for found in gc.garbage if isinstance(found, CALL_OBJECTS)]
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
                gc.enable()
        finally:
            await stop(server, running)
        return statuses, left

    statuses, left = async_to_sync(serve_and_call)()  # database work in this thread: the test's connection

    # Then every call was answered, and no request, view or response of theirs was left in a reference cycle
    assert statuses == [200, 200, 200, 401] * 3
    assert left == []
