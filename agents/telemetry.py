"""The invocation pipeline in traces, after the OpenTelemetry GenAI semantic conventions: an
`invoke_agent {agent}` span around each call, a `chat {model}` CLIENT span around the provider call (its
request, response and usage attributes, `error.type` when it fails), and a span per pipeline step. Nothing
here records a prompt, an answer or a key (content capture is not offered yet). Spans cost nothing while
tracing is off (core.tracing)."""

from urllib.parse import urlsplit

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


def chat_started(call):
    """The same span for a streamed call, not made current: `finished()` ends it."""
    if not tracing.active():
        return None
    name, kind, attributes = _chat(call)
    return tracing.start_span(name, kind, **attributes)


def finished(span, completion=None, error: Exception | None = None) -> None:
    if span is None:
        return
    if completion is not None:
        answered(span, completion)
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
    return f"chat {model.provider_model}", SpanKind.CLIENT, attributes


def answered(span, completion) -> None:
    """The response attributes of a `chat` span."""
    if span is None:
        return
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
