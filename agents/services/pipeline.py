"""The steps of the invocation pipeline, each a small named function over one `Call` (async throughout).

    guard the input (the content policy, agents.services.guarding) -> memory retrieval (memories are part
    of the cache key) -> quota admission, cache lookup and the breaker's state (one Redis round trip) -> [a
    hit is served] -> single flight and the breaker -> provider call -> guard the output -> close: settle
    the quota, store the answer, free the lock, count the outcome, record the run (one Redis round trip,
    agents.services.closing)

`agents.services.invocation` and `agents.services.streaming` run them for each entry. What a call holds (its
quota reservation and its single-flight lock) is given back by `closing.held()` on any exit the closing step
did not make: an error, or the client going away (the call is cancelled). What every request reads (the key, the agent, its shares,
the policies, the cache's versions) comes from the process's cache (core.local_cache): a hit touches no
database row and makes two Redis round trips.
"""

import logging
import math
import time
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError

from accounts.selectors import preferences_get
from agents import breaker, conversation, providers, telemetry
from agents import cache as response_cache
from agents.models import Agent, AgentRun
from agents.providers import Completion, ProviderError
from agents.services import external_guards, guarding
from agents.services.guarding import INPUT, OUTPUT, Found, GuardSpec
from core import aredis, local_cache
from core.async_db import database_sync_to_async
from memory.services import memory_recall
from quotas.limiter import ADMIT_SCRIPT, admit_call, admit_result
from quotas.services.admission import (
    QuotaExceeded,
    RequestTooLarge,
    active_policies_async,
    admission_concluded,
    admit_without_redis,
    record_refusal,
    reservation_plan,
)

logger = logging.getLogger("switchboard.agents")
Cache = AgentRun.Cache


@dataclass
class InvokeResult:
    run: AgentRun
    text: str
    cache: str
    cache_key: str | None = None
    headers: dict = field(default_factory=dict)  # RateLimit headers of the tightest limit
    tool_calls: list[dict] = field(default_factory=list)
    finish_reason: str = "stop"


@dataclass
class Call:
    """What the pipeline has learnt about one invocation so far, and what it holds."""

    user: object
    agent: Agent
    messages: list[dict]
    options: dict = field(default_factory=dict)  # tools, response format...: agents.conversation.OPTIONS
    temperature: float | None = None  # the request's, else the agent's
    requested_max_tokens: int | None = None
    metadata: dict = field(default_factory=dict)  # kept with the run
    api_key: object = None
    idempotency_key: str = ""
    client_ip: str | None = None
    started: float = field(default_factory=time.perf_counter)
    run_id: uuid.UUID = field(default_factory=uuid.uuid4)
    prompt: list[dict] = field(default_factory=list)
    memories: list[str] = field(default_factory=list)
    key: str | None = None
    outcome: str = Cache.BYPASS
    stale: response_cache.Entry | None = None
    lock_token: str | None = None
    max_tokens: int = 0
    reservation: object = None
    ratelimit_headers: dict = field(default_factory=dict)
    provider_answered: bool = False  # the breaker hears of a success in the closing round trip
    breaker_seen: tuple[int, int] | None = None  # its state, read in the first round trip
    provider_started: float = 0.0  # when the provider was asked (agents.metrics)
    closed: bool = False
    guard: GuardSpec = field(default_factory=lambda: guarding.EMPTY)  # the content policy (read by the input step)
    found: Found = field(default_factory=Found)  # its verdicts so far, recorded with the run

    @property
    def temperature_used(self) -> float:
        return self.agent.effective_temperature if self.temperature is None else self.temperature


# --- the input -----------------------------------------------------------------------------------------


async def guard_input(call: Call) -> None:
    """Input step: the conversation validated (agents.conversation), then the content policy over every text
    part, tool result and tool-call argument: `call.messages` becomes the redacted conversation (what the
    provider gets, the cache key is made of and the run records), before anything else sees it. Raises
    ContentBlocked (the refused run still records the redacted text) or GuardUnavailable."""
    call.messages = conversation.clean_messages(call.messages)
    spec = call.guard = await guarding.policy_for(call.agent.agent_type_id)
    if spec.idle:
        return
    call.messages, found = guarding.guard_messages(spec, call.messages)
    call.found.extend(found)
    call.found.raise_if_blocked(INPUT)
    if spec.external(INPUT):
        slots = guarding.message_texts(call.messages)
        texts = [(where, place, guarding.read_slot(call.messages, kind, at)) for where, place, kind, at in slots]
        checked = await _external(call, INPUT, texts)
        messages = list(call.messages)
        for (_, _, kind, at), (_, _, before), after in zip(slots, texts, checked, strict=True):
            if after != before:
                guarding.write_slot(messages, kind, at, after)
        call.messages = messages
        call.found.raise_if_blocked(INPUT)


async def guard_output(call: Call, completion: Completion) -> Completion:
    """The content policy over an answer (its text and its tool calls' arguments): the answer as it may be
    sent, cached and recorded. Raises ContentBlocked or GuardUnavailable."""
    spec = call.guard
    if spec.idle:
        return completion
    completion, found = guarding.guard_completion(spec, completion)
    call.found.extend(found)
    call.found.raise_if_blocked(OUTPUT)
    if spec.external(OUTPUT):
        texts = guarding.completion_texts(completion)
        completion = guarding.with_completion_texts(completion, await _external(call, OUTPUT, texts))
        call.found.raise_if_blocked(OUTPUT)
    return completion


async def _external(call: Call, direction: str, texts: list[tuple[str, str, str]]) -> list[str]:
    with telemetry.step(f"external_guards_{direction}"):
        return await external_guards.check(
            call.guard,
            direction,
            texts,
            call.found,
            agent_type=call.agent.agent_type.slug,
            run=str(call.run_id),
        )


def estimate_tokens(texts: list[str]) -> int:
    """A likely count of input tokens (characters / TOKEN_ESTIMATE_CHARS_PER_TOKEN, plus overhead): for the
    context-window check, where overestimating would refuse prompts that fit."""
    characters = sum(len(text) for text in texts)
    return math.ceil(characters / settings.TOKEN_ESTIMATE_CHARS_PER_TOKEN) + 4 * len(texts) + 8


def token_upper_bound(texts: list[str]) -> int:
    """Input tokens can never exceed this (byte-level tokenizers make at most one token per UTF-8 byte):
    what a budget reserves, so no text, CJK or emoji included, can spend past a limit."""
    return sum(len(text.encode()) for text in texts) + 4 * len(texts) + 8


# --- memory and the prompt ------------------------------------------------------------------------------


async def retrieve_memories(call: Call) -> list[str]:
    """Memory step: for an agent that uses memory (and a user who allows it), the memories nearest to the
    last message, of this agent or of none: the caller's and those of namespaces shared with them for use."""
    if not call.agent.use_memory:
        return []
    preferences = await local_cache.aget("preferences", call.user.pk, load=lambda: preferences_get(user=call.user))
    if not preferences.memory_enabled:
        return []
    hits, _ = await database_sync_to_async(memory_recall)(
        user=call.user,
        query=conversation.last_user_text(call.messages),
        k=settings.MEMORY_PROMPT_K,
        for_agent=call.agent.pk,
        shared="use",
    )
    return [hit.memory.content for hit in hits]


def build_prompt(agent: Agent, memories: list[str], messages: list[dict]) -> list[dict]:
    system = agent.system_prompt
    if memories:
        system += "\n\nWhat you remember:\n" + "\n".join(f"- {memory}" for memory in memories)
    return ([{"role": "system", "content": system}] if system else []) + messages


# --- quota admission and cache lookup: one round trip ---------------------------------------------------


def plan_quota(call: Call, policies):
    """What the request reserves: checked for size first. Refused before any call: a model without a
    price, a prompt the model cannot hold, a request bigger than a whole limit. `max_tokens` is clamped to
    what the model's window leaves."""
    model = call.agent.effective_model
    if model.input_price_per_mtok is None or model.output_price_per_mtok is None:
        raise ValidationError({"model": f"The model {model.name!r} has no price yet; an operator must set one."})
    texts = conversation.counted_texts(call.prompt, call.options)
    images = conversation.image_count(call.prompt)
    if images and not model.accepts_images:
        raise ValidationError({"messages": f"The model {model.name!r} does not take images."})
    estimate = estimate_tokens(texts) + images * settings.TOKENS_PER_IMAGE
    if estimate >= model.context_window:
        raise ValidationError(
            {
                "messages": f"The conversation (about {estimate} tokens) does not fit {model.name!r} ({model.context_window})."
            }
        )
    call.max_tokens = min(call.requested_max_tokens or call.agent.effective_max_tokens, model.context_window - estimate)
    agent_type = call.agent.agent_type
    worst_input = token_upper_bound(texts) + images * settings.TOKENS_PER_IMAGE
    try:
        return reservation_plan(
            user=call.user,
            api_key=call.api_key,
            agent_type=agent_type.slug,
            model=model.name,
            tokens=worst_input + call.max_tokens,
            cost=model.cost(worst_input, call.max_tokens),
            type_limits={
                "requests_per_minute": agent_type.requests_per_minute,
                "tokens_per_day": agent_type.tokens_per_day,
            },
            policies=policies,
        )
    except RequestTooLarge as error:
        raise ValidationError({"max_tokens": str(error)}) from error


async def cache_key(call: Call, bypass_cache: bool) -> str | None:
    if bypass_cache or call.agent.agent_type.cache_ttl_seconds == 0:
        return None
    model = call.agent.effective_model
    try:
        return await response_cache.entry_key(
            agent=call.agent,
            user=call.user,
            model_name=f"{model.name}:{model.provider_id}:{model.provider_model}",
            messages=call.prompt,
            options=call.options,
            temperature=call.temperature_used,
            max_tokens=call.max_tokens,
            memories=call.memories,
        )
    except Exception as error:  # Redis is down: go to the provider
        logger.warning("response cache unavailable (%s); calling the provider", error.__class__.__name__)
        return None


async def admit_and_look_up(call: Call, bypass_cache: bool) -> response_cache.Entry | None:
    """Quota step and cache lookup in one round trip: the request and its worst case counted against every
    limit (all or nothing, QuotaExceeded / QuotaUnavailable), the cached answer read, and the provider's
    breaker looked at (for a miss's provider call). Returns a fresh entry to serve, if there is one."""
    if not call.user.is_superuser and "_role" not in call.user.__dict__:  # which policies apply: read in a thread
        await database_sync_to_async(getattr)(call.user, "role")
    reservation = plan_quota(call, await active_policies_async())
    call.key = await cache_key(call, bypass_cache)
    commands = aredis.client().pipeline(transaction=False)
    breaker.look(commands, call.agent.effective_model.provider.name)
    if call.key:
        commands.get(response_cache.entry_name(call.key))
    if reservation.counters:
        keys, args = admit_call(call.user.pk, reservation.counters, reservation.hold, reservation.deadline)
        commands.eval(ADMIT_SCRIPT, len(keys), *keys, *args)
    results, failure = None, None
    try:
        results = await commands.execute()
    except Exception as error:
        failure = error
    else:
        call.breaker_seen = (results[0], results[1])
    outcome = (None, [], "")
    if reservation.counters:
        outcome = (
            admit_without_redis(reservation, failure) if failure else admit_result(reservation.counters, results[-1])
        )
    refusal = admission_concluded(reservation, outcome)
    if refusal is not None:
        await database_sync_to_async(record_refusal)(call.user, call.api_key, refusal)
        raise QuotaExceeded(refusal)
    call.reservation, call.ratelimit_headers = reservation, reservation.headers()
    if call.key is None or failure is not None:
        if failure is not None and call.key:
            logger.warning("response cache unavailable (%s); calling the provider", failure.__class__.__name__)
        call.key, call.outcome = None, Cache.BYPASS
        return None
    entry = response_cache.decode(results[2])
    if entry is not None and entry.fresh:
        call.outcome = Cache.HIT
        return entry
    call.stale, call.outcome = entry, Cache.MISS
    return None


def _lock_seconds(call: Call) -> float:
    """How long one provider call may take, SDK retries included: the single-flight lock and wait."""
    provider = call.agent.effective_model.provider
    return provider.timeout_seconds * (provider.max_retries + 1) + 10


async def take_the_lead(call: Call) -> response_cache.Entry | None:
    """Single flight: become the one request asking the provider for this answer, or wait for the one that
    is (then its answer is a hit). An answer stored since the lookup is a hit too."""
    if call.outcome != Cache.MISS:
        return None
    seconds = _lock_seconds(call)
    try:
        call.lock_token, entry = await response_cache.acquire(call.key, seconds)
        if entry is None or not entry.fresh:
            if call.lock_token:
                return None
            entry = await response_cache.wait_for(call.key, seconds)
            if entry is None:
                call.lock_token, entry = await response_cache.acquire(call.key, seconds)
        if entry is not None and entry.fresh:
            call.outcome = Cache.HIT  # a lock taken meanwhile is released when the call closes
            return entry
    except Exception as error:
        logger.warning("response cache unavailable (%s); calling the provider", error.__class__.__name__)
        call.key, call.outcome = None, Cache.BYPASS
    return None


# --- the provider ---------------------------------------------------------------------------------------


async def provider_call(call: Call) -> Completion:
    model = call.agent.effective_model
    await breaker.check(model.provider.name, call.breaker_seen)
    call.provider_started = time.perf_counter()
    with telemetry.chat(call) as span:
        try:
            completion = await providers.complete(
                model=model,
                messages=call.prompt,
                temperature=call.temperature_used,
                max_tokens=call.max_tokens,
                idempotency_key=call.idempotency_key,
                options=call.options,
            )
        except ProviderError as error:
            telemetry.failed(span, error)
            if error.provider_fault:
                await breaker.record_failure(model.provider.name)
            raise
        telemetry.answered(span, completion, call)
    call.provider_answered = True
    return completion
