"""Streamed invocations: server-sent events, cache replays, refusals, cut-off streams, the breaker."""

import time

import pytest

from agents.models import AgentRun
from tests.agents.conftest import ask, read_stream
from tests.conftest import api_client


@pytest.mark.django_db
def test_streaming_sends_server_sent_events_records_the_run_and_replays_from_the_cache(alice, agent, fake_llm):
    client = api_client(alice)

    def stream(text):
        response = client.post(
            f"/api/v1/agents/{agent.pk}/invoke",
            {"messages": [{"role": "user", "content": text}], "stream": True},
            format="json",
        )
        assert response["Content-Type"] == "text/event-stream"
        return response, read_stream(response)

    first, body = stream("tell me more")
    deltas = [line[len("data: ") :] for line in body.splitlines() if line.startswith("data: ") and '"text"' in line]
    assert "".join(__import__("json").loads(d)["text"] for d in deltas) == "echo: tell me more"
    assert "event: done" in body and first["X-Cache"] == "MISS"
    run = AgentRun.objects.get()
    assert run.streamed and run.output == "echo: tell me more" and run.output_tokens == 4

    second, replay = stream("tell me more")
    assert second["X-Cache"] == "HIT" and "echo: " in replay and fake_llm.chat_calls() == 1


def stream_body(client, agent, text):
    client.raise_request_exception = False
    response = client.post(
        f"/api/v1/agents/{agent.pk}/invoke",
        {"messages": [{"role": "user", "content": text}], "stream": True},
        format="json",
    )
    return response, read_stream(response)


@pytest.mark.django_db
def test_a_streamed_answer_stops_before_a_refused_word_is_sent(alice, agent, fake_llm, settings):
    settings.CONTENT_BLOCKLIST = [r"\bsecret\b"]
    fake_llm.reply = "the secret plan is X"

    _, body = stream_body(api_client(alice), agent, "tell me")

    assert '"the "' in body and "secret" not in body.replace("content policy", "")
    assert "event: error" in body and '"refused"' in body
    assert AgentRun.objects.get().status == "refused"


@pytest.mark.django_db
def test_a_stream_the_provider_cuts_off_is_an_error_and_is_not_cached(alice, agent, fake_llm):
    fake_llm.cut_stream_after = 2

    _, body = stream_body(api_client(alice), agent, "tell me more")

    assert "event: error" in body and "event: done" not in body
    run = AgentRun.objects.get()
    # the partial answer is still recorded, and charged at an upper bound: every byte of "echo: tell "
    assert run.status == "failed" and run.output_tokens == len(b"echo: tell ")
    fake_llm.cut_stream_after = None
    assert stream_body(api_client(alice), agent, "tell me more")[0]["X-Cache"] == "MISS"


@pytest.mark.django_db
def test_streams_refused_by_an_open_breaker_do_not_keep_it_open(alice, agent, fake_llm, settings):
    settings.BREAKER_FAILURES, settings.BREAKER_OPEN_SECONDS = 1, 1
    fake_llm.failures = [500]
    assert ask(api_client(alice), agent, "boom").status_code == 502

    for n in range(3):
        _, body = stream_body(api_client(alice), agent, f"while open {n}")
        assert '"status": 503' in body
    time.sleep(1.1)

    assert ask(api_client(alice), agent, "after the pause").status_code == 200
