"""The invocation pipeline in traces, after the OpenTelemetry GenAI semantic conventions: an
`invoke_agent {agent}` span around each call, a `chat {model}` CLIENT span around the provider call (its
request, response and usage attributes, `error.type` when it fails), and a span per pipeline step. Spans
cost nothing while tracing is off (core.tracing).

No prompt, answer or key is recorded unless OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true: then
the `chat` span carries `gen_ai.input.messages` and `gen_ai.output.messages` (JSON, in the conventions'
shape: `[{"role", "parts": [{"type": "text", "content"}, {"type": "tool_call", "id", "name", "arguments"},
{"type": "tool_call_response", "id", "response"}], "finish_reason"}]`), every text through the content
policy's redactions and every personal-data and secret detector (agents.services.guarding.trace_policy),
even those the policy only flags."""

import json
from urllib.parse import urlsplit

from django.conf import settings
from opentelemetry.trace import SpanKind, Status, StatusCode

from agents.models import Provider
from core import tracing

DEFAULT_HOSTS = {Provider.Kind.OPENAI: "api.openai.com", Provider.Kind.ANTHROPIC: "api.anthropic.com"}


def provider_name(provider: Provider) -> str:
    """`gen_ai.provider.name`: the conventions' names for the two APIs; ours for the echo provider."""
    return "switchboard.echo" if provider.kind == Provider.Kind.ECHO else str(provider.kind)


def invoke_agent(call):
    if not tracing.active():
        return tracing.OFF
    agent, model = call.agent, call.agent.effective_model
    return tracing.span(
        f"invoke_agent {agent.name}",
        gen_ai__operation__name="invoke_agent",
        gen_ai__provider__name=provider_name(model.provider),
        gen_ai__agent__id=str(agent.pk),
        gen_ai__agent__name=agent.name,
        gen_ai__request__model=model.provider_model,
    )


def step(name: str):
    """One pipeline step: guard, memory, quota and cache, single flight, record."""
    return tracing.span(f"switchboard.{name}")


def chat(call):
    """The provider call, a CLIENT span named `chat {gen_ai.request.model}` (a context manager)."""
    if not tracing.active():
        return tracing.OFF
    name, kind, attributes = _chat(call)
    return tracing.span(name, kind, **attributes)


def capturing() -> bool:
    return tracing.active() and settings.OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT


def chat_started(call):
    """The same span for a streamed call, not made current: `finished()` ends it."""
    if not tracing.active():
        return None
    name, kind, attributes = _chat(call)
    return tracing.start_span(name, kind, **attributes)


def finished(span, completion=None, error: Exception | None = None, call=None) -> None:
    if span is None:
        return
    if completion is not None:
        answered(span, completion, call)
    if error is not None:
        failed(span, error)
    span.end()


def _chat(call) -> tuple[str, SpanKind, dict]:
    model, options = call.agent.effective_model, call.options
    url = urlsplit(model.provider.base_url) if model.provider.base_url else None
    attributes = dict(
        gen_ai__operation__name="chat",
        gen_ai__provider__name=provider_name(model.provider),
        gen_ai__request__model=model.provider_model,
        gen_ai__request__max_tokens=call.max_tokens,
        gen_ai__request__temperature=call.temperature_used,
        gen_ai__request__top_p=options.get("top_p"),
        gen_ai__request__seed=options.get("seed"),
        gen_ai__request__stop_sequences=options.get("stop"),
        server__address=url.hostname if url else DEFAULT_HOSTS.get(model.provider.kind),
        server__port=(url.port if url else None),
    )
    if capturing():
        attributes["gen_ai__input__messages"] = json.dumps(_input_messages(call), ensure_ascii=False)
    return f"chat {model.provider_model}", SpanKind.CLIENT, attributes


def answered(span, completion, call=None) -> None:
    """The response attributes of a `chat` span (and, with content capture, the answer, redacted)."""
    if span is None:
        return
    if call is not None and capturing():
        span.set_attribute("gen_ai.output.messages", json.dumps(_output_messages(call, completion), ensure_ascii=False))
    tracing.set_attributes(
        span,
        gen_ai__response__id=completion.response_id or None,
        gen_ai__response__model=completion.response_model or None,
        gen_ai__response__finish_reasons=[completion.finish_reason],
        gen_ai__usage__input_tokens=completion.input_tokens,
        gen_ai__usage__output_tokens=completion.output_tokens,
    )


def failed(span, error: Exception) -> None:
    """`error.type`: the HTTP status the provider's failure became, else the exception's class."""
    if span is None:
        return
    status = getattr(error, "status", None)
    span.set_attribute("error.type", str(status) if status else error.__class__.__name__)
    span.set_status(Status(StatusCode.ERROR, str(error)))


# --- content capture ----------------------------------------------------------------------------------------


def _redactor(call):
    from agents.services.guarding import for_trace, trace_policy

    policy = trace_policy(call.guard)
    return lambda text: for_trace(policy, text)


def _tool_call_part(call: dict, redact) -> dict:
    arguments = redact(call["function"]["arguments"])
    try:
        arguments = json.loads(arguments)
    except ValueError:
        pass
    return {"type": "tool_call", "id": call.get("id") or None, "name": call["function"]["name"], "arguments": arguments}


def _input_messages(call) -> list[dict]:
    """The prompt as sent (system prompt, memories, the redacted conversation), in the conventions' shape."""
    redact = _redactor(call)
    messages = []
    for message in call.prompt:
        content, parts = message.get("content"), []
        if message["role"] == "tool":
            parts.append(
                {"type": "tool_call_response", "id": message.get("tool_call_id"), "response": redact(_text(content))}
            )
        elif isinstance(content, str):
            parts.append({"type": "text", "content": redact(content)})
        elif isinstance(content, list):
            for part in content:
                if part["type"] == "text":
                    parts.append({"type": "text", "content": redact(part["text"])})
                else:  # an image: its kind only (a generic part), never its address or bytes
                    parts.append({"type": "image"})
        parts += [_tool_call_part(tool_call, redact) for tool_call in message.get("tool_calls", ())]
        messages.append({"role": message["role"], "parts": parts})
    return messages


def _output_messages(call, completion) -> list[dict]:
    redact = _redactor(call)
    parts = [{"type": "text", "content": redact(completion.text)}] if completion.text else []
    parts += [_tool_call_part(tool_call, redact) for tool_call in completion.tool_calls]
    return [{"role": "assistant", "parts": parts, "finish_reason": completion.finish_reason}]


def _text(content) -> str:
    if isinstance(content, list):
        return "\n".join(part["text"] for part in content if part["type"] == "text")
    return content or ""
