"""The steps of the invocation pipeline, each a small named function over one `Call`.

guard the input -> memory retrieval (before the cache lookup: memories are part of the key) -> quota
(reserves the request and the worst case of tokens and cost of the whole prompt) -> cache lookup (hit:
record and return) -> provider call (breaker, SDK retries) -> guard the output -> settle the quota ->
store in cache -> record the run. `agents.services.invocation` runs them for each entry.
"""

import logging
import math
import re
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.selectors import preferences_get
from agents import breaker, providers
from agents import cache as response_cache
from agents.models import Agent, AgentRun, AgentType
from agents.providers import Completion, ProviderError
from core.correlation import current_request_id
from core.exceptions import Refused
from memory.services import memory_recall
from quotas.services import RequestTooLarge, quota_admit, quota_release, quota_settle, usage_record

logger = logging.getLogger("switchboard.agents")
Cache = AgentRun.Cache
ROLES_ALLOWED = ("system", "user", "assistant")


@dataclass
class InvokeResult:
    run: AgentRun
    text: str
    cache: str
    cache_key: str | None = None
    headers: dict = field(default_factory=dict)  # RateLimit headers of the tightest limit


@dataclass
class Call:
    """What the pipeline has learnt about one invocation so far."""

    user: object
    agent: Agent
    messages: list[dict]
    api_key: object = None
    idempotency_key: str = ""
    started: float = field(default_factory=time.perf_counter)
    prompt: list[dict] = field(default_factory=list)
    key: str | None = None
    outcome: str = Cache.BYPASS
    stale: response_cache.Entry | None = None
    lock_token: str | None = None
    max_tokens: int = 0
    reservation: object = None
    ratelimit_headers: dict = field(default_factory=dict)


def guard_input(messages) -> list[dict]:
    """Validate the conversation and apply the content guard; returns it normalised."""
    if not isinstance(messages, list) or not messages:
        raise ValidationError({"messages": "Send a non-empty list of messages."})
    if len(messages) > settings.AGENT_MAX_MESSAGES:
        raise ValidationError({"messages": f"At most {settings.AGENT_MAX_MESSAGES} messages."})
    clean, total = [], 0
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES_ALLOWED:
            raise ValidationError({"messages": f"Each message needs a role ({', '.join(ROLES_ALLOWED)}) and content."})
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            raise ValidationError({"messages": "Each message needs non-empty text content."})
        total += len(content)
        clean.append({"role": message["role"], "content": content})
    if total > settings.AGENT_MAX_INPUT_CHARS:
        raise ValidationError(
            {"messages": f"The conversation is longer than {settings.AGENT_MAX_INPUT_CHARS} characters."}
        )
    if clean[-1]["role"] != "user":
        raise ValidationError({"messages": "The last message must be the user's."})
    content_guard(" ".join(m["content"] for m in clean), "input")
    return clean


def content_guard(text: str, what: str) -> None:
    for pattern in settings.CONTENT_BLOCKLIST:
        if re.search(pattern, text, flags=re.IGNORECASE):
            raise Refused(f"The {what} was refused by the content policy.")


def estimate_tokens(texts: list[str]) -> int:
    """A likely count of input tokens (characters / TOKEN_ESTIMATE_CHARS_PER_TOKEN, plus overhead): for the
    context-window check, where overestimating would refuse prompts that fit."""
    characters = sum(len(text) for text in texts)
    return math.ceil(characters / settings.TOKEN_ESTIMATE_CHARS_PER_TOKEN) + 4 * len(texts) + 8


def token_upper_bound(texts: list[str]) -> int:
    """Input tokens can never exceed this (byte-level tokenizers make at most one token per UTF-8 byte):
    what a budget reserves, so no text, CJK or emoji included, can spend past a limit."""
    return sum(len(text.encode()) for text in texts) + 4 * len(texts) + 8


def admit_quota(call: Call) -> None:
    """Quota step: check the size, then count the request and reserve its worst case against every limit.

    Refused before any provider call: a model without a price, a prompt the model cannot hold, a request
    bigger than a whole limit. `max_tokens` is clamped to what the model's window leaves. Raises
    QuotaExceeded (429) or QuotaUnavailable (503).
    """
    model = call.agent.effective_model
    if model.input_price_per_mtok is None or model.output_price_per_mtok is None:
        raise ValidationError({"model": f"The model {model.name!r} has no price yet; an operator must set one."})
    texts = [m["content"] for m in call.prompt]
    estimate = estimate_tokens(texts)
    if estimate >= model.context_window:
        raise ValidationError(
            {
                "messages": f"The conversation (about {estimate} tokens) does not fit {model.name!r} ({model.context_window})."
            }
        )
    call.max_tokens = min(call.agent.effective_max_tokens, model.context_window - estimate)
    agent_type = call.agent.agent_type
    worst_input = token_upper_bound(texts)
    try:
        call.reservation = quota_admit(
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
        )
    except RequestTooLarge as error:
        raise ValidationError({"max_tokens": str(error)}) from error
    call.ratelimit_headers = call.reservation.headers()


def settle_quota(call: Call, completion: Completion | None) -> None:
    """Quota step after the call: the real usage replaces the reservation; no completion (a hit, a failure)
    gives everything back."""
    if call.reservation is None:
        return
    if completion is None:
        quota_release(reservation=call.reservation)
    else:
        cost = call.agent.effective_model.cost(completion.input_tokens, completion.output_tokens) or 0
        quota_settle(reservation=call.reservation, tokens=completion.input_tokens + completion.output_tokens, cost=cost)
    call.reservation = None


def retrieve_memories(call: Call) -> list[str]:
    """Memory step: for an agent that uses memory (and a user who allows it), the memories nearest to the
    last message, of this agent or of none: the caller's and those of namespaces shared with them for use."""
    if not call.agent.use_memory or not preferences_get(user=call.user).memory_enabled:
        return []
    hits, _ = memory_recall(
        user=call.user,
        query=call.messages[-1]["content"],
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


def _lock_seconds(call: Call) -> float:
    """How long one provider call may take, SDK retries included: the single-flight lock and wait."""
    provider = call.agent.effective_model.provider
    return provider.timeout_seconds * (provider.max_retries + 1) + 10


def prepare(call: Call, bypass_cache: bool) -> response_cache.Entry | None:
    """Everything before the provider call; returns a fresh cache entry to serve, if there is one."""
    try:
        call.messages = guard_input(call.messages)
    except Refused as refusal:
        record_run(call, status=AgentRun.Status.REFUSED, error=str(refusal))
        raise
    memories = retrieve_memories(call)
    call.prompt = build_prompt(call.agent, memories, call.messages)
    admit_quota(call)  # after the prompt is whole: its size is what the budget reserves
    agent_type: AgentType = call.agent.agent_type
    if bypass_cache or agent_type.cache_ttl_seconds == 0:
        call.outcome = Cache.BYPASS
        return None
    try:
        model = call.agent.effective_model
        call.key = response_cache.entry_key(
            agent=call.agent,
            user=call.user,
            model_name=f"{model.name}:{model.provider_id}:{model.provider_model}",
            messages=call.prompt,
            temperature=call.agent.effective_temperature,
            max_tokens=call.max_tokens,
            memories=memories,
        )
        entry = response_cache.lookup(call.key)
        if entry is not None and entry.fresh:
            call.outcome = Cache.HIT
            return entry
        call.stale = entry
        call.outcome = Cache.MISS
        call.lock_token = response_cache.acquire(call.key, _lock_seconds(call))
        if not call.lock_token:  # another request is asking the provider the same thing: wait for its answer
            entry = response_cache.wait_for(call.key, _lock_seconds(call))
            if entry is not None:
                call.outcome = Cache.HIT
                return entry
            call.lock_token = response_cache.acquire(call.key, _lock_seconds(call))
    except Exception as error:  # Redis is down or slow: go to the provider
        logger.warning("response cache unavailable (%s); calling the provider", error.__class__.__name__)
        call.key, call.outcome = None, Cache.BYPASS
    return None


def provider_call(call: Call) -> Completion:
    model = call.agent.effective_model
    breaker.check(model.provider.name)
    try:
        completion = providers.complete(
            model=model,
            messages=call.prompt,
            temperature=call.agent.effective_temperature,
            max_tokens=call.max_tokens,
            idempotency_key=call.idempotency_key,
        )
    except ProviderError as error:
        if error.provider_fault:
            breaker.record_failure(model.provider.name)
        raise
    breaker.record_success(model.provider.name)
    return completion


def finish(call: Call, completion: Completion, *, streamed: bool = False) -> InvokeResult:
    """Output guard, settle, store, record."""
    settle_quota(call, completion)  # the provider worked: its usage is charged whatever the guard says
    try:
        content_guard(completion.text, "answer")
    except Refused as refusal:
        release_lock(call)
        record_run(call, status=AgentRun.Status.REFUSED, error=str(refusal), completion=completion, streamed=streamed)
        raise
    if call.key and call.outcome == Cache.MISS:
        try:
            response_cache.store(
                call.key,
                text=completion.text,
                input_tokens=completion.input_tokens,
                output_tokens=completion.output_tokens,
                ttl=call.agent.agent_type.cache_ttl_seconds,
            )
        except Exception as error:
            logger.warning("response cache unavailable (%s); answer not cached", error.__class__.__name__)
    release_lock(call)
    run = record_run(call, status=AgentRun.Status.SUCCEEDED, completion=completion, streamed=streamed)
    return InvokeResult(
        run=run, text=completion.text, cache=call.outcome, cache_key=call.key, headers=call.ratelimit_headers
    )


def release_lock(call: Call) -> None:
    if call.key and call.lock_token:
        try:
            response_cache.release(call.key, call.lock_token)
        except Exception:
            pass
        call.lock_token = None


def serve_from_cache(call: Call, entry: response_cache.Entry, *, streamed: bool = False) -> InvokeResult:
    completion = Completion(entry.text, entry.input_tokens, entry.output_tokens)
    settle_quota(call, None)  # a hit costs a request but no tokens
    try:
        content_guard(entry.text, "answer")  # the policy may have changed since the answer was cached
    except Refused as refusal:
        record_run(call, status=AgentRun.Status.REFUSED, error=str(refusal), completion=completion, charged=False)
        raise
    run = record_run(call, status=AgentRun.Status.SUCCEEDED, completion=completion, streamed=streamed, charged=False)
    return InvokeResult(
        run=run, text=entry.text, cache=call.outcome, cache_key=call.key, headers=call.ratelimit_headers
    )


def on_provider_error(
    call: Call,
    error: ProviderError,
    *,
    streamed: bool = False,
    allow_stale: bool = True,
    partial: Completion | None = None,
) -> InvokeResult:
    """Serve a stale answer within the staleness window if there is one; else record the failure and raise."""
    release_lock(call)
    settle_quota(call, partial)
    if call.stale is not None and error.status >= 500 and allow_stale:
        call.outcome = Cache.STALE
        return serve_from_cache(call, call.stale, streamed=streamed)
    record_run(call, status=AgentRun.Status.FAILED, error=str(error), streamed=streamed, completion=partial)
    raise error


def record_run(
    call: Call, *, status, completion: Completion | None = None, error: str = "", streamed=False, charged=True
) -> AgentRun:
    model = call.agent.effective_model
    input_tokens = completion.input_tokens if completion else 0
    output_tokens = completion.output_tokens if completion else 0
    cost = model.cost(input_tokens, output_tokens) if (completion and charged) else None
    fields = dict(
        agent=call.agent,
        user=call.user,
        api_key=call.api_key,
        agent_version=call.agent.version,
        model_name=model.name,
        input=call.messages,
        output=completion.text if completion and status != AgentRun.Status.REFUSED else "",
        status=status,
        error=error,
        input_tokens=input_tokens if charged else 0,
        output_tokens=output_tokens if charged else 0,
        cost=cost or 0,
        latency_ms=round((time.perf_counter() - call.started) * 1000, 2),
        cache=call.outcome,
        streamed=streamed,
        idempotency_key=call.idempotency_key,
        request_id=current_request_id() or "",
    )
    try:
        with transaction.atomic():
            run = AgentRun.objects.create(**fields)
    except IntegrityError:  # the same task, delivered twice at once, finished first elsewhere
        return AgentRun.objects.get(user=call.user, idempotency_key=call.idempotency_key, status=status)
    usage_record(
        run_id=run.pk,
        user=call.user,
        api_key=call.api_key,
        agent_type=call.agent.agent_type.slug,
        model=model.name,
        input_tokens=run.input_tokens,
        output_tokens=run.output_tokens,
        cost=run.cost,
        cached=call.outcome in (Cache.HIT, Cache.STALE),
    )
    response_cache.count(call.agent.agent_type.slug, call.outcome)
    return run


def recorded_run(user, idempotency_key: str) -> AgentRun | None:
    if not idempotency_key:
        return None
    return AgentRun.objects.filter(user=user, idempotency_key=idempotency_key, status=AgentRun.Status.SUCCEEDED).first()
