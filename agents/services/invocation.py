"""The invocation pipeline's entries: every way in (API, browser, task, workflow step) calls one of them.

    await agent_invoke(user=..., agent=..., messages=[...])         -> InvokeResult
    await agent_invoke_stream(user=..., agent=..., messages=[...])  -> InvokeStream (async chunks, then .result)
    agent_invoke_async(user=..., agent=..., messages=[...])          -> (task record, created): a tracked task

The first two are coroutines: async views await them, sync code runs them with asgiref's async_to_sync
(or core.async_runner in workers). Authorization (role, scope, owner or share) is done by the caller
through `agents.selectors`. The steps are in `agents.services.pipeline`.
"""

import asyncio
import logging

from asgiref.sync import async_to_sync
from django.db import transaction

from agents import breaker, providers
from agents import cache as response_cache
from agents.models import Agent, AgentRun
from agents.providers import Completion, ProviderError
from agents.selectors import agent_for_pipeline
from agents.services.pipeline import (
    Call,
    InvokeResult,
    admit_and_look_up,
    build_prompt,
    close,
    content_guard,
    guard_input,
    held,
    provider_call,
    recorded_run,
    retrieve_memories,
    take_the_lead,
    token_upper_bound,
)
from core.exceptions import Refused
from tasks.services.records import task_start

logger = logging.getLogger("switchboard.agents")


async def prepare(call: Call, bypass_cache: bool) -> response_cache.Entry | None:
    """Everything before the provider call; returns a fresh cache entry to serve, if there is one."""
    try:
        call.messages = guard_input(call.messages)
    except Refused as refusal:
        await close(call, status=AgentRun.Status.REFUSED, error=str(refusal))
        raise
    call.memories = await retrieve_memories(call)
    call.prompt = build_prompt(call.agent, call.memories, call.messages)
    return await admit_and_look_up(call, bypass_cache) or await take_the_lead(call)


async def serve_from_cache(call: Call, entry: response_cache.Entry, *, streamed: bool = False) -> InvokeResult:
    """A hit costs a request and no tokens; the policy may have changed since the answer was cached."""
    completion = Completion(entry.text, entry.input_tokens, entry.output_tokens)
    try:
        content_guard(entry.text, "answer")
    except Refused as refusal:
        await close(call, status=AgentRun.Status.REFUSED, error=str(refusal), completion=completion)
        raise
    run = await close(call, status=AgentRun.Status.SUCCEEDED, completion=completion, streamed=streamed)
    return InvokeResult(
        run=run, text=entry.text, cache=call.outcome, cache_key=call.key, headers=call.ratelimit_headers
    )


async def finish(call: Call, completion: Completion, *, streamed: bool = False) -> InvokeResult:
    """Output guard, then close: the provider worked, so its usage is charged whatever the guard says."""
    try:
        content_guard(completion.text, "answer")
    except Refused as refusal:
        await close(
            call,
            status=AgentRun.Status.REFUSED,
            error=str(refusal),
            completion=completion,
            charge=completion,
            streamed=streamed,
        )
        raise
    run = await close(
        call, status=AgentRun.Status.SUCCEEDED, completion=completion, charge=completion, streamed=streamed, store=True
    )
    return InvokeResult(
        run=run, text=completion.text, cache=call.outcome, cache_key=call.key, headers=call.ratelimit_headers
    )


async def on_provider_error(
    call: Call, error: ProviderError, *, streamed: bool = False, allow_stale: bool = True, partial=None
) -> InvokeResult:
    """Serve a stale answer within the staleness window if there is one; else record the failure and raise."""
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
    client_ip: str | None = None,
) -> InvokeResult:
    """Invoke an agent and wait for its answer. Raises ValidationError, Refused, a quota refusal or
    ProviderError."""
    prior = await recorded_run(user, idempotency_key)
    if prior is not None:  # a retried task: the run was recorded (and charged) already
        return InvokeResult(run=prior, text=prior.output, cache=prior.cache)
    call = Call(
        user=user,
        agent=await agent_for_pipeline(agent),
        messages=messages,
        api_key=api_key,
        idempotency_key=idempotency_key,
        client_ip=client_ip,
    )
    async with held(call):
        entry = await prepare(call, bypass_cache)
        if entry is not None:
            return await serve_from_cache(call, entry)
        try:
            completion = await provider_call(call)
        except ProviderError as error:
            return await on_provider_error(call, error)
        return await finish(call, completion)


class InvokeStream:
    """Text chunks as they come (`async for`); after the last one, `result` holds the recorded run.

    A stream cut off before its end (the client went away) is recorded as failed, charged an upper bound
    of what was generated, and never cached; one never read gives everything back (`aclose`).
    """

    def __init__(self, call: Call, entry: response_cache.Entry | None):
        self.call = call
        self.result: InvokeResult | None = None
        self.cache = call.outcome
        self.headers = call.ratelimit_headers
        self._entry = entry
        self._started = False
        self._loop = asyncio.get_running_loop()

    async def aclose(self) -> None:
        """The response is closed: if the stream never started (the client left before the first byte),
        give back the reservation and the lock and record the run as cut off."""
        if not self._started:
            self._started = True
            await close(self.call, status=AgentRun.Status.FAILED, error="The stream was never read.", streamed=True)

    def close(self) -> None:
        """aclose for sync callers: Django closes a response from a thread; the gateway handler on the loop
        itself, where waiting for it would block the loop (it runs as a task)."""
        if _running_loop() is self._loop:
            self._closing = self._loop.create_task(self.aclose())
        elif self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self.aclose(), self._loop).result()
        else:
            async_to_sync(self.aclose)()

    def __aiter__(self):
        return self._chunks()

    async def _chunks(self):
        self._started = True  # from here on the stream settles and records itself
        call = self.call
        if self._entry is not None:  # a hit is replayed as a stream
            self.result = await serve_from_cache(call, self._entry, streamed=True)
            for piece in _replay(self.result.text):
                yield piece
            return
        provider_name = call.agent.effective_model.provider.name
        sent: list[str] = []
        try:
            await breaker.check(provider_name, call.breaker_seen)
            upstream = providers.stream(
                model=call.agent.effective_model,
                messages=call.prompt,
                temperature=call.agent.effective_temperature,
                max_tokens=call.max_tokens,
            )
            async for chunk in upstream:
                # The content guard sees the answer as it grows: a refused word is never sent.
                content_guard("".join(sent) + chunk, "answer")
                sent.append(chunk)
                yield chunk
        except ProviderError as error:
            if error.provider_fault and not isinstance(error, breaker.CircuitOpen):
                await breaker.record_failure(provider_name)
            # Before the first chunk a stale answer may stand in; after it, the client has part of another.
            self.result = await on_provider_error(
                call, error, streamed=True, allow_stale=not sent, partial=self._partial(sent)
            )
            for piece in _replay(self.result.text):
                yield piece
            return
        except Refused as refusal:
            partial = self._partial(sent)
            await close(
                call,
                status=AgentRun.Status.REFUSED,
                error=str(refusal),
                completion=partial,
                charge=partial,
                streamed=True,
            )
            raise
        except BaseException as error:  # the client went away (cancelled, closed), or something broke
            broke = isinstance(error, Exception)
            if broke:
                logger.exception("stream failed")
            partial = self._partial(sent)
            await close(
                call,
                status=AgentRun.Status.FAILED,
                error="The stream was cut off." if broke else "The client went away.",
                completion=partial,
                charge=partial,
                streamed=True,
            )
            raise
        call.provider_answered = True
        self.result = await finish(call, upstream.completion, streamed=True)

    def _partial(self, sent: list[str]) -> Completion | None:
        """Usage of an answer that did not complete, which the provider never reported: charged at an upper
        bound (a token is at least one UTF-8 byte), the whole prompt and every byte generated so far."""
        if not sent:
            return None
        text = "".join(sent)
        return Completion(text, token_upper_bound([m["content"] for m in self.call.prompt]), len(text.encode()))


def _replay(text: str):
    words = text.split(" ")
    for index, word in enumerate(words):
        yield word if index == len(words) - 1 else word + " "


async def agent_invoke_stream(
    *, user, agent: Agent, messages, api_key=None, bypass_cache: bool = False, client_ip: str | None = None
) -> InvokeStream:
    call = Call(
        user=user, agent=await agent_for_pipeline(agent), messages=messages, api_key=api_key, client_ip=client_ip
    )
    async with held(call):
        entry = await prepare(call, bypass_cache)
    return InvokeStream(call, entry)


@transaction.atomic
def agent_invoke_async(*, user, agent: Agent, messages, api_key=None, bypass_cache=False, idempotency_key=""):
    """Start an invocation as a tracked task (answered 202); the run's idempotency key is the task id."""
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


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
