"""OpenAI's shapes: a Chat Completions request read into what the pipeline takes, and the answer, its
stream chunks and the error body written as OpenAI writes them (so the official SDKs parse them).

Unknown fields are refused, as OpenAI refuses them; fields OpenAI has that change nothing a user relies
on here are accepted and ignored (IGNORED); fields whose effect Switchboard cannot give are refused when
set to anything but their default (n, logprobs, audio, modalities, the legacy functions).
"""

import json
import time

from django.core.exceptions import ValidationError

from agents import conversation
from agents.providers import ToolCallDelta

TAKEN = {
    "model",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "metadata",
    *conversation.OPTIONS,
}
IGNORED = {
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "store",
    "service_tier",
    "reasoning_effort",
    "verbosity",
    "prediction",
    "top_logprobs",
    "prompt_cache_key",
    "safety_identifier",
}
ONLY_DEFAULT = {
    "n": 1,
    "logprobs": False,
    "audio": None,
    "modalities": ["text"],
    "functions": None,
    "function_call": None,
}


def chat_request(data) -> dict:
    """The request's fields checked (400 naming the field at fault) and normalised for the pipeline."""
    if not isinstance(data, dict):
        raise ValidationError({"messages": "Send a JSON object."})
    for name in data:
        if name not in TAKEN and name not in IGNORED and name not in ONLY_DEFAULT:
            raise ValidationError({name: f"Unrecognized request argument supplied: {name}"})
    for name, default in ONLY_DEFAULT.items():
        if data.get(name, default) not in (default, None):
            raise ValidationError({name: f"Switchboard does not support {name}={json.dumps(data[name])}."})
    if not isinstance(data.get("model"), str) or not data["model"]:
        raise ValidationError({"model": "Name the agent to call: agent:<id> or <owner>/<agent name>."})
    stream = data.get("stream") or False
    if not isinstance(stream, bool):
        raise ValidationError({"stream": "Must be true or false."})
    return {
        "model": data["model"],
        "messages": conversation.clean_messages(data.get("messages")),
        "options": conversation.clean_options(data),
        "temperature": _number(data, "temperature", 0, 2),
        "max_tokens": _max_tokens(data),
        "metadata": _metadata(data.get("metadata")),
        "stream": stream,
        "include_usage": stream and _include_usage(data.get("stream_options")),
    }


def _number(data: dict, name: str, low: float, high: float) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValidationError({name: f"Must be a number from {low} to {high}."})
    return float(value)


def _max_tokens(data: dict) -> int | None:
    name = "max_completion_tokens" if data.get("max_completion_tokens") is not None else "max_tokens"
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError({name: "Must be a positive integer."})
    return value


def _metadata(metadata) -> dict:
    """Stored with the run: at most 16 pairs of text, as OpenAI takes them."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or len(metadata) > 16:
        raise ValidationError({"metadata": "At most 16 key-value pairs."})
    for key, value in metadata.items():
        if len(key) > 64 or not isinstance(value, str) or len(value) > 512 or "\x00" in key + value:
            raise ValidationError({"metadata": "Keys of at most 64 characters, text values of at most 512."})
    return metadata


def _include_usage(stream_options) -> bool:
    if stream_options is None:
        return False
    if not isinstance(stream_options, dict) or not isinstance(stream_options.get("include_usage", False), bool):
        raise ValidationError({"stream_options": "{'include_usage': true | false}."})
    return stream_options.get("include_usage", False)


# --- answers --------------------------------------------------------------------------------------------


def completion_body(*, completion_id: str, model: str, created: int, result) -> dict:
    """A `chat.completion` object for one pipeline result."""
    message = {"role": "assistant", "content": result.text or None, "refusal": None}
    if result.tool_calls:
        message["tool_calls"] = result.tool_calls
    elif message["content"] is None:
        message["content"] = ""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": result.finish_reason, "logprobs": None}],
        "usage": usage_body(result.run),
        "system_fingerprint": None,
    }


def usage_body(run) -> dict:
    return {
        "prompt_tokens": run.input_tokens,
        "completion_tokens": run.output_tokens,
        "total_tokens": run.input_tokens + run.output_tokens,
    }


class Chunks:
    """`chat.completion.chunk` events of one streamed answer, as server-sent `data:` lines."""

    def __init__(self, completion_id: str, model: str):
        self.base = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

    def event(self, delta: dict | None = None, finish_reason: str | None = None, usage: dict | None = None) -> str:
        choices = (
            [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
        )
        return f"data: {json.dumps({**self.base, 'choices': choices, 'usage': usage})}\n\n"

    def first(self) -> str:
        return self.event({"role": "assistant", "content": ""})

    def piece(self, piece) -> str:
        if isinstance(piece, ToolCallDelta):
            call = {"index": piece.index, "function": {"arguments": piece.arguments}}
            if piece.id is not None:
                call.update(id=piece.id, type="function")
                call["function"]["name"] = piece.name
            return self.event({"tool_calls": [call]})
        return self.event({"content": piece})

    def last(self, finish_reason: str) -> str:
        return self.event({}, finish_reason=finish_reason)

    def usage(self, run) -> str:
        return self.event(None, usage=usage_body(run))


DONE = "data: [DONE]\n\n"

# The `type` of an OpenAI error, by status.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "content_filter",
    429: "rate_limit_error",
}


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None) -> dict:
    kind = ERROR_TYPES.get(status, "server_error" if status < 502 else "upstream_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
