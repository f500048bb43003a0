"""The pipeline's closing step: settle the quota, store the answer, free the lock, count the outcome and record
the run, in one Redis round trip; and what gives a call's holdings back on any other exit (`held`).

Runs go to a Redis stream that `manage.py record_runs` writes to PostgreSQL in batches (agents.recording);
with its backlog full, or Redis down, the call writes its own run.
"""

import logging
import time
from contextlib import asynccontextmanager

from django.conf import settings
from django.utils import timezone

from agents import breaker, metrics, recording, telemetry
from agents import cache as response_cache
from agents.models import AgentRun
from agents.providers import Completion
from agents.services.pipeline import Call
from core import aredis
from core.async_db import database_sync_to_async
from core.correlation import current_request_id
from quotas.limiter import ADJUST_SCRIPT, adjust_call, local_limiter
from quotas.services.admission import settlement_deltas

logger = logging.getLogger("switchboard.agents")
Cache = AgentRun.Cache

# Append a run to the stream unless its backlog is full (then the caller writes it): one command.
RECORD_SCRIPT = """
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('XADD', KEYS[1], '*', 'data', ARGV[1])
return 1
"""


async def close(
    call: Call,
    *,
    status: str,
    completion: Completion | None = None,
    charge: Completion | None = None,
    error: str = "",
    streamed: bool = False,
    store: bool = False,
    record: bool = True,
) -> AgentRun:
    """Settle the quota (`charge`'s usage; none gives everything back), store the answer (`store`), free
    the lock, count the cache outcome and record the run: one Redis round trip. The run's tokens and cost
    are `completion`'s when charged, its text when it succeeded."""
    with telemetry.step("record"):
        return await _close(
            call,
            status=status,
            completion=completion,
            charge=charge,
            error=error,
            streamed=streamed,
            store=store,
            record=record,
        )


async def _close(call: Call, *, status, completion, charge, error, streamed, store, record) -> AgentRun:
    call.closed = True
    run, usage = _run_of(call, status, completion, error, streamed, charged=charge is not None)
    commands = aredis.client().pipeline(transaction=False)
    _settle(call, charge, commands)
    if store and call.key and call.outcome == Cache.MISS and completion is not None and _cacheable(call, completion):
        value, seconds = response_cache.encode(completion, ttl=call.agent.agent_type.cache_ttl_seconds)
        commands.set(response_cache.entry_name(call.key), value, ex=seconds)
    if call.lock_token:
        commands.eval(response_cache.RELEASE_SCRIPT, 1, response_cache.lock_name(call.key), call.lock_token)
        call.lock_token = None
    if call.provider_answered:
        commands.delete(*breaker.success_keys(call.agent.effective_model.provider.name))
    entry, in_stream = recording.encode(run, usage, call.client_ip), None
    if record:
        commands.hincrby(response_cache.stats_name(call.agent.agent_type.slug), call.outcome, 1)
        if settings.RUN_RECORDING == "stream":
            commands.eval(RECORD_SCRIPT, 1, recording.STREAM, entry, settings.RUN_STREAM_MAX_BACKLOG)
            in_stream = len(commands) - 1
        if call.idempotency_key and status == AgentRun.Status.SUCCEEDED:
            name = recording.idempotency_name(call.user.pk, call.idempotency_key)
            commands.set(name, entry, ex=recording.IDEMPOTENCY_TTL_SECONDS)
    results = None
    if len(commands):
        try:
            results = await commands.execute()
        except Exception as failure:  # Redis down: the counters keep the reservation; the run is written here
            logger.warning("closing a call without Redis (%s)", failure.__class__.__name__)
    if record and (in_stream is None or results is None or not results[in_stream]):
        await database_sync_to_async(recording.write_runs)([(run, usage, call.client_ip)])
    if record:
        await metrics.run_closed(call, run, charged=charge is not None)
    return run


def _cacheable(call: Call, completion: Completion) -> bool:
    """An answer with tool calls is kept only where the agent type says so: a tool called from a cached
    answer may act on the world again."""
    return not completion.tool_calls or call.agent.agent_type.cache_tool_calls


def _settle(call: Call, charge: Completion | None, commands) -> None:
    """The quota step after the call, into the closing pipeline (the process's own limiter aside)."""
    reservation, call.reservation = call.reservation, None
    if reservation is None:
        return
    tokens = charge.input_tokens + charge.output_tokens if charge else 0
    cost = (call.agent.effective_model.cost(charge.input_tokens, charge.output_tokens) or 0) if charge else 0
    deltas = settlement_deltas(reservation, tokens=tokens, cost=cost)
    if reservation.local:
        local_limiter.adjust(reservation.user_id, deltas, reservation.generation)
        return
    adjustment = adjust_call(reservation.user_id, deltas, reservation.generation, reservation.hold)
    if adjustment is not None:
        keys, args = adjustment
        commands.eval(ADJUST_SCRIPT, len(keys), *keys, *args)


def _run_of(call: Call, status, completion, error, streamed, charged) -> tuple[AgentRun, object]:
    model = call.agent.effective_model
    input_tokens = completion.input_tokens if completion and charged else 0
    output_tokens = completion.output_tokens if completion and charged else 0
    succeeded = status == AgentRun.Status.SUCCEEDED
    run = AgentRun(
        id=recording.run_id_for(call.user.pk, call.idempotency_key)
        if call.idempotency_key and succeeded
        else call.run_id,
        agent_id=call.agent.pk,
        user_id=call.user.pk,
        api_key_id=getattr(call.api_key, "pk", None),
        agent_version=call.agent.version,
        model_name=model.name,
        input=call.messages,
        output=completion.text if completion and status != AgentRun.Status.REFUSED else "",
        tool_calls=completion.tool_calls if completion and status != AgentRun.Status.REFUSED else [],
        finish_reason=completion.finish_reason if completion and status == AgentRun.Status.SUCCEEDED else "",
        metadata=call.metadata,
        status=status,
        error=error,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost=(model.cost(input_tokens, output_tokens) or 0) if charged and completion else 0,
        latency_ms=round((time.perf_counter() - call.started) * 1000, 2),
        cache=call.outcome,
        streamed=streamed,
        idempotency_key=call.idempotency_key,
        request_id=current_request_id() or "",
        created_at=timezone.now(),
    )
    run.guard_verdicts = call.found.seen()  # written with the run (agents.recording): never the matched text
    usage = recording.usage_of(
        run, agent_type=call.agent.agent_type.slug, cached=call.outcome in (Cache.HIT, Cache.STALE)
    )
    return run, usage


@asynccontextmanager
async def held(call: Call):
    """Whatever exit the closing step did not make (an unexpected error, the client going away: the call is
    cancelled), the reservation and the lock are given back, and a call cut off by its client is recorded."""
    try:
        yield
    except BaseException as error:
        if not call.closed and (call.reservation is not None or call.lock_token):
            gone = not isinstance(error, Exception)  # cancelled: the client went away
            await close(call, status=AgentRun.Status.FAILED, error="The client went away.", record=gone)
        raise


async def recorded_run(user, idempotency_key: str) -> AgentRun | None:
    """A run already made under this idempotency key (a retried task): from Redis, else the database."""
    if not idempotency_key:
        return None
    try:
        entry = await aredis.client().get(recording.idempotency_name(user.pk, idempotency_key))
    except Exception:
        entry = None
    if entry is not None:
        return recording.decode(entry)[0]
    return await database_sync_to_async(
        AgentRun.objects.filter(user=user, idempotency_key=idempotency_key, status=AgentRun.Status.SUCCEEDED).first
    )()
