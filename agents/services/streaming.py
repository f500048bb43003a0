"""The streamed entry: `agent_invoke_stream` runs the pipeline's first steps and returns an `InvokeStream`, whose
pieces come as the provider sends them, through the output guard's hold-back window.

    stream = await agent_invoke_stream(user=..., agent=..., messages=[...])
    async for piece in stream: ...   # text (str) and pieces of tool calls (ToolCallDelta)
    stream.result                    # the recorded run, after the last piece
"""

import asyncio
import logging
import time

from asgiref.sync import async_to_sync
from django.conf import settings

from agents import breaker, metrics, providers, telemetry
from agents import cache as response_cache
from agents.conversation import counted_texts, image_count
from agents.guards import Blocked
from agents.models import Agent, AgentRun
from agents.providers import Completion, ProviderError, ToolCallDelta
from agents.selectors import agent_for_pipeline
from agents.services import external_guards, guarding
from agents.services.closing import close, held
from agents.services.guarding import OUTPUT, STREAM, TOOL_ARGUMENTS, AnswerGuard, ContentBlocked, GuardUnavailable
from agents.services.invocation import finish, new_call, on_provider_error, prepare, refused_answer, serve_from_cache
from agents.services.pipeline import Call, InvokeResult, token_upper_bound
from core.exceptions import Refused

logger = logging.getLogger("switchboard.agents")


class InvokeStream:
    """The answer's pieces as they come (`async for`): text (str) and pieces of tool calls (ToolCallDelta);
    after the last one, `result` holds the recorded run.

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
            for piece in _replay(self.result):
                yield piece
            return
        provider_name = call.agent.effective_model.provider.name
        guard = AnswerGuard(call.guard)
        answer = _Answer()
        span = None
        try:
            await breaker.check(provider_name, call.breaker_seen)
            call.provider_started = time.perf_counter()
            span = telemetry.chat_started(call)
            upstream = providers.stream(
                model=call.agent.effective_model,
                messages=call.prompt,
                temperature=call.temperature_used,
                max_tokens=call.max_tokens,
                options=call.options,
            )
            async for piece in upstream:
                if not answer.pieces:
                    await metrics.first_chunk(call)
                # The guard sees the answer as it grows, holding back a window: a match that spans pieces is
                # seen whole before any of it is sent.
                for out in answer.take(piece, guard):
                    if not guard.holds_all:
                        yield out
            for out in answer.end(guard):
                if not guard.holds_all:
                    yield out
        except ProviderError as error:
            telemetry.finished(span, error=error, call=call)
            if error.provider_fault and not isinstance(error, breaker.CircuitOpen):
                await breaker.record_failure(provider_name)
            # Before the first chunk a stale answer may stand in; after it, the client has part of another.
            call.found.extend(guard.found())
            nothing_sent = guard.holds_all or not (answer.sent or answer.heads)
            self.result = await on_provider_error(
                call, error, streamed=True, allow_stale=nothing_sent, partial=self._partial(answer)
            )
            for piece in _replay(self.result):
                yield piece
            return
        except Blocked as blocked:  # cut before the blocked finding: what came before it may still go
            telemetry.finished(span, error=blocked, call=call)
            where, place = answer.blocked_where
            sendable = blocked.released if where == STREAM and not guard.holds_all else ""
            if sendable:
                answer.sent.append(sendable)
            call.found.extend(guard.found())
            refusal = ContentBlocked(
                detector=AnswerGuard.blocked_by(blocked), where=where, place=place, direction=OUTPUT
            )
            call.found.block(refusal.detector, where, place)
            partial = self._partial(answer)
            await close(
                call,
                status=AgentRun.Status.REFUSED,
                error=str(refusal),
                completion=partial,
                charge=partial,
                streamed=True,
            )
            for out in _words(sendable) if sendable else ():
                yield out
            raise refusal from None
        except BaseException as error:  # the client went away (cancelled, closed), or something broke
            broke = isinstance(error, Exception)
            telemetry.finished(span, error=error, call=call)
            if broke:
                logger.exception("stream failed")
            call.found.extend(guard.found())
            partial = self._partial(answer)
            await close(
                call,
                status=AgentRun.Status.FAILED,
                error="The stream was cut off." if broke else "The client went away.",
                completion=partial,
                charge=partial,
                streamed=True,
            )
            raise
        telemetry.finished(span, upstream.completion, call=call)
        call.provider_answered = True
        call.found.extend(guard.found())
        completion = answer.completion(upstream.completion)
        if guard.holds_all:  # the external guards see the whole answer before any of it is sent
            completion = await self._checked(completion)
            self.result = await finish(call, completion, streamed=True, guarded=True)
            for piece in _replay(self.result):
                yield piece
            return
        self.result = await finish(call, completion, streamed=True, guarded=True)

    async def _checked(self, completion: Completion) -> Completion:
        """An answer held whole through the output's external guards; refused or failing, it is recorded
        (charged, without its text) before the error goes to the client."""
        call = self.call
        try:
            texts = guarding.completion_texts(completion)
            checked = await external_guards.check(
                call.guard,
                OUTPUT,
                texts,
                call.found,
                agent_type=call.agent.agent_type.slug,
                run=str(call.run_id),
            )
            call.found.raise_if_blocked(OUTPUT)
        except (Refused, GuardUnavailable) as refusal:
            await metrics.provider_finished(call)
            withheld = refused_answer(completion)
            status = AgentRun.Status.REFUSED if isinstance(refusal, Refused) else AgentRun.Status.FAILED
            await close(call, status=status, error=str(refusal), completion=withheld, charge=withheld, streamed=True)
            raise
        return guarding.with_completion_texts(completion, checked)

    def _partial(self, answer: "_Answer") -> Completion | None:
        """Usage of an answer that did not complete, which the provider never reported: charged at an upper
        bound (a token is at least one UTF-8 byte), the whole prompt and every byte generated so far. The
        run records what was sent."""
        if not answer.pieces:
            return None
        prompt = self.call.prompt
        worst_input = token_upper_bound(counted_texts(prompt, self.call.options))
        worst_input += image_count(prompt) * settings.TOKENS_PER_IMAGE
        return Completion("".join(answer.sent), worst_input, answer.received, _calls_so_far(answer.arguments_sent))


class _Answer:
    """A streamed answer as it goes through the guard: what was received (bytes, for a cut-off charge), what
    was sent (text, tool-call heads and arguments), and where a block happened."""

    def __init__(self):
        self.pieces = 0
        self.received = 0  # UTF-8 bytes generated so far
        self.sent: list[str] = []
        self.heads: dict[int, ToolCallDelta] = {}
        self.arguments_sent: dict[int, str] = {}
        self.blocked_where = (STREAM, "the answer")

    def take(self, piece, guard: AnswerGuard) -> list:
        self.pieces += 1
        if isinstance(piece, ToolCallDelta):
            self.received += len(piece.arguments.encode())
            out = []
            if piece.id is not None:
                self.heads[piece.index] = ToolCallDelta(piece.index, piece.id, piece.name, "")
                self.arguments_sent.setdefault(piece.index, "")
                out.append(self.heads[piece.index])
            self.blocked_where = (TOOL_ARGUMENTS, f"tool_calls[{piece.index}].function.arguments")
            released = guard.feed_arguments(piece.index, piece.arguments)
            return out + self._arguments(piece.index, released)
        self.received += len(piece.encode())
        self.blocked_where = (STREAM, "the answer")
        return self._text(guard.feed_text(piece))

    def end(self, guard: AnswerGuard) -> list:
        self.blocked_where = (STREAM, "the answer")
        out = self._text(guard.close_text())
        for index in sorted(guard.arguments):
            self.blocked_where = (TOOL_ARGUMENTS, f"tool_calls[{index}].function.arguments")
            out += self._arguments(index, guard.arguments[index].close())
        return out

    def _text(self, released: str) -> list[str]:
        if not released:
            return []
        self.sent.append(released)
        return _words(released)

    def _arguments(self, index: int, released: str) -> list:
        if not released:
            return []
        self.arguments_sent[index] = self.arguments_sent.get(index, "") + released
        return [ToolCallDelta(index, None, None, released)]

    def completion(self, upstream: Completion) -> Completion:
        """The answer as it was sent (guarded), with the provider's usage and finish."""
        indices = sorted(self.arguments_sent)  # the stream's call indices, in the order the calls are listed
        calls = [
            {**call, "function": {**call["function"], "arguments": self.arguments_sent[index]}}
            for index, call in zip(indices, upstream.tool_calls, strict=False)
        ]
        return Completion(
            "".join(self.sent),
            upstream.input_tokens,
            upstream.output_tokens,
            calls,
            upstream.finish_reason,
            upstream.response_id,
            upstream.response_model,
        )


def _words(text: str) -> list[str]:
    """Released text as the client gets it: word by word (each with its following space), as it came."""
    words = text.split(" ")
    return [word + " " for word in words[:-1]] + ([words[-1]] if words[-1] else [])


def _calls_so_far(arguments: dict[int, str]) -> list[dict]:
    """Tool calls as far as they have streamed, for the guard (their arguments) and a cut-off run."""
    return [
        {"id": "", "type": "function", "function": {"name": "", "arguments": arguments[index]}}
        for index in sorted(arguments)
    ]


def _replay(result: InvokeResult):
    """A cached answer as a stream: its words, then each tool call whole."""
    words = result.text.split(" ") if result.text else []
    for index, word in enumerate(words):
        yield word if index == len(words) - 1 else word + " "
    for index, call in enumerate(result.tool_calls):
        yield ToolCallDelta(index, call["id"], call["function"]["name"], call["function"]["arguments"])


async def agent_invoke_stream(
    *, user, agent: Agent, messages, api_key=None, bypass_cache: bool = False, client_ip: str | None = None, **request
) -> InvokeStream:
    call = new_call(
        user=user,
        agent=await agent_for_pipeline(agent),
        messages=messages,
        api_key=api_key,
        client_ip=client_ip,
        **request,
    )
    async with held(call):
        with telemetry.invoke_agent(call):
            entry = await prepare(call, bypass_cache)
    return InvokeStream(call, entry)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
