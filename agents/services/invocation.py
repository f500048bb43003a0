"""The invocation pipeline's entries: every way in (API, browser, task, workflow step) calls one of them.

    agent_invoke(user=..., agent=..., messages=[...])        -> InvokeResult
    agent_invoke_stream(user=..., agent=..., messages=[...]) -> InvokeStream (chunks, then .result)
    agent_invoke_async(user=..., agent=..., messages=[...])  -> (task record, created): a tracked task

Authorization (role, scope, owner or share) is done by the caller through `agents.selectors.agent_get`.
The steps are in `agents.services.pipeline`.
"""

import logging

from django.db import transaction

from agents import breaker, providers
from agents import cache as response_cache
from agents.models import Agent, AgentRun
from agents.providers import Completion, ProviderError
from agents.services.pipeline import (
    Call,
    InvokeResult,
    content_guard,
    finish,
    guard_input,
    on_provider_error,
    prepare,
    provider_call,
    record_run,
    recorded_run,
    release_lock,
    serve_from_cache,
    settle_quota,
    token_upper_bound,
)
from core.exceptions import Refused
from tasks.services.records import task_start

logger = logging.getLogger("switchboard.agents")


def agent_invoke(
    *, user, agent: Agent, messages, api_key=None, bypass_cache: bool = False, idempotency_key: str = ""
) -> InvokeResult:
    """Invoke an agent and wait for its answer. Raises ValidationError, Refused or ProviderError."""
    prior = recorded_run(user, idempotency_key)
    if prior is not None:  # a retried task: the run was recorded (and charged) already
        return InvokeResult(run=prior, text=prior.output, cache=prior.cache)
    call = Call(user=user, agent=agent, messages=messages, api_key=api_key, idempotency_key=idempotency_key)
    entry = prepare(call, bypass_cache)
    if entry is not None:
        return serve_from_cache(call, entry)
    try:
        completion = provider_call(call)
    except ProviderError as error:
        return on_provider_error(call, error)
    except Exception:
        release_lock(call)
        settle_quota(call, None)
        raise
    return finish(call, completion)


class InvokeStream:
    """Text chunks as they come; after the last one, `result` holds the recorded run.

    A stream cut off before its end (the client went away) is recorded as failed and never cached.
    """

    def __init__(self, call: Call, entry: response_cache.Entry | None):
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
        release_lock(self.call)
        settle_quota(self.call, None)
        record_run(self.call, status=AgentRun.Status.FAILED, error="The stream was never read.", streamed=True)

    def __iter__(self):
        self._started = True  # from here on the stream settles and records itself
        call = self.call
        if self._entry is not None:  # a hit is replayed as a stream
            self.result = serve_from_cache(call, self._entry, streamed=True)
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
                content_guard("".join(sent) + chunk, "answer")
                sent.append(chunk)
                yield chunk
        except ProviderError as error:
            if error.provider_fault and not isinstance(error, breaker.CircuitOpen):
                breaker.record_failure(provider_name)
            # Before the first chunk a stale answer may stand in; after it, the client has part of another.
            self.result = on_provider_error(
                call, error, streamed=True, allow_stale=not sent, partial=self._partial(sent)
            )
            yield from _replay(self.result.text)
            return
        except Refused as refusal:
            release_lock(call)
            settle_quota(call, self._partial(sent))
            record_run(
                call, status=AgentRun.Status.REFUSED, error=str(refusal), streamed=True, completion=self._partial(sent)
            )
            raise
        except (GeneratorExit, Exception) as error:  # the client went away, or something broke: cache nothing
            release_lock(call)
            settle_quota(call, self._partial(sent))
            if not isinstance(error, GeneratorExit):
                logger.exception("stream failed")
            record_run(
                call,
                status=AgentRun.Status.FAILED,
                error="The stream was cut off.",
                streamed=True,
                completion=self._partial(sent),
            )
            raise
        breaker.record_success(provider_name)
        self.result = finish(call, upstream.completion, streamed=True)

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


def agent_invoke_stream(*, user, agent: Agent, messages, api_key=None, bypass_cache: bool = False) -> InvokeStream:
    call = Call(user=user, agent=agent, messages=messages, api_key=api_key)
    entry = prepare(call, bypass_cache)
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
