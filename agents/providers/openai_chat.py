"""The OpenAI-compatible kind: messages and options go in the body as they are, tool calls are read back.

The body is sent with the SDK's `client.post` (its documented way to send a body as is):
`chat.completions.create()` re-checks its typed parameters on every call, a tenth of a busy web process's
time, for a body built here from validated values.
"""

import logging

from agents.models import LanguageModel
from agents.providers.clients import sdk_client
from agents.providers.errors import cut_off, sdk_errors, translate
from agents.providers.shapes import Completion, ToolCallDelta, ToolCalls

logger = logging.getLogger("switchboard.providers")


def chat_body(model: LanguageModel, messages: list[dict], temperature: float, max_tokens: int, options) -> dict:
    body = {"model": model.provider_model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens}
    if options:
        body.update(options)  # tools, tool_choice, response_format, stop, seed...: the same names in the API
    return body


async def openai_complete(client, body: dict, headers: dict) -> Completion:
    from openai.types.chat import ChatCompletion

    response = await client.post("/chat/completions", cast_to=ChatCompletion, body=body, options={"headers": headers})
    choice, usage = response.choices[0], response.usage
    tool_calls = [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.function.name, "arguments": call.function.arguments},
        }
        for call in choice.message.tool_calls or ()
    ]
    return Completion(
        choice.message.content or "",
        usage.prompt_tokens,
        usage.completion_tokens,
        tool_calls=tool_calls,
        finish_reason=_finish_reason(choice.finish_reason),
        response_id=response.id or "",
        response_model=response.model or "",
    )


async def openai_pieces(call):
    """Text deltas and ToolCallDelta pieces of a streamed completion; `call.completion` once it has ended.
    A stream that ends without a finish reason was cut off: a ProviderError."""
    provider = call.model.provider
    try:
        from openai import AsyncStream
        from openai.types.chat import ChatCompletion, ChatCompletionChunk

        async with sdk_client(provider) as client:
            body = chat_body(call.model, call.messages, call.temperature, call.max_tokens, call.options)
            response = await client.post(
                "/chat/completions",
                cast_to=ChatCompletion,
                body={**body, "stream": True, "stream_options": {"include_usage": True}},
                stream=True,
                stream_cls=AsyncStream[ChatCompletionChunk],
            )
            parts, tool_calls, usage, finish_reason, answer = [], ToolCalls(), None, None, None
            try:
                async for chunk in response:
                    answer = chunk
                    if chunk.usage is not None:
                        usage = chunk.usage
                    if not chunk.choices:
                        continue
                    choice = chunk.choices[0]
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason
                    if choice.delta.content:
                        parts.append(choice.delta.content)
                        yield choice.delta.content
                    for delta in choice.delta.tool_calls or ():
                        function = delta.function
                        piece = ToolCallDelta(
                            delta.index,
                            id=delta.id,
                            name=function.name if function else None,
                            arguments=(function.arguments or "") if function else "",
                        )
                        tool_calls.add(piece)
                        yield piece
            finally:
                await response.close()  # a client that went away must not keep the provider generating
    except sdk_errors() as error:
        logger.warning("provider %s failed while streaming: %r", provider.name, error)
        raise translate(error, provider) from error
    if finish_reason is None:
        raise cut_off(provider)
    text = "".join(parts)
    call.completion = Completion(
        text,
        usage.prompt_tokens if usage else 0,
        usage.completion_tokens if usage else len(text.split()),
        tool_calls=tool_calls.assembled(),
        finish_reason=_finish_reason(finish_reason),
        response_id=answer.id or "",
        response_model=answer.model or "",
    )


def _finish_reason(reason: str | None) -> str:
    return "tool_calls" if reason == "function_call" else reason or "stop"
