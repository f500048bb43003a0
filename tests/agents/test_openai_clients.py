"""The OpenAI-compatible API driven as agents drive it: the official `openai` SDK (sync, async, streaming,
a tool loop, structured output, models, embeddings) and a LangChain agent, against the real ASGI server."""

import asyncio
import json

import openai
import pytest
from pydantic import BaseModel

from agents.models import AgentRun
from memory.embeddings import embedder
from tests.conftest import make_key
from tests.processes import GunicornProcess

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = 'Use get_weather {"city": "Paris"} and get_time, please.'
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    },
    {"type": "function", "function": {"name": "get_time", "description": "The time now."}},
]


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def get_time() -> str:
    """The time now."""
    return "14:05"


@pytest.fixture
def web(tmp_path):
    server = GunicornProcess(tmp_path / "gunicorn.log", workers=1)
    server.wait_for_log("Booting worker", timeout=30)
    yield server
    server.stop()


@pytest.fixture
def key(alice):
    return make_key(alice, scopes=["agents:invoke"])


def test_the_sdk_chats_streams_lists_its_models_and_gets_openai_errors(web, key, agent, fake_llm):
    client = openai.OpenAI(base_url=f"{web.url}/v1", api_key=key, max_retries=0)

    answer = client.chat.completions.create(model="alice/helper", messages=[{"role": "user", "content": "hello"}])
    chunks = list(
        client.chat.completions.create(
            model="alice/helper",
            messages=[{"role": "user", "content": "a streamed hello"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert answer.choices[0].message.content == "echo: hello" and answer.usage.total_tokens == 5
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: a streamed hello"
    assert chunks[-1].usage.completion_tokens == 4 and chunks[-2].choices[0].finish_reason == "stop"
    assert [model.id for model in client.models.list()] == ["alice/helper"]
    assert client.models.retrieve("alice/helper").owned_by == "alice"
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="alice/nobody", messages=[{"role": "user", "content": "hi"}])
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{web.url}/v1", api_key="sb_wrong", max_retries=0).models.list()


def test_the_sdk_runs_a_tool_loop_to_completion_and_parses_structured_output(web, key, agent, fake_llm):
    client = openai.OpenAI(base_url=f"{web.url}/v1", api_key=key, max_retries=0)
    messages = [{"role": "user", "content": QUESTION}]
    functions = {"get_weather": get_weather, "get_time": get_time}

    for _ in range(5):  # the loop every tool-calling agent runs
        message = (
            client.chat.completions.create(model="alice/helper", messages=messages, tools=TOOLS).choices[0].message
        )
        if not message.tool_calls:
            break
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            output = functions[call.function.name](**json.loads(call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": output})

    assert message.content == "tools said: sunny in Paris; 14:05"

    class Trip(BaseModel):
        city: str
        days: int

    parsed = client.chat.completions.parse(
        model="alice/helper", messages=[{"role": "user", "content": "Lisbon"}], response_format=Trip
    )
    assert parsed.choices[0].message.parsed == Trip(city="Lisbon", days=1)


def test_the_async_sdk_has_many_calls_in_flight_at_once(web, key, agent, fake_llm):
    fake_llm.answer_at_in_flight = 20  # the provider answers once it holds all twenty

    async def ask_all():
        client = openai.AsyncOpenAI(base_url=f"{web.url}/v1", api_key=key, max_retries=0, timeout=30)
        answers = await asyncio.gather(
            *[
                client.chat.completions.create(model="alice/helper", messages=[{"role": "user", "content": f"q{n}"}])
                for n in range(20)
            ]
        )
        await client.close()
        return answers

    answers = asyncio.run(ask_all())

    assert fake_llm.most_in_flight == 20
    assert [a.choices[0].message.content for a in answers] == [f"echo: q{n}" for n in range(20)]


def test_embeddings_through_the_sdk_are_the_vectors_memory_is_searched_with(web, key, alice):
    client = openai.OpenAI(base_url=f"{web.url}/v1", api_key=key, max_retries=0)

    result = client.embeddings.create(model="memory", input=["the cat sat", "a dog ran"])  # base64 by default
    floats = client.embeddings.create(model="memory", input="the cat sat", encoding_format="float")

    expected = embedder().embed(["the cat sat", "a dog ran"])
    assert [len(item.embedding) for item in result.data] == [len(expected[0])] * 2
    assert all(abs(a - b) < 1e-6 for a, b in zip(result.data[1].embedding, expected[1], strict=True))
    assert floats.data[0].embedding == pytest.approx(expected[0], abs=1e-9)
    assert result.usage.prompt_tokens > 0


def test_a_langchain_agent_runs_two_tools_to_its_answer_through_switchboard(web, key, agent, fake_llm):
    from langchain.agents import create_agent
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(model="alice/helper", base_url=f"{web.url}/v1", api_key=key, max_retries=0)
    graph = create_agent(model, tools=[tool(get_weather), tool(get_time)])

    result = graph.invoke({"messages": [{"role": "user", "content": QUESTION}]})

    assert result["messages"][-1].content == "tools said: sunny in Paris; 14:05"
    assert [m.name for m in result["messages"] if m.type == "tool"] == ["get_weather", "get_time"]
    assert sorted(AgentRun.objects.values_list("finish_reason", flat=True)) == ["stop", "tool_calls"]
