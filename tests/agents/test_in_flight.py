"""Many calls in flight in one web process, and a client going away, against the real ASGI server."""

import asyncio
import json
import socket
import time

import pytest
from django.core.cache import cache
from django.core.management import call_command

from agents.models import AgentRun, Provider
from quotas.models import QuotaPolicy
from tests.agents.conftest import invoke_all, post
from tests.conftest import make_key
from tests.processes import GunicornProcess
from tests.quotas.helpers import counter
from tests.tasks.conftest import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def web(tmp_path):
    """One web process, recording runs through the stream as in production."""
    server = GunicornProcess(tmp_path / "gunicorn.log", workers=1, env={"RUN_RECORDING": "stream"})
    server.wait_for_log("Booting worker", timeout=30)
    yield server
    server.stop()


def test_one_web_process_holds_a_thousand_provider_calls_and_streams_at_once(web, alice, agent, fake_llm):
    # Given one web process (one worker), and a provider that answers only once it holds 1,000 calls at
    # once (after a minute it gives up waiting and answers anyway)
    key = make_key(alice, scopes=["agents:invoke"])
    fake_llm.answer_at_in_flight = 1000
    # The first calls wait while the rest arrive, which on a busy machine takes longer than the fixture's
    # 5 s provider timeout: they must not time out before the last one is in.
    Provider.objects.filter(pk=agent.agent_type.default_model.provider_id).update(timeout_seconds=90)

    # When 1,000 clients ask at the same moment, 200 of them for a stream
    started = time.monotonic()
    answers = asyncio.run(invoke_all(web.port, agent.pk, key, [f"question {n}" for n in range(1000)], streams=200))
    wall = time.monotonic() - started

    # Then the provider held all 1,000 calls at once, none waiting for another, and every one is answered
    assert fake_llm.most_in_flight == 1000, f"at most {fake_llm.most_in_flight} calls in flight ({wall:.1f} s)"
    failures = {body[:300] for status, body in answers if status != 200}
    assert not failures, failures
    assert all(json.loads(body)["output"] == f"echo: question {n}" for n, (_, body) in enumerate(answers[200:], 200))
    assert all(b"event: done" in body for _, body in answers[:200])
    call_command("record_runs", "--once")
    assert AgentRun.objects.filter(status=AgentRun.Status.SUCCEEDED).count() == 1000


def call_and_wait_for_the_provider(port: int, agent_id: int, key: str, fake_llm, body: dict) -> socket.socket:
    """Send an invocation and wait until the provider has it; the client's connection, not read from."""
    raw = json.dumps(body).encode()
    client = socket.create_connection(("127.0.0.1", port))
    client.sendall(
        f"POST /api/v1/agents/{agent_id}/invoke HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n".encode()
        + raw
    )
    deadline = time.monotonic() + 10
    while fake_llm.chat_calls() == 0:
        assert time.monotonic() < deadline, "the provider never got the call"
        time.sleep(0.01)
    return client


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_goes_away_cancels_the_provider_call_and_gives_back_what_it_held(
    web, alice, agent, fake_llm, stream
):
    # Given a token budget, and a provider that would take 20 seconds
    QuotaPolicy.objects.create(name="budget", tokens_per_day=100_000)
    key = make_key(alice, scopes=["agents:invoke"])
    fake_llm.latency = 20
    redis = cache.client.get_client(write=True)

    # When the client hangs up while the provider is still working on the call, which holds a reservation and
    # the question's single-flight lock
    client = call_and_wait_for_the_provider(
        web.port, agent.pk, key, fake_llm, {"messages": [{"role": "user", "content": "long one"}], "stream": stream}
    )
    assert counter("budget", alice, "tokens_per_day") > 0
    assert len(redis.keys("sb:rc:l:*")) == 1
    client.close()

    # Then the provider's connection is closed at once, not left to run for 20 seconds
    wait_until(lambda: fake_llm.abandoned == 1, timeout=5, interval=0.02)  # not the 20 seconds
    # and the reservation and the single-flight lock are given back, and the run is recorded as cut off
    wait_until(lambda: counter("budget", alice, "tokens_per_day") == 0, timeout=5, interval=0.02)
    assert redis.keys("sb:rc:l:*") == []
    call_command("record_runs", "--once")
    run = AgentRun.objects.get()
    assert (run.status, run.error, run.input_tokens) == (AgentRun.Status.FAILED, "The client went away.", 0)

    # and the same question asked again is answered normally
    fake_llm.latency = 0
    status, body = asyncio.run(
        post(
            web.port, f"/api/v1/agents/{agent.pk}/invoke", {"messages": [{"role": "user", "content": "long one"}]}, key
        )
    )
    assert (status, json.loads(body)["output"]) == (200, "echo: long one")
