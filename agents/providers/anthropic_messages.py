"""The Anthropic kind: an OpenAI-shaped request translated to the Messages API and its answer back, as
LiteLLM does.

Request: system messages become `system`; user content parts become blocks (an image by URL, or from a
base64 data URL); assistant tool calls become `tool_use` blocks, tool messages `tool_result` blocks of one
user message; consecutive messages of one role are merged (the API wants them alternating). Tools, tool
choice (`parallel_tool_calls: false` is `disable_parallel_tool_use`), stop (`stop_sequences`), top_p and
user (`metadata.user_id`) have their equivalents; `seed` has none and is ignored. A json_schema
response_format becomes a tool named after the schema that the model must call (unless the caller's own
tools are offered too, then it may): its input is the answer's text. A json_object one becomes an
instruction at the end of the system prompt.

This SDK release has no `temperature` or `top_p` parameter; the Messages API still takes them in the body.
"""

import json
import logging
import re

from agents.models import LanguageModel
from agents.providers.clients import sdk_client
from agents.providers.errors import ProviderError, cut_off, sdk_errors, translate
from agents.providers.shapes import Completion, ToolCallDelta, content_text

logger = logging.getLogger("switchboard.providers")

JSON_OBJECT_INSTRUCTION = "Answer with a single JSON object only, with no text before or after it."
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_DATA_URL = re.compile(r"data:(?P<media_type>[\w.+-]+/[\w.+-]+)(;[^,;]*)*;base64,(?P<data>.*)", re.DOTALL)
_NO_PARAMETERS = {"type": "object", "properties": {}}


def anthropic_request(
    model: LanguageModel, messages: list[dict], temperature: float, max_tokens: int, options
) -> tuple[dict, str | None]:
    """The keyword arguments of `messages.create`/`stream`, and the name of the tool standing for a
    json_schema response_format (None without one). A ProviderError (400) for what cannot be translated."""
    options = options or {}
    system, turns = _turns(messages)
    extra = {"temperature": temperature}
    request = {"model": model.provider_model, "messages": turns, "max_tokens": max_tokens, "extra_body": extra}
    if "top_p" in options:
        extra["top_p"] = options["top_p"]
    if options.get("stop"):
        stop = options["stop"]
        request["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if options.get("user"):
        request["metadata"] = {"user_id": options["user"]}
    tools = [_tool(tool["function"]) for tool in options.get("tools") or ()]
    choice = _tool_choice(options.get("tool_choice"))
    format_ = options.get("response_format") or {}
    json_tool = None
    if format_.get("type") == "json_object":
        system = f"{system}\n\n{JSON_OBJECT_INSTRUCTION}" if system else JSON_OBJECT_INSTRUCTION
    elif format_.get("type") == "json_schema":
        schema = format_["json_schema"]
        json_tool = schema["name"]
        if not tools:  # with the caller's tools too, the model chooses between them and the answer
            choice = {"type": "tool", "name": json_tool}
        tools.append(
            {
                "name": json_tool,
                "description": "Give your answer with this tool: its input is the answer.",
                "input_schema": schema.get("schema") or _NO_PARAMETERS,
            }
        )
    if system:
        request["system"] = system
    if tools:
        request["tools"] = tools
        if options.get("parallel_tool_calls") is False and (choice or {}).get("type") != "none":
            choice = {"type": "auto", **(choice or {}), "disable_parallel_tool_use": True}
        if choice:
            request["tool_choice"] = choice
    return request, json_tool


def _turns(messages: list[dict]) -> tuple[str, list[dict]]:
    system, turns = [], []
    for message in messages:
        role = message["role"]
        if role == "system":
            system.append(content_text(message["content"]))
            continue
        if role == "tool":
            role, content = "user", [_tool_result(message)]
        elif role == "assistant":
            content = _assistant_content(message)
        else:
            content = _user_content(message["content"])
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] = _blocks(turns[-1]["content"]) + _blocks(content)
        else:
            turns.append({"role": role, "content": content})
    return "\n\n".join(system), turns


def _blocks(content) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return content


def _user_content(content):
    if isinstance(content, str):
        return content
    return [_text_block(part) if part["type"] == "text" else _image_block(part["image_url"]["url"]) for part in content]


def _text_block(part: dict) -> dict:
    return {"type": "text", "text": part["text"]}


def _image_block(url: str) -> dict:
    if not url.startswith("data:"):
        return {"type": "image", "source": {"type": "url", "url": url}}
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise ProviderError("An image in a data URL must be base64-encoded.", status=400, provider_fault=False)
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": match["media_type"], "data": match["data"]},
    }


def _assistant_content(message: dict):
    content, calls = message.get("content"), message.get("tool_calls")
    if not calls:
        return content if isinstance(content, str) else [_text_block(p) for p in content or () if p["type"] == "text"]
    return _blocks(content_text(content)) + [_tool_use(call) for call in calls]


def _tool_use(call: dict) -> dict:
    function = call["function"]
    try:
        arguments = json.loads(function["arguments"]) if function["arguments"].strip() else {}
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        raise ProviderError(
            f"The arguments of the tool call {call['id']!r} are not a JSON object.", status=400, provider_fault=False
        )
    return {"type": "tool_use", "id": call["id"], "name": function["name"], "input": arguments}


def _tool_result(message: dict) -> dict:
    content = message["content"]
    if not isinstance(content, str):
        content = [_text_block(part) for part in content if part["type"] == "text"]
    return {"type": "tool_result", "tool_use_id": message["tool_call_id"], "content": content}


def _tool(function: dict) -> dict:
    tool = {"name": function["name"], "input_schema": function.get("parameters") or _NO_PARAMETERS}
    if function.get("description"):
        tool["description"] = function["description"]
    if "strict" in function:
        tool["strict"] = function["strict"]
    return tool


def _tool_choice(choice) -> dict | None:
    if choice is None:
        return None
    if isinstance(choice, dict):
        return {"type": "tool", "name": choice["function"]["name"]}
    return {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]}


def _finish_reason(stop_reason: str | None, tool_calls: list) -> str:
    reason = _FINISH_REASONS.get(stop_reason, "stop")
    return "stop" if reason == "tool_calls" and not tool_calls else reason  # the answer given with a tool


async def anthropic_complete(client, request: dict, json_tool: str | None, headers: dict) -> Completion:
    response = await client.messages.create(**request, extra_headers=headers)
    text, tool_calls = [], []
    for block in response.content:
        if block.type == "text":
            text.append(block.text)
        elif block.type == "tool_use" and block.name == json_tool:
            text.append(json.dumps(block.input))
        elif block.type == "tool_use":
            tool_calls.append(
                {
                    "id": block.id,
                    "type": "function",
                    "function": {"name": block.name, "arguments": json.dumps(block.input)},
                }
            )
    usage = response.usage
    return Completion(
        "".join(text),
        usage.input_tokens,
        usage.output_tokens,
        tool_calls=tool_calls,
        finish_reason=_finish_reason(response.stop_reason, tool_calls),
        response_id=response.id,
        response_model=response.model,
    )


async def anthropic_pieces(call):
    """Text deltas and ToolCallDelta pieces of a streamed answer (tool calls numbered 0, 1... whatever other
    blocks come between them; the input of the answer's tool comes as text); `call.completion` at the end."""
    provider = call.model.provider
    request, json_tool = anthropic_request(call.model, call.messages, call.temperature, call.max_tokens, call.options)
    parts, tool_calls = [], []
    tools_by_block: dict[int, int | None] = {}  # block index -> tool call index (None: the answer's tool)
    fed: set[int] = set()  # blocks whose input has come, at least in part
    try:
        async with sdk_client(provider) as client, client.messages.stream(**request) as events:
            async for event in events:
                if event.type == "content_block_start" and event.content_block.type == "tool_use":
                    block = event.content_block
                    if block.name == json_tool:
                        tools_by_block[event.index] = None
                        continue
                    tools_by_block[event.index] = len(tool_calls)
                    tool_calls.append(
                        {"id": block.id, "type": "function", "function": {"name": block.name, "arguments": ""}}
                    )
                    yield ToolCallDelta(len(tool_calls) - 1, id=block.id, name=block.name)
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    parts.append(event.delta.text)
                    yield event.delta.text
                elif event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                    if event.index in tools_by_block and event.delta.partial_json:
                        fed.add(event.index)
                        yield _input_piece(event.delta.partial_json, tools_by_block[event.index], parts, tool_calls)
                elif event.type == "content_block_stop" and event.index in tools_by_block and event.index not in fed:
                    yield _input_piece("{}", tools_by_block[event.index], parts, tool_calls)  # a call without input
            final = await events.get_final_message()
    except sdk_errors() as error:
        logger.warning("provider %s failed while streaming: %r", provider.name, error)
        raise translate(error, provider) from error
    if final.stop_reason is None:
        raise cut_off(provider)
    call.completion = Completion(
        "".join(parts),
        final.usage.input_tokens,
        final.usage.output_tokens,
        tool_calls=tool_calls,
        finish_reason=_finish_reason(final.stop_reason, tool_calls),
        response_id=final.id,
        response_model=final.model,
    )


def _input_piece(fragment: str, tool_index: int | None, parts: list, tool_calls: list):
    """A fragment of a tool's input: text of the answer for the answer's tool, else a ToolCallDelta."""
    if tool_index is None:
        parts.append(fragment)
        return fragment
    tool_calls[tool_index]["function"]["arguments"] += fragment
    return ToolCallDelta(tool_index, arguments=fragment)
