"""OpenTelemetry tracing, set up in one place and configured by the standard OTEL_* variables.

    OTEL_TRACES_EXPORTER=otlp | console | none (the default: no tracing, and nothing instrumented)
    OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_SERVICE_NAME,
    OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG): read by the SDK itself

`configure(service)` is called once per process as it starts (web: platform_site.asgi; workers and beat:
platform_site.celery). With an exporter it instruments Django, Celery (W3C `traceparent` carried in the
task headers), psycopg, Redis (commands without their arguments) and aiohttp (the provider SDKs' HTTP).
`span()` opens one of the pipeline's own spans; `inject()` adds `traceparent` to outgoing headers (webhooks).
No instrumentation records a request body, a prompt or an answer: the GenAI spans (agents.telemetry) add
message content only with OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true.
"""

import logging
import os
from contextlib import contextmanager, nullcontext

from opentelemetry import propagate, trace

logger = logging.getLogger("switchboard.tracing")
tracer = trace.get_tracer("switchboard")
_configured = False


def enabled() -> bool:
    return os.environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower() not in ("", "none")


def configure(service: str) -> bool:
    """Set up the tracer provider and the instrumentations for this process; False when tracing is off."""
    global _configured
    if _configured or not enabled():
        return _configured
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    os.environ.setdefault("OTEL_SERVICE_NAME", f"switchboard-{service}")
    kind = os.environ["OTEL_TRACES_EXPORTER"].strip().lower()
    if kind == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    elif kind == "console":
        exporter = ConsoleSpanExporter()
    else:
        logger.error("OTEL_TRACES_EXPORTER=%s is not supported (otlp, console or none); tracing is off", kind)
        return False
    provider = TracerProvider(resource=Resource.create())
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    trace.set_tracer_provider(provider)
    _instrument()
    _configured = True
    return True


def _instrument() -> None:
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    DjangoInstrumentor().instrument(is_sql_commentor_enabled=False)
    CeleryInstrumentor().instrument()
    PsycopgInstrumentor().instrument(enable_commenter=False)
    RedisInstrumentor().instrument()
    AioHttpClientInstrumentor().instrument()


def flush() -> None:
    """Export what is buffered (a process about to exit)."""
    provider = trace.get_tracer_provider()
    if hasattr(provider, "force_flush"):
        provider.force_flush(5000)


OFF = nullcontext()  # what `span` gives while tracing is off: entering it yields None


def active() -> bool:
    """Whether this process traces (callers skip building a span's attributes when not)."""
    return _configured


def span(name: str, kind=trace.SpanKind.INTERNAL, **attributes):
    """One of the platform's own spans (a pipeline step), made current; while tracing is off nothing at
    all (the hot path pays no span). Keyword names spell dots as `__` (`gen_ai__request__model`); None
    values are left out. Entering it yields the span, or None."""
    return _span(name, kind, attributes) if _configured else OFF


@contextmanager
def _span(name: str, kind, attributes: dict):
    with tracer.start_as_current_span(name, kind=kind) as current:
        set_attributes(current, **attributes)
        yield current


def start_span(name: str, kind=trace.SpanKind.INTERNAL, **attributes):
    """A span that is not made current (one that lasts across an async generator's yields); the caller
    ends it. None when tracing is off."""
    if not _configured:
        return None
    started = tracer.start_span(name, kind=kind)
    set_attributes(started, **attributes)
    return started


def set_attributes(current, **attributes) -> None:
    if current is None:
        return
    for key, value in attributes.items():
        if value is not None:
            current.set_attribute(key.replace("__", "."), value)


def inject(headers: dict) -> dict:
    """The W3C trace context of the current span, added to outgoing HTTP headers."""
    propagate.inject(headers)
    return headers


def current_ids() -> tuple[str | None, str | None]:
    """(trace id, span id) of the current span as hex, for log lines; (None, None) outside any span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
