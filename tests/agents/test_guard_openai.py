"""Content policies through the OpenAI-compatible API as agents use it: the official `openai` SDK against the
real ASGI server, plain and streamed. A secret split across chunks never reaches the client; a block is
OpenAI's content_filter error, naming the detector and where."""

import json

import openai
import pytest

from agents.models import AgentRun, GuardVerdict
from tests.agents.test_guard_pipeline import CARD, EMAIL, KEY, everything_stored, provider_saw, set_policy
from tests.conftest import make_key
from tests.processes import GunicornProcess

pytestmark = pytest.mark.django_db(transaction=True)

LOOKUP = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


@pytest.fixture
def web(tmp_path):
    server = GunicornProcess(tmp_path / "gunicorn.log", workers=1)
    server.wait_for_log("Booting worker", timeout=30)
    yield server
    server.stop()


@pytest.fixture
def sdk(web, alice):
    return openai.OpenAI(
        base_url=f"{web.url}/v1", api_key=make_key(alice, scopes=["agents:invoke"]), max_retries=0, timeout=30
    )


def test_the_sdk_gets_answers_redacted_plain_and_streamed(sdk, agent, fake_llm):
    set_policy(agent.agent_type, email="redact", card="redact")
    fake_llm.reply = f"card {CARD} belongs to {EMAIL}, as noted"

    plain = sdk.chat.completions.create(model="alice/helper", messages=[{"role": "user", "content": "whose?"}])
    chunks = list(
        sdk.chat.completions.create(
            model="alice/helper", messages=[{"role": "user", "content": "whose card?"}], stream=True
        )
    )

    expected = "card [CARD] belongs to [EMAIL], as noted"
    assert plain.choices[0].message.content == expected
    pieces = [chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices]
    assert "".join(pieces) == expected
    # the card came from the provider in four chunks ("4111 ", "1111 "...): not one of its digits was sent
    assert not any("1111" in piece or "4111" in piece for piece in pieces)
    streamed = AgentRun.objects.get(streamed=True)
    assert set(GuardVerdict.objects.filter(run=streamed).values_list("detector", "where")) == {
        ("card", "stream"),
        ("email", "stream"),
    }
    assert "4111" not in everything_stored(streamed)


def test_a_secret_split_across_streamed_tool_call_arguments_never_reaches_the_client(sdk, agent, fake_llm):
    set_policy(agent.agent_type, secret="redact")
    escaped = KEY[:6] + "\\u00" + format(ord(KEY[6]), "x") + KEY[7:]  # no token in the user's text itself

    chunks = list(
        sdk.chat.completions.create(
            model="alice/helper",
            messages=[{"role": "user", "content": f'lookup {{"ref": "{escaped}"}}'}],
            tools=[LOOKUP],
            stream=True,
        )
    )

    fragments = [
        call.function.arguments or ""
        for chunk in chunks
        if chunk.choices
        for call in chunk.choices[0].delta.tool_calls or []
    ]
    assert json.loads("".join(fragments)) == {"ref": "[SECRET]"}
    assert not any(part in fragment for fragment in fragments for part in (KEY[:10], KEY[12:22], KEY[-10:]))
    run = AgentRun.objects.get()
    assert json.loads(run.tool_calls[0]["function"]["arguments"]) == {"ref": "[SECRET]"}
    assert set(GuardVerdict.objects.filter(run=run).values_list("detector", "action", "where")) == {
        ("secret.github_token", "redact", "tool_arguments")
    }


def test_a_block_is_openais_content_filter_error_plain_and_in_the_stream(sdk, agent, fake_llm):
    set_policy(agent.agent_type, secret="block")

    with pytest.raises(openai.UnprocessableEntityError) as refused:
        sdk.chat.completions.create(model="alice/helper", messages=[{"role": "user", "content": f"use {KEY}"}])
    fake_llm.reply = "a long enough answer that starts well and then leaks the token " + KEY
    with pytest.raises(openai.APIError) as cut:
        for _ in sdk.chat.completions.create(
            model="alice/helper", messages=[{"role": "user", "content": "tell me"}], stream=True
        ):
            pass

    assert refused.value.code == "content_filter" and refused.value.param == "messages[0].content"
    assert "secret.github_token" in refused.value.message and KEY not in str(refused.value.body)
    assert cut.value.code == "content_filter" and "secret.github_token" in cut.value.message
    assert fake_llm.chat_calls() == 1 and KEY not in provider_saw(fake_llm), "the blocked input never left"
    assert list(AgentRun.objects.values_list("status", flat=True)) == ["refused", "refused"]
    assert all(KEY not in everything_stored(run) for run in AgentRun.objects.all())


def test_the_sdk_sends_tool_results_that_are_redacted_before_the_provider(sdk, agent, fake_llm):
    set_policy(agent.agent_type, email="redact")
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}

    answer = sdk.chat.completions.create(
        model="alice/helper",
        messages=[
            {"role": "user", "content": "look it up"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": f"the owner is {EMAIL}"},
        ],
        tools=[LOOKUP],
    )

    assert answer.choices[0].message.content == "tools said: the owner is [EMAIL]"
    assert EMAIL not in provider_saw(fake_llm)
