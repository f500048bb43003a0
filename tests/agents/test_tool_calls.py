"""Tool calls through the pipeline, native and OpenAI-compatible: the cache key, what is cached, the
guards on arguments, the run record, and streamed tool calls."""

import json

import pytest

from agents.models import AgentRun
from tests.agents.conftest import read_stream
from tests.conftest import api_client, make_key

pytestmark = pytest.mark.django_db

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
QUESTION = 'Use get_weather {"city": "Paris"} and get_time, please.'


@pytest.fixture
def client(alice):
    client = api_client(key=make_key(alice, scopes=["agents:invoke", "agents:read"]))
    client.raise_request_exception = False
    return client


def chat(client, messages, **fields):
    body = {"model": "alice/helper", "messages": messages, **fields}
    return client.post("/v1/chat/completions", body, format="json")


def test_a_tool_loop_runs_to_its_answer_and_each_run_keeps_its_tool_calls(client, agent, fake_llm):
    question = [{"role": "user", "content": QUESTION}]
    first = chat(client, question, tools=[WEATHER, TIME])

    message = first.json()["choices"][0]["message"]
    assert first.json()["choices"][0]["finish_reason"] == "tool_calls"
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message["tool_calls"]] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {}),
    ]
    results = [
        {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "sunny, 21 C"},
        {"role": "tool", "tool_call_id": message["tool_calls"][1]["id"], "content": "14:05"},
    ]
    second = chat(client, [*question, message, *results], tools=[WEATHER, TIME])

    assert second.json()["choices"][0]["message"]["content"] == "tools said: sunny, 21 C; 14:05"
    assert fake_llm.requests[1]["body"]["messages"][-1] == results[-1]
    runs = client.get("/api/v1/runs").json()["results"]
    assert [run["finish_reason"] for run in runs] == ["stop", "tool_calls"]
    assert runs[1]["tool_calls"] == message["tool_calls"] and runs[1]["output"] == ""


def test_tools_tool_choice_and_response_format_are_part_of_the_cache_key(client, agent, fake_llm):
    question = [{"role": "user", "content": "what is the weather?"}]
    variants = [
        {},
        {"tools": [WEATHER]},
        {"tools": [WEATHER], "tool_choice": "none"},
        {"response_format": {"type": "json_object"}},
        {"stop": ["."]},
    ]
    first = [chat(client, question, **fields)["X-Cache"] for fields in variants]
    again = [chat(client, question, **fields)["X-Cache"] for fields in variants]

    assert first == ["MISS"] * 5 and again == ["HIT"] * 5
    assert fake_llm.chat_calls() == 5


def test_an_answer_with_tool_calls_is_cached_only_where_the_agent_type_allows_it(client, agent, agent_type, fake_llm):
    question = [{"role": "user", "content": QUESTION}]
    assert [chat(client, question, tools=[WEATHER, TIME])["X-Cache"] for _ in range(2)] == ["MISS", "MISS"]

    agent_type.cache_tool_calls = True
    agent_type.save()
    answers = [chat(client, question, tools=[WEATHER, TIME]) for _ in range(2)]

    assert [answer["X-Cache"] for answer in answers] == ["MISS", "HIT"]
    calls = [answer.json()["choices"][0]["message"]["tool_calls"] for answer in answers]
    assert calls[0] == calls[1] and answers[1].json()["choices"][0]["finish_reason"] == "tool_calls"


def test_the_content_guard_reads_tool_arguments_and_tool_results(client, agent, fake_llm, settings):
    # The provider writes arguments as '{"city": "Paris"}': blocked there, though the question, written
    # without the space, is not.
    settings.CONTENT_BLOCKLIST = [r'"city": "Paris"', r"\bAtlantis\b"]
    question = [{"role": "user", "content": 'get_weather {"city":"Paris"}'}]
    asked = chat(client, question, tools=[WEATHER])
    streamed = chat(client, question, tools=[WEATHER], stream=True)
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    told = chat(
        client,
        [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "Atlantis is sunny"},
        ],
        tools=[WEATHER],
    )

    assert (asked.status_code, asked.json()["error"]["code"]) == (422, "content_filter")
    body = read_stream(streamed)
    assert '"content_filter"' in body and "[DONE]" not in body
    arguments = "".join(
        call["function"]["arguments"]
        for line in body.splitlines()
        if line.startswith("data: {") and "choices" in line
        for choice in json.loads(line[6:])["choices"]
        for call in choice["delta"].get("tool_calls", [])
    )
    assert '"Paris"' not in arguments, "the blocked arguments never reach the client"
    assert told.status_code == 422 and fake_llm.chat_calls() == 2  # the tool result never left
    assert set(AgentRun.objects.values_list("status", flat=True)) == {"refused"}


def test_streamed_tool_calls_arrive_in_pieces_and_the_run_has_them_whole(client, agent, fake_llm):
    response = chat(client, [{"role": "user", "content": QUESTION}], tools=[WEATHER, TIME], stream=True)

    events = [json.loads(line[6:]) for line in read_stream(response).splitlines() if line.startswith("data: {")]
    pieces = [call for e in events for choice in e["choices"] for call in choice["delta"].get("tool_calls", [])]
    assert len(pieces) > 2, "arguments come in several pieces"
    arguments = {}
    for piece in pieces:
        arguments[piece["index"]] = arguments.get(piece["index"], "") + piece["function"]["arguments"]
    assert json.loads(arguments[0]) == {"city": "Paris"} and json.loads(arguments[1]) == {}
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"
    run = AgentRun.objects.get()
    assert [c["function"]["name"] for c in run.tool_calls] == ["get_weather", "get_time"] and run.streamed


def test_the_native_invoke_takes_tools_and_structured_output_too(client, agent, fake_llm):
    tools = client.post(
        f"/api/v1/agents/{agent.pk}/invoke",
        {"messages": [{"role": "user", "content": QUESTION}], "tools": [WEATHER, TIME], "parallel_tool_calls": False},
        format="json",
    )
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}
    structured = client.post(
        f"/api/v1/agents/{agent.pk}/invoke",
        {
            "messages": [{"role": "user", "content": "plan a trip"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "trip", "schema": schema}},
        },
        format="json",
    )

    assert tools.status_code == 200, tools.json()
    assert [c["function"]["name"] for c in tools.json()["tool_calls"]] == ["get_weather"]
    assert tools.json()["finish_reason"] == "tool_calls"
    assert set(json.loads(structured.json()["output"])) == {"city", "days"}
    assert fake_llm.requests[1]["body"]["response_format"]["json_schema"]["name"] == "trip"
