"""Agents, and the invocation pipeline that every entry (API, browser, task, workflow step) goes through.

    agent_invoke(user=..., agent=..., messages=[...])      -> InvokeResult
    agent_invoke_stream(user=..., agent=..., messages=[...]) -> InvokeStream (chunks, then .result)

The pipeline, top to bottom: guard the input -> reuse a run already recorded under the same idempotency
key -> memory retrieval (before the cache lookup: memories are part of the key) -> quota (reserves the
request and the worst case of tokens and cost of the whole prompt) -> cache lookup (hit: record and
return) -> provider call (breaker, SDK retries) -> guard the output -> settle the quota -> store in
cache -> record the run. Authorization (role, scope, owner or share) is done
by the caller through `agents.selectors.agent_get`.
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
from memory.selectors import memory_search
from platform_site.correlation import current_request_id
from quotas.services import RequestTooLarge, quota_admit, quota_release, quota_settle, usage_record

logger = logging.getLogger("switchboard.agents")
Cache = AgentRun.Cache
ROLES_ALLOWED = ("system", "user", "assistant")


class Refused(Exception):
    """A content guard refused the input or the output (answered 422, never cached)."""


@dataclass
class InvokeResult:
    run: AgentRun
    text: str
    cache: str
    cache_key: str | None = None
    headers: dict = field(default_factory=dict)  # RateLimit headers of the tightest limit


@dataclass
class _Call:
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


# --- the catalog ---------------------------------------------------------------------------------------


def catalog_ensure_builtins(**kwargs) -> None:
    """The built-in echo provider and model and a general agent type, so the platform works without any key.

    Run after every migrate (post_migrate); creates what is missing and changes nothing else.
    """
    from decimal import Decimal

    from agents.models import LanguageModel, Provider

    provider, _ = Provider.objects.get_or_create(name="echo", defaults={"kind": Provider.Kind.ECHO})
    model, _ = LanguageModel.objects.get_or_create(
        name="echo",
        defaults={
            "provider": provider,
            "provider_model": "echo",
            "context_window": 100_000,
            "input_price_per_mtok": Decimal("0"),
            "output_price_per_mtok": Decimal("0"),
        },
    )
    AgentType.objects.get_or_create(
        slug="assistant", defaults={"description": "A general assistant.", "default_model": model}
    )


# --- agents --------------------------------------------------------------------------------------------


def agent_create(*, owner, **fields) -> Agent:
    agent = Agent(owner=owner, **fields)
    agent.full_clean()
    try:
        agent.save()
    except IntegrityError as error:
        raise ValidationError({"name": "You already have an agent with this name."}) from error
    return agent


def agent_update(*, agent: Agent, **fields) -> Agent:
    """Change an agent; a change to what shapes its answers bumps its version (old cache entries no longer match)."""
    before = [getattr(agent, name) for name in Agent.CONFIG_FIELDS]
    for name, value in fields.items():
        setattr(agent, name, value)
    agent.full_clean()
    if before != [getattr(agent, name) for name in Agent.CONFIG_FIELDS]:
        agent.version += 1
    try:
        agent.save()
    except IntegrityError as error:
        raise ValidationError({"name": "You already have an agent with this name."}) from error
    return agent


# --- the pipeline steps --------------------------------------------------------------------------------


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
    _content_guard(" ".join(m["content"] for m in clean), "input")
    return clean


def _content_guard(text: str, what: str) -> None:
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


def admit_quota(call: _Call) -> None:
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


def settle_quota(call: _Call, completion: Completion | None) -> None:
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


def retrieve_memories(call: _Call) -> list[str]:
    """Memory step: for an agent that uses memory (and a user who allows it), the memories nearest to the
    last message, of this agent or of none: the caller's and those of namespaces shared with them for use."""
    if not call.agent.use_memory or not preferences_get(user=call.user).memory_enabled:
        return []
    hits, _ = memory_search(
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


def _lock_seconds(call: _Call) -> float:
    """How long one provider call may take, SDK retries included: the single-flight lock and wait."""
    provider = call.agent.effective_model.provider
    return provider.timeout_seconds * (provider.max_retries + 1) + 10


def _prepare(call: _Call, bypass_cache: bool) -> response_cache.Entry | None:
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


def _provider_call(call: _Call) -> Completion:
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


def _finish(call: _Call, completion: Completion, *, streamed: bool = False) -> InvokeResult:
    """Output guard, settle, store, record."""
    settle_quota(call, completion)  # the provider worked: its usage is charged whatever the guard says
    try:
        _content_guard(completion.text, "answer")
    except Refused as refusal:
        _release(call)
        record_run(call, status=AgentRun.Status.REFUSED, error=str(refusal), completion=completion, streamed=streamed)
        raise
    if call.key and call.outcome == Cache.MISS:
        try:
            response_cache.store(
                call.key, text=completion.text, input_tokens=completion.input_tokens,
                output_tokens=completion.output_tokens, ttl=call.agent.agent_type.cache_ttl_seconds,
            )  # fmt: skip
        except Exception as error:
            logger.warning("response cache unavailable (%s); answer not cached", error.__class__.__name__)
    _release(call)
    run = record_run(call, status=AgentRun.Status.SUCCEEDED, completion=completion, streamed=streamed)
    return InvokeResult(
        run=run, text=completion.text, cache=call.outcome, cache_key=call.key, headers=call.ratelimit_headers
    )


def _release(call: _Call) -> None:
    if call.key and call.lock_token:
        try:
            response_cache.release(call.key, call.lock_token)
        except Exception:
            pass
        call.lock_token = None


def _served_from_cache(call: _Call, entry: response_cache.Entry, *, streamed: bool = False) -> InvokeResult:
    completion = Completion(entry.text, entry.input_tokens, entry.output_tokens)
    settle_quota(call, None)  # a hit costs a request but no tokens
    try:
        _content_guard(entry.text, "answer")  # the policy may have changed since the answer was cached
    except Refused as refusal:
        record_run(call, status=AgentRun.Status.REFUSED, error=str(refusal), completion=completion, charged=False)
        raise
    run = record_run(call, status=AgentRun.Status.SUCCEEDED, completion=completion, streamed=streamed, charged=False)
    return InvokeResult(
        run=run, text=entry.text, cache=call.outcome, cache_key=call.key, headers=call.ratelimit_headers
    )


def _on_provider_error(
    call: _Call,
    error: ProviderError,
    *,
    streamed: bool = False,
    allow_stale: bool = True,
    partial: Completion | None = None,
) -> InvokeResult:
    """Serve a stale answer within the staleness window if there is one; else record the failure and raise."""
    _release(call)
    settle_quota(call, partial)
    if call.stale is not None and error.status >= 500 and allow_stale:
        call.outcome = Cache.STALE
        return _served_from_cache(call, call.stale, streamed=streamed)
    record_run(call, status=AgentRun.Status.FAILED, error=str(error), streamed=streamed, completion=partial)
    raise error


def record_run(
    call: _Call, *, status, completion: Completion | None = None, error: str = "", streamed=False, charged=True
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
        run_id=run.pk, user=call.user, api_key=call.api_key, agent_type=call.agent.agent_type.slug,
        model=model.name, input_tokens=run.input_tokens, output_tokens=run.output_tokens, cost=run.cost,
        cached=call.outcome in (Cache.HIT, Cache.STALE),
    )  # fmt: skip
    response_cache.count(call.agent.agent_type.slug, call.outcome)
    return run


def _recorded(user, idempotency_key: str) -> AgentRun | None:
    if not idempotency_key:
        return None
    return AgentRun.objects.filter(user=user, idempotency_key=idempotency_key, status=AgentRun.Status.SUCCEEDED).first()


# --- the two entries -----------------------------------------------------------------------------------


def agent_invoke(
    *, user, agent: Agent, messages, api_key=None, bypass_cache: bool = False, idempotency_key: str = ""
) -> InvokeResult:
    """Invoke an agent and wait for its answer. Raises ValidationError, Refused or ProviderError."""
    prior = _recorded(user, idempotency_key)
    if prior is not None:  # a retried task: the run was recorded (and charged) already
        return InvokeResult(run=prior, text=prior.output, cache=prior.cache)
    call = _Call(user=user, agent=agent, messages=messages, api_key=api_key, idempotency_key=idempotency_key)
    entry = _prepare(call, bypass_cache)
    if entry is not None:
        return _served_from_cache(call, entry)
    try:
        completion = _provider_call(call)
    except ProviderError as error:
        return _on_provider_error(call, error)
    except Exception:
        _release(call)
        settle_quota(call, None)
        raise
    return _finish(call, completion)


class InvokeStream:
    """Text chunks as they come; after the last one, `result` holds the recorded run.

    A stream cut off before its end (the client went away) is recorded as failed and never cached.
    """

    def __init__(self, call: _Call, entry: response_cache.Entry | None):
        self.call = call
        self.result: InvokeResult | None = None
        self._entry = entry
        self.cache = call.outcome
        self.headers = call.ratelimit_headers
        self._started = False

    def close(self) -> None:
        """The response is closed: if the stream never started (the client left before the first byte),
        give back the reservation and the lock and record the run as cut off."""
        if self._started:
            return
        self._started = True
        _release(self.call)
        settle_quota(self.call, None)
        record_run(self.call, status=AgentRun.Status.FAILED, error="The stream was never read.", streamed=True)

    def __iter__(self):
        self._started = True  # from here on the stream settles and records itself
        call = self.call
        if self._entry is not None:  # a hit is replayed as a stream
            self.result = _served_from_cache(call, self._entry, streamed=True)
            yield from _replay(self._entry.text)
            return
        provider_name = call.agent.effective_model.provider.name
        sent: list[str] = []
        try:
            breaker.check(provider_name)
            upstream = providers.stream(
                model=call.agent.effective_model,
                messages=call.prompt,
                temperature=call.agent.effective_temperature,
                max_tokens=call.max_tokens,
            )
            for chunk in upstream:
                # The content guard sees the answer as it grows: a refused word is never sent.
                _content_guard("".join(sent) + chunk, "answer")
                sent.append(chunk)
                yield chunk
        except ProviderError as error:
            if error.provider_fault and not isinstance(error, breaker.CircuitOpen):
                breaker.record_failure(provider_name)
            # Before the first chunk a stale answer may stand in; after it, the client has part of another.
            self.result = _on_provider_error(
                call, error, streamed=True, allow_stale=not sent, partial=self._partial(sent)
            )
            yield from _replay(self.result.text)
            return
        except Refused as refusal:
            _release(call)
            settle_quota(call, self._partial(sent))
            record_run(
                call, status=AgentRun.Status.REFUSED, error=str(refusal), streamed=True, completion=self._partial(sent)
            )
            raise
        except (GeneratorExit, Exception) as error:  # the client went away, or something broke: cache nothing
            _release(call)
            settle_quota(call, self._partial(sent))
            if not isinstance(error, GeneratorExit):
                logger.exception("stream failed")
            record_run(
                call, status=AgentRun.Status.FAILED, error="The stream was cut off.", streamed=True,
                completion=self._partial(sent),
            )  # fmt: skip
            raise
        breaker.record_success(provider_name)
        self.result = _finish(call, upstream.completion, streamed=True)

    def _partial(self, sent: list[str]) -> Completion | None:
        """Usage of an answer that did not complete, estimated from the prompt and what was sent."""
        if not sent:
            return None
        text = "".join(sent)
        prompt_words = sum(len(m["content"].split()) for m in self.call.prompt)
        return Completion(text, prompt_words, len(text.split()))


def _replay(text: str):
    words = text.split(" ")
    for index, word in enumerate(words):
        yield word if index == len(words) - 1 else word + " "


def agent_invoke_stream(*, user, agent: Agent, messages, api_key=None, bypass_cache: bool = False) -> InvokeStream:
    call = _Call(user=user, agent=agent, messages=messages, api_key=api_key)
    entry = _prepare(call, bypass_cache)
    return InvokeStream(call, entry)


@transaction.atomic
def agent_invoke_async(*, user, agent: Agent, messages, api_key=None, bypass_cache=False, idempotency_key=""):
    """Start an invocation as a tracked task (answered 202); the run's idempotency key is the task id."""
    from tasks.services import task_start

    guard_input(messages)
    return task_start(
        kind="agents.invoke",
        owner=user,
        input={
            "agent_id": agent.pk,
            "user_id": user.pk,
            "messages": messages,
            "api_key_id": getattr(api_key, "pk", None),
            "bypass_cache": bypass_cache,
        },
        idempotency_key=idempotency_key,
    )


# --- cache invalidation --------------------------------------------------------------------------------


def cache_invalidate(*, scope: str, key: str = "", agent: int | None = None, agent_type: str = "") -> None:
    """One entry, an agent's, an agent type's, or every cached answer; each one Redis command."""
    from django.http import Http404

    if scope == "entry":
        response_cache.invalidate_entry(key)
    elif scope == "agent":
        if not Agent.objects.filter(pk=agent).exists():
            raise Http404("No such agent.")
        response_cache.invalidate_agent(agent)
    elif scope == "agent_type":
        type_id = AgentType.objects.filter(slug=agent_type).values_list("pk", flat=True).first()
        if type_id is None:
            raise Http404("No such agent type.")
        response_cache.invalidate_agent_type(type_id)
    else:
        response_cache.invalidate_all()
    logger.info(
        "response cache invalidated: %s", scope, extra={"scope": scope, "agent": agent, "agent_type": agent_type}
    )
