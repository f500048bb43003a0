"""What the invocation pipeline adds to the metrics (definitions in core/metrics.py), labels bounded by the catalog.

    await metrics.run_closed(call, run, charged=...)   # close(): the run, its tokens and cost
    await metrics.provider_finished(call, error=None)  # a provider call ended: its duration, a failure
    await metrics.first_chunk(call)                    # a stream's first chunk

Provider, model and agent-type labels are names the catalog holds (Provider.name, LanguageModel.name,
AgentType.slug), else `other`. The names are kept in the process: a call whose names are known, all but the
first after a change, looks nothing up. One that is not known reads the catalog's names from the process
cache (core/local_cache, entry `metric_labels`, dropped everywhere on any catalog change by
agents/invalidation.py), which loads them from the database only when it does not hold them. Recording is
a few microseconds: no Redis or database round trip (core/metrics.py).
"""

import time

from agents.breaker import CircuitOpen
from agents.models import AgentType, LanguageModel, Provider
from agents.providers import ProviderError
from core import local_cache
from core import metrics as m

CATALOG = "metric_labels"
STATUSES = frozenset({"400", "502", "503", "504"})
_known: tuple[frozenset, frozenset, frozenset] = (frozenset(), frozenset(), frozenset())


def catalog_names() -> tuple[frozenset, frozenset, frozenset]:
    """Every provider, model and agent-type name of the catalog."""
    return (
        frozenset(Provider.objects.values_list("name", flat=True)),
        frozenset(LanguageModel.objects.values_list("name", flat=True)),
        frozenset(AgentType.objects.values_list("slug", flat=True)),
    )


async def labels(call) -> tuple[str, str, str]:
    """(provider, model, agent type) of a call: each its catalog name, or `other`."""
    global _known
    model = call.agent.effective_model
    names = (model.provider.name, model.name, call.agent.agent_type.slug)
    known = _known
    if not (names[0] in known[0] and names[1] in known[1] and names[2] in known[2]):
        known = _known = await local_cache.aget(CATALOG, "all", load=catalog_names)
    return tuple(m.bounded(name, among) for name, among in zip(names, known, strict=True))


def error_type(error: ProviderError) -> str:
    """A failure in a few words (the error_type label), from what the caller is answered."""
    if isinstance(error, CircuitOpen):
        return "circuit_open"
    if error.status == 504:
        return "timeout"
    if error.status == 400:
        return "invalid_request"
    if error.status == 503:
        return "unreachable" if error.provider_fault else "rate_limited"
    return "bad_answer"


async def run_closed(call, run, *, charged: bool) -> None:
    """A run was recorded: counted by status, cache outcome and agent type; a charged one's tokens and cost."""
    provider, model, agent_type = await labels(call)
    m.RUNS.of(run.status, run.cache, agent_type).inc()
    if charged:
        m.TOKEN_USAGE.of(m.OPERATION, provider, model, "input").observe(run.input_tokens)
        m.TOKEN_USAGE.of(m.OPERATION, provider, model, "output").observe(run.output_tokens)
        if run.cost:
            m.COST.of(provider, model).inc(float(run.cost))


async def provider_finished(call, error: ProviderError | None = None) -> None:
    """A provider call ended, its answer whole or failed (one refused by the breaker was never made: it has no
    duration, and counts as an error)."""
    provider, model, _ = await labels(call)
    kind = error_type(error) if error is not None else ""
    if call.provider_started:
        seconds = time.perf_counter() - call.provider_started
        call.provider_started = 0.0
        m.OPERATION_DURATION.of(m.OPERATION, provider, model, kind).observe(seconds)
    if error is not None:
        m.PROVIDER_ERRORS.of(provider, m.bounded(str(error.status), STATUSES), kind).inc()


async def first_chunk(call) -> None:
    if call.provider_started:
        provider, model, _ = await labels(call)
        m.TIME_TO_FIRST_TOKEN.of(m.OPERATION, provider, model).observe(time.perf_counter() - call.provider_started)
