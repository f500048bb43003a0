"""Content policies in the production web server: the browser chat's stream, a policy changed by an operator
honoured by every process within a second, and message content in traces only ever redacted."""

import asyncio
import json
import time

import httpx
import pytest
from django.test import Client
from django.urls import reverse

from agents.models import AgentRun, GuardVerdict
from tests.agents.conftest import post
from tests.agents.test_agent_changes_across_processes import ask_from_both_workers
from tests.agents.test_guard_pipeline import CARD, EMAIL, KEY, everything_stored, set_policy
from tests.conftest import make_key
from tests.fakes.otlp_collector import FakeCollector
from tests.processes import GunicornProcess

pytestmark = pytest.mark.django_db(transaction=True)
CSRF = "b" * 32


def workers_started(server, count: int, timeout: float = 60) -> None:
    """Wait until `count` workers have loaded the application (on a busy machine this takes many seconds)."""
    deadline = time.monotonic() + timeout
    while server.log_text().count("Started server process") < count:
        assert time.monotonic() < deadline, server.log_text()[-3000:]
        time.sleep(0.2)


def browser_of(user, server) -> httpx.Client:
    signed_in = Client()
    signed_in.force_login(user)
    cookies = {"sessionid": signed_in.cookies["sessionid"].value, "csrftoken": CSRF}
    return httpx.Client(base_url=server.url, cookies=cookies, headers={"X-CSRFToken": CSRF}, timeout=30)


def events_of(response) -> list[tuple[str, dict]]:
    blocks = [block for block in response.read().decode().split("\n\n") if block]
    return [(b.split("\n")[0][len("event: ") :], json.loads(b.split("data: ", 1)[1])) for b in blocks]


def test_the_browser_chat_stream_redacts_blocks_and_keeps_only_redacted_text_in_the_session(
    tmp_path, alice, agent, fake_llm
):
    set_policy(agent.agent_type, email="redact", secret="block")
    server = GunicornProcess(tmp_path / "web.log", workers=1)
    try:
        workers_started(server, 1)
        browser = browser_of(alice, server)
        url = reverse("agent_chat_stream", args=[agent.pk])

        with browser.stream("POST", url, data={"message": f"mail {EMAIL} please"}) as response:
            redacted = events_of(response)
        page = browser.get(reverse("agent_chat", args=[agent.pk])).text
        fake_llm.reply = f"sure, the key is {KEY}"
        with browser.stream("POST", url, data={"message": "and the key?"}) as response:
            blocked = events_of(response)
    finally:
        server.stop()

    assert "".join(data["text"] for event, data in redacted if event == "delta") == "echo: mail [EMAIL] please"
    assert redacted[-1][0] == "done"
    assert "mail [EMAIL] please" in page and EMAIL not in page, "the session kept the redacted conversation"
    assert blocked[-1][0] == "error" and blocked[-1][1]["code"] == "content_blocked"
    assert blocked[-1][1]["guard"]["detector"] == "secret.github_token"
    assert KEY not in json.dumps(blocked)
    runs = AgentRun.objects.order_by("created_at")
    assert [run.status for run in runs] == ["succeeded", "refused"]
    assert all(EMAIL not in everything_stored(run) and KEY not in everything_stored(run) for run in runs)
    assert EMAIL not in server.log_text() and KEY not in server.log_text()


def test_a_policy_changed_in_one_process_is_applied_by_every_process_within_a_second(tmp_path, alice, agent, fake_llm):
    # Given two web workers that have both served the agent's type (and so keep its policy: none)
    key = make_key(alice, scopes=["agents:invoke"])
    server = GunicornProcess(tmp_path / "gunicorn.log", workers=2)
    try:
        workers_started(server, 2)
        ask_from_both_workers(server, agent.pk, key, f"before {EMAIL}")
        assert EMAIL in json.dumps([request["body"] for request in fake_llm.requests])

        # When an operator (here, this process) sets a policy that redacts e-mail addresses, and a second passes
        set_policy(agent.agent_type, email="redact")
        time.sleep(1)

        # Then every call, whichever worker serves it, sends the provider the redacted text
        fake_llm.requests.clear()
        ask_from_both_workers(server, agent.pk, key, f"after {EMAIL}")
    finally:
        server.stop()
    sent = json.dumps([request["body"]["messages"] for request in fake_llm.requests])
    assert EMAIL not in sent and "after [EMAIL]" in sent


def test_traces_carry_message_content_only_when_asked_and_always_redacted(tmp_path, alice, agent, fake_llm):
    # Given a policy that redacts keys and only flags e-mail addresses and cards, and content capture on
    set_policy(agent.agent_type, secret="redact", email="flag", card="flag")
    collector = FakeCollector()
    env = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.endpoint,
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true",
    }
    web = GunicornProcess(tmp_path / "web.log", workers=1, env=env)
    fake_llm.reply = f"noted: {CARD}"
    try:
        workers_started(web, 1)
        body = {"messages": [{"role": "user", "content": f"{EMAIL} uses {KEY} and the word tangerine"}]}
        status, answer = asyncio.run(
            post(web.port, f"/api/v1/agents/{agent.pk}/invoke", body, make_key(alice, scopes=["agents:invoke"]))
        )
        spans = collector.wait_for(lambda spans: any(s["name"] == "chat gpt-fake" for s in spans))
    finally:
        web.stop()
        collector.stop()

    # Then the chat span has the conversation and the answer in the conventions' shape, with what the policy
    # only flags redacted too; no span anywhere has the clear text
    assert status == 200 and json.loads(answer)["output"] == f"noted: {CARD}", "flags change nothing for the user"
    [chat] = [span for span in spans if span["name"] == "chat gpt-fake"]
    sent = json.loads(chat["attributes"]["gen_ai.input.messages"])
    assert sent[-1] == {
        "role": "user",
        "parts": [{"type": "text", "content": "[EMAIL] uses [SECRET] and the word tangerine"}],
    }
    assert sent[0]["role"] == "system"
    assert json.loads(chat["attributes"]["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "noted: [CARD]"}], "finish_reason": "stop"}
    ]
    every_value = json.dumps([span["attributes"] for span in spans])
    assert EMAIL not in every_value and KEY not in every_value and "4111" not in every_value
    verdicts = set(GuardVerdict.objects.values_list("detector", "action", "where"))
    assert verdicts == {
        ("email", "flag", "input"),
        ("secret.github_token", "redact", "input"),
        ("card", "flag", "output"),
    }


def test_without_content_capture_no_span_has_any_prompt_or_answer(tmp_path, alice, agent, fake_llm):
    collector = FakeCollector()
    env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.endpoint}
    web = GunicornProcess(tmp_path / "web.log", workers=1, env=env)
    try:
        workers_started(web, 1)
        body = {"messages": [{"role": "user", "content": "the word tangerine"}]}
        status, _ = asyncio.run(
            post(web.port, f"/api/v1/agents/{agent.pk}/invoke", body, make_key(alice, scopes=["agents:invoke"]))
        )
        spans = collector.wait_for(lambda spans: any(s["name"] == "chat gpt-fake" for s in spans))
    finally:
        web.stop()
        collector.stop()

    assert status == 200
    assert "tangerine" not in json.dumps([span["attributes"] for span in spans])
    assert not any("gen_ai.input.messages" in span["attributes"] for span in spans)
