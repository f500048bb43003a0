"""The invocation pipeline's entries: every way in (API, browser, task, workflow step) calls one of them.

    await agent_invoke(user=..., agent=..., messages=[...])         -> InvokeResult
    await agent_invoke_stream(user=..., agent=..., messages=[...])  -> InvokeStream (agents.services.streaming)
    agent_invoke_async(user=..., agent=..., messages=[...])          -> (task record, created): a tracked task

Each also takes what a request may set beside its messages (`REQUEST_FIELDS`: the provider options of
agents.conversation, temperature, max_tokens, metadata).

The first two are coroutines: async views await them, sync code runs them with asgiref's async_to_sync
(or core.async_runner in workers). Authorization (role, scope, owner or share) is done by the caller
through `agents.selectors`. The steps are in `agents.services.pipeline`.
"""

import logging

from django.db import transaction

from agents import cache as response_cache
from agents import metrics, telemetry
from agents.conversation import clean_messages
from agents.models import Agent, AgentRun
from agents.providers import Completion, ProviderError
from agents.selectors import agent_for_pipeline
from agents.services import guarding
from agents.services.closing import close, held, recorded_run
from agents.services.guarding import GuardUnavailable
from agents.services.pipeline import (
    Call,
    InvokeResult,
    admit_and_look_up,
    build_prompt,
    guard_input,
    guard_output,
    provider_call,
    retrieve_memories,
    take_the_lead,
)
from core.exceptions import Refused
from tasks.services.records import task_start

logger = logging.getLogger("switchboard.agents")

# What a request may set beside its messages, as keyword arguments of the entries (None: the agent's).
REQUEST_FIELDS = ("options", "temperature", "max_tokens", "metadata")


def new_call(*, user, agent: Agent, messages, options=None, temperature=None, max_tokens=None, metadata=None, **rest):
    return Call(
        user=user,
        agent=agent,
        messages=messages,
        options=options or {},
        temperature=temperature,
        requested_max_tokens=max_tokens,
        metadata=metadata or {},
        **rest,
    )


async def prepare(call: Call, bypass_cache: bool) -> response_cache.Entry | None:
    """Everything before the provider call; returns a fresh cache entry to serve, if there is one."""
    try:
        with telemetry.step("guard"):
            await guard_input(call)
    except (Refused, GuardUnavailable) as refusal:
        refused = isinstance(refusal, Refused)
        await close(call, status=AgentRun.Status.REFUSED if refused else AgentRun.Status.FAILED, error=str(refusal))
        raise
    if call.agent.use_memory:
        with telemetry.step("memory"):
            call.memories = await retrieve_memories(call)
    call.prompt = build_prompt(call.agent, call.memories, call.messages)
    with telemetry.step("quota_and_cache"):
        entry = await admit_and_look_up(call, bypass_cache)
    if entry is not None or call.outcome != AgentRun.Cache.MISS:
        return entry
    with telemetry.step("single_flight"):
        return await take_the_lead(call)


async def serve_from_cache(call: Call, entry: response_cache.Entry, *, streamed: bool = False) -> InvokeResult:
    """A hit costs a request and no tokens; the policy may have changed since the answer was cached."""
    completion = Completion(entry.text, entry.input_tokens, entry.output_tokens, entry.tool_calls, entry.finish_reason)
    try:
        completion = await guard_output(call, completion)
    except (Refused, GuardUnavailable) as refusal:
        refused = isinstance(refusal, Refused)
        status = AgentRun.Status.REFUSED if refused else AgentRun.Status.FAILED
        await close(call, status=status, error=str(refusal), completion=refused_answer(completion))
        raise
    run = await close(call, status=AgentRun.Status.SUCCEEDED, completion=completion, streamed=streamed)
    return _result(call, run, completion)


def refused_answer(completion: Completion) -> Completion:
    """An answer the guards refused, as its run records it: its usage, not its text or tool calls."""
    return Completion("", completion.input_tokens, completion.output_tokens, [], completion.finish_reason)


def _result(call: Call, run: AgentRun, completion: Completion) -> InvokeResult:
    return InvokeResult(
        run=run,
        text=completion.text,
        cache=call.outcome,
        cache_key=call.key,
        headers=call.ratelimit_headers,
        tool_calls=completion.tool_calls,
        finish_reason=completion.finish_reason,
    )


async def finish(call: Call, completion: Completion, *, streamed: bool = False, guarded: bool = False) -> InvokeResult:
    """Output guard (unless the stream guarded the answer as it went), then close: the provider worked, so
    its usage is charged whatever the guard says. What is stored and cached is the guarded answer."""
    await metrics.provider_finished(call)
    if not guarded:
        try:
            completion = await guard_output(call, completion)
        except (Refused, GuardUnavailable) as refusal:
            refused = isinstance(refusal, Refused)
            withheld = refused_answer(completion)  # charged in full, recorded without what was refused
            await close(
                call,
                status=AgentRun.Status.REFUSED if refused else AgentRun.Status.FAILED,
                error=str(refusal),
                completion=withheld,
                charge=withheld,
                streamed=streamed,
            )
            raise
    run = await close(
        call, status=AgentRun.Status.SUCCEEDED, completion=completion, charge=completion, streamed=streamed, store=True
    )
    return _result(call, run, completion)


async def on_provider_error(
    call: Call, error: ProviderError, *, streamed: bool = False, allow_stale: bool = True, partial=None
) -> InvokeResult:
    """Serve a stale answer within the staleness window if there is one; else record the failure and raise."""
    await metrics.provider_finished(call, error)
    if call.stale is not None and error.status >= 500 and allow_stale:
        call.outcome = AgentRun.Cache.STALE
        return await serve_from_cache(call, call.stale, streamed=streamed)
    await close(
        call, status=AgentRun.Status.FAILED, error=str(error), completion=partial, charge=partial, streamed=streamed
    )
    raise error


# --- the entries ----------------------------------------------------------------------------------------


async def agent_invoke(
    *,
    user,
    agent: Agent,
    messages,
    api_key=None,
    bypass_cache: bool = False,
    idempotency_key: str = "",
    first_attempt: bool = False,
    client_ip: str | None = None,
    **request,
) -> InvokeResult:
    """Invoke an agent and wait for its answer. Raises ValidationError, Refused, a quota refusal or
    ProviderError. `first_attempt`: the caller knows nothing ran under the idempotency key yet (a task's
    first delivery), so no recorded run is looked for."""
    prior = None if first_attempt else await recorded_run(user, idempotency_key)
    if prior is not None:  # a retried request: the run was recorded (and charged) already
        return InvokeResult(
            run=prior,
            text=prior.output,
            cache=prior.cache,
            tool_calls=prior.tool_calls,
            finish_reason=prior.finish_reason or "stop",
        )
    call = new_call(
        user=user,
        agent=await agent_for_pipeline(agent),
        messages=messages,
        api_key=api_key,
        idempotency_key=idempotency_key,
        client_ip=client_ip,
        **request,
    )
    async with held(call):
        with telemetry.invoke_agent(call):
            entry = await prepare(call, bypass_cache)
            if entry is not None:
                return await serve_from_cache(call, entry)
            try:
                completion = await provider_call(call)
            except ProviderError as error:
                return await on_provider_error(call, error)
            return await finish(call, completion)


@transaction.atomic
def agent_invoke_async(
    *, user, agent: Agent, messages, api_key=None, bypass_cache=False, idempotency_key="", **request
):
    """Start an invocation as a tracked task (answered 202); the run's idempotency key is the task id. The
    built-in guards run here already: a blocked input is a 422 now, and the task keeps the redacted
    conversation (its external guards run with the call)."""
    spec = guarding.policy_for_sync(agent.agent_type_id)
    messages, found = guarding.guard_messages(spec, clean_messages(messages))
    found.raise_if_blocked(guarding.INPUT)
    return task_start(
        kind="agents.invoke",
        owner=user,
        input={
            "agent_id": agent.pk,
            "user_id": user.pk,
            "messages": messages,
            "api_key_id": getattr(api_key, "pk", None),
            "bypass_cache": bypass_cache,
            **{name: value for name, value in request.items() if value},
        },
        idempotency_key=idempotency_key,
    )
