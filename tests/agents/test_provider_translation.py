"""Tools, tool calls, images and structured output through both provider kinds, driven through their real SDKs
against the fake: what the caller gets back in OpenAI's shape, and what reached the provider in its own."""

import json

import pytest
from asgiref.sync import async_to_sync

from agents import providers
from agents.providers import ProviderError, ToolCallDelta
from tests.factories import LanguageModelFactory, ProviderFactory

pytestmark = pytest.mark.django_db

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CLOCK = {"type": "function", "function": {"name": "get_time"}}
ASK_BOTH = 'get_weather {"city": "Paris"} and then get_time please'
PNG = "data:image/png;base64,iVBORw0KGgo="
REPORT = {
    "name": "weather_report",
    "schema": {
        "type": "object",
        "properties": {"summary": {"type": "string"}, "degrees": {"type": "integer"}, "sunny": {"type": "boolean"}},
    },
}


def model_on(fake_llm, kind: str):
    base_url = fake_llm.base_url if kind == "openai" else fake_llm.base_url.removesuffix("/v1")
    provider = ProviderFactory(kind=kind, base_url=base_url, timeout_seconds=5, max_retries=0)
    return LanguageModelFactory(provider=provider, provider_model=f"{kind}-x")


@pytest.fixture(params=["openai", "anthropic"])
def llm(request, fake_llm):
    """A model of each provider kind, on the fake."""
    return model_on(fake_llm, request.param)


@pytest.fixture
def claude(fake_llm):
    return model_on(fake_llm, "anthropic")


def complete(model, messages, **options):
    return async_to_sync(providers.complete)(
        model=model, messages=messages, temperature=0.2, max_tokens=100, options=options
    )


def stream(model, messages, **options):
    """(the pieces, the completion) of a streamed call."""

    async def read():
        call = providers.stream(model=model, messages=messages, temperature=0.2, max_tokens=100, options=options)
        return [piece async for piece in call], call.completion

    return async_to_sync(read)()


def user(content) -> list[dict]:
    return [{"role": "user", "content": content}]


def sent(fake_llm) -> dict:
    return fake_llm.requests[-1]["body"]


def calls_made(tool_calls) -> list[tuple[str, dict]]:
    return [(call["function"]["name"], json.loads(call["function"]["arguments"])) for call in tool_calls]


def test_plain_text_calls_send_and_answer_as_they_always_did(llm, fake_llm):
    answer = complete(llm, [{"role": "system", "content": "Be brief."}, *user("hello there")])

    assert (answer.text, answer.tool_calls, answer.finish_reason) == ("echo: hello there", [], "stop")
    if llm.provider.kind == "openai":
        assert sent(fake_llm) == {
            "model": "openai-x",
            "messages": [{"role": "system", "content": "Be brief."}, *user("hello there")],
            "temperature": 0.2,
            "max_tokens": 100,
        }
    else:
        assert sent(fake_llm)["system"] == "Be brief." and sent(fake_llm)["messages"] == user("hello there")
        assert "tools" not in sent(fake_llm) and "tool_choice" not in sent(fake_llm)


def test_the_tools_a_user_asks_for_are_called_with_their_arguments(llm, fake_llm):
    answer = complete(llm, user(ASK_BOTH), tools=[WEATHER, CLOCK])

    assert answer.text == "" and answer.finish_reason == "tool_calls"
    assert calls_made(answer.tool_calls) == [("get_weather", {"city": "Paris"}), ("get_time", {})]
    assert all(call["type"] == "function" and call["id"] for call in answer.tool_calls)
    assert answer.output_tokens == 3  # the words of the arguments: {"city": "Paris"} and {}
    if llm.provider.kind == "anthropic":
        assert sent(fake_llm)["tools"] == [
            {
                "name": "get_weather",
                "description": "The weather in a city.",
                "input_schema": WEATHER["function"]["parameters"],
            },
            {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
        ]


def test_streamed_tool_calls_come_in_fragments_that_add_up_to_the_whole_calls(llm, fake_llm):
    fake_llm.reply = "Let me look."  # text before the calls: Anthropic's first content block

    pieces, completion = stream(llm, user(ASK_BOTH), tools=[WEATHER, CLOCK])

    text = [piece for piece in pieces if isinstance(piece, str)]
    deltas = [piece for piece in pieces if isinstance(piece, ToolCallDelta)]
    assert "".join(text) == completion.text == "Let me look."
    assert [(d.index, d.name) for d in deltas if d.id] == [(0, "get_weather"), (1, "get_time")]
    weather = [d.arguments for d in deltas if d.index == 0 and not d.id]
    assert len(weather) > 1 and json.loads("".join(weather)) == {"city": "Paris"}
    assert calls_made(completion.tool_calls) == [("get_weather", {"city": "Paris"}), ("get_time", {})]
    assert [call["id"] for call in completion.tool_calls] == [d.id for d in deltas if d.id]
    assert completion.finish_reason == "tool_calls" and completion.output_tokens > 0


def test_with_parallel_tool_calls_off_only_one_call_is_made(llm, fake_llm):
    answer = complete(llm, user(ASK_BOTH), tools=[WEATHER, CLOCK], parallel_tool_calls=False)
    _, completion = stream(llm, user(ASK_BOTH), tools=[WEATHER, CLOCK], parallel_tool_calls=False)

    assert calls_made(answer.tool_calls) == calls_made(completion.tool_calls) == [("get_weather", {"city": "Paris"})]
    if llm.provider.kind == "anthropic":
        assert sent(fake_llm)["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


@pytest.mark.parametrize(
    "choice, anthropic_choice, called",
    [
        ("required", {"type": "any"}, [("get_weather", {"city": "what now"})]),
        (
            {"type": "function", "function": {"name": "get_time"}},
            {"type": "tool", "name": "get_time"},
            [("get_time", {})],
        ),
        ("none", {"type": "none"}, []),
    ],
)
def test_tool_choice_forces_a_call_or_forbids_one(llm, fake_llm, choice, anthropic_choice, called):
    answer = complete(llm, user("what now"), tools=[WEATHER, CLOCK], tool_choice=choice)

    assert calls_made(answer.tool_calls) == called
    assert answer.finish_reason == ("tool_calls" if called else "stop")
    assert sent(fake_llm)["tool_choice"] == (choice if llm.provider.kind == "openai" else anthropic_choice)


def test_the_tool_results_turn_is_answered_from_the_results(llm, fake_llm):
    asked = complete(llm, user(ASK_BOTH), tools=[WEATHER, CLOCK])
    weather, clock = asked.tool_calls
    conversation = [
        *user(ASK_BOTH),
        {"role": "assistant", "content": None, "tool_calls": asked.tool_calls},
        {"role": "tool", "tool_call_id": weather["id"], "content": "18 degrees"},
        {"role": "tool", "tool_call_id": clock["id"], "content": [{"type": "text", "text": "ten past ten"}]},
    ]

    answer = complete(llm, conversation, tools=[WEATHER, CLOCK])
    pieces, completion = stream(llm, conversation, tools=[WEATHER, CLOCK])

    assert answer.text == "".join(pieces) == completion.text == "tools said: 18 degrees; ten past ten"
    assert answer.finish_reason == completion.finish_reason == "stop" and answer.tool_calls == []
    if llm.provider.kind == "anthropic":
        assert [message["role"] for message in sent(fake_llm)["messages"]] == ["user", "assistant", "user"]
        assistant, results = sent(fake_llm)["messages"][1:]
        assert [(b["type"], b["id"], b["input"]) for b in assistant["content"]] == [
            ("tool_use", weather["id"], {"city": "Paris"}),
            ("tool_use", clock["id"], {}),
        ]
        assert results["content"] == [
            {"type": "tool_result", "tool_use_id": weather["id"], "content": "18 degrees"},
            {"type": "tool_result", "tool_use_id": clock["id"], "content": [{"type": "text", "text": "ten past ten"}]},
        ]


def test_images_by_data_url_and_by_address_reach_the_provider_in_its_own_shape(llm, fake_llm):
    image_parts = [
        {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]

    answer = complete(llm, user([{"type": "text", "text": "what is this"}, *image_parts]))

    assert answer.text == "echo: what is this"
    if llm.provider.kind == "openai":
        assert fake_llm.images == image_parts
    else:
        assert fake_llm.images == [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        ]


def test_a_json_object_answer_is_one_json_object(llm, fake_llm):
    answer = complete(llm, user("weather please"), response_format={"type": "json_object"})
    _, completion = stream(llm, user("weather please"), response_format={"type": "json_object"})

    assert json.loads(answer.text) == json.loads(completion.text) == {"echo": "weather please"}
    if llm.provider.kind == "anthropic":
        assert sent(fake_llm)["system"].endswith(
            "Answer with a single JSON object only, with no text before or after it."
        )


def test_a_json_schema_answer_has_the_schema_keys_plain_and_streamed(llm, fake_llm):
    answer = complete(llm, user("weather please"), response_format={"type": "json_schema", "json_schema": REPORT})
    pieces, completion = stream(
        llm, user("weather please"), response_format={"type": "json_schema", "json_schema": REPORT}
    )

    expected = {"summary": "weather please", "degrees": 1, "sunny": True}
    assert json.loads(answer.text) == json.loads(completion.text) == expected
    assert all(isinstance(piece, str) for piece in pieces) and "".join(pieces) == completion.text
    assert answer.tool_calls == completion.tool_calls == []
    assert answer.finish_reason == completion.finish_reason == "stop"
    if llm.provider.kind == "anthropic":
        assert sent(fake_llm)["tool_choice"] == {"type": "tool", "name": "weather_report"}
        assert sent(fake_llm)["tools"][0]["input_schema"] == REPORT["schema"]


def test_sampling_options_arrive_as_the_providers_own_fields(llm, fake_llm):
    complete(llm, user("hi"), stop=["END"], top_p=0.5, user="user-42", seed=7)

    body = sent(fake_llm)
    if llm.provider.kind == "openai":
        assert (body["stop"], body["top_p"], body["user"], body["seed"]) == (["END"], 0.5, "user-42", 7)
    else:
        assert (body["stop_sequences"], body["top_p"], body["metadata"]) == (["END"], 0.5, {"user_id": "user-42"})
        assert body["temperature"] == 0.2 and "seed" not in body and "user" not in body


def test_consecutive_messages_of_one_role_are_merged_for_anthropic(claude, fake_llm):
    complete(claude, [*user("first"), *user([{"type": "text", "text": "second"}])], stop="END")

    assert sent(fake_llm)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]}
    ]
    assert sent(fake_llm)["stop_sequences"] == ["END"]


def test_tool_calls_with_arguments_that_are_not_json_are_refused_before_anthropic_is_called(claude, fake_llm):
    broken = {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{not json"}}
    conversation = [*user("time?"), {"role": "assistant", "content": None, "tool_calls": [broken]}]

    with pytest.raises(ProviderError) as plain:
        complete(claude, conversation, tools=[CLOCK])
    with pytest.raises(ProviderError) as streamed:
        stream(claude, conversation, tools=[CLOCK])

    for error in (plain.value, streamed.value):
        assert error.status == 400 and not error.provider_fault and "not a JSON object" in str(error)
    assert fake_llm.requests == []


def test_the_echo_provider_ignores_options_and_reads_the_text_parts():
    model = LanguageModelFactory()  # an echo provider

    answer = complete(model, user([{"type": "text", "text": "hello"}, {"type": "text", "text": "you"}]), tools=[CLOCK])
    pieces, completion = stream(model, user("hi there"), response_format={"type": "json_object"})

    assert (answer.text, answer.tool_calls, answer.finish_reason) == ("echo: hello you", [], "stop")
    assert "".join(pieces) == completion.text == "echo: hi there"


def test_a_stream_dropped_before_its_end_is_an_error_not_a_shorter_answer(llm, fake_llm):
    fake_llm.cut_stream_after = 2

    with pytest.raises(ProviderError) as cut:
        stream(llm, user("a long answer please"))

    assert cut.value.status == 502 and "cut the answer off" in str(cut.value)
