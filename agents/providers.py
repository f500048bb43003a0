"""One small interface over the LLM providers: `await complete()` and `stream()` (an async iterator).

OpenAI-compatible endpoints go through the official `openai` SDK, Anthropic through the `anthropic` SDK,
their async clients, so one process holds many calls at once; both SDKs retry 429 and 5xx with exponential
backoff (`max_retries` of the provider). `echo` answers with the last user message, for trying the platform
without any key. Every failure becomes a ProviderError carrying the HTTP status Switchboard answers with;
the detail goes to the log, not to the caller. A call that is cancelled (its client went away) closes its
connection to the provider, which stops generating.

The SDKs are imported where they are used: importing both costs seconds, which every process start
(management commands, workers, tests) would otherwise pay.
"""

import asyncio
import logging
import os
import weakref
from contextlib import asynccontextmanager
from dataclasses import dataclass

from asgiref.sync import AsyncToSync
from django.conf import settings

from agents.models import LanguageModel, Provider
from core.encryption import decrypt
from core.exceptions import UpstreamError
from tasks.outbound import UnsafeDestination, check_provider_url

logger = logging.getLogger("switchboard.providers")


@dataclass
class Completion:
    text: str
    input_tokens: int
    output_tokens: int


class ProviderError(UpstreamError):
    """The provider failed; `status` is what the caller gets (502 bad answer, 503 down, 504 timeout)."""

    def __init__(self, message: str, status: int = 502, retry_after: int | None = None, provider_fault: bool = True):
        super().__init__(message, status=status, retry_after=retry_after)
        # Whether it counts against the provider's breaker: an outage does, a rate limit or a bad request not.
        self.provider_fault = provider_fault


def load_sdks() -> None:
    """Import both SDKs now: a process that serves calls (web, agents worker) does it as it starts, not in
    its first call, where it would hold up every call on the event loop for seconds."""
    import anthropic
    import openai

    # Their resources are imported when first reached, too.
    openai.AsyncOpenAI(api_key="-").chat.completions  # noqa: B018
    anthropic.AsyncAnthropic(api_key="-").messages  # noqa: B018


def _api_key(provider: Provider) -> str:
    if provider.api_key_env:
        return os.environ.get(provider.api_key_env, "")
    if provider.api_key_encrypted:
        return decrypt(provider.api_key_encrypted)
    return ""


# SDK clients are kept per event loop (their connections belong to it) and configuration: making one loads
# the TLS trust store (tens of ms) and a kept client reuses its connections.
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]" = weakref.WeakKeyDictionary()


@asynccontextmanager
async def _sdk_client(provider: Provider):
    """The provider's SDK client: the one kept for this event loop and configuration; for a call from sync
    code (through async_to_sync, whose event loop lasts one call) one of its own, closed after the call."""
    api_key = _api_key(provider) or "not-needed"
    if getattr(AsyncToSync.executors, "current", None) is not None:
        client = _new_client(provider, api_key)
        try:
            yield client
        finally:
            await client.close()
        return
    config = (provider.kind, provider.pk, provider.base_url, api_key, provider.timeout_seconds, provider.max_retries)
    clients = _clients.setdefault(asyncio.get_running_loop(), {})
    if config not in clients:
        clients[config] = _new_client(provider, api_key)
    yield clients[config]


def _new_client(provider: Provider, api_key: str):
    import anthropic
    import httpx2
    import openai

    if provider.base_url:  # checked when saved, and again here: the setting or the DNS may have changed
        try:
            check_provider_url(provider.base_url)
        except UnsafeDestination as error:
            logger.error("provider %s: %s", provider.name, error, extra={"provider": provider.name})
            raise ProviderError(
                f"The model provider {provider.name!r} is at an address the platform may not call.",
                provider_fault=False,
            ) from error
    sdk = anthropic if provider.kind == Provider.Kind.ANTHROPIC else openai
    return (sdk.AsyncAnthropic if sdk is anthropic else sdk.AsyncOpenAI)(
        api_key=api_key,
        base_url=provider.base_url or None,
        timeout=provider.timeout_seconds,
        max_retries=provider.max_retries,
        # aiohttp under the SDK (its documented option): with a thousand calls in flight httpx's pool cost
        # three times as much per call, in proportion to the connections open.
        http_client=sdk.DefaultAioHttpClient(
            timeout=provider.timeout_seconds,
            limits=httpx2.Limits(
                max_connections=settings.PROVIDER_MAX_CONNECTIONS,
                max_keepalive_connections=settings.PROVIDER_MAX_CONNECTIONS,
            ),
        ),
    )


def _translate(error: Exception, provider: Provider) -> ProviderError:
    """SDK errors of both vendors to the status the caller gets."""
    import anthropic
    import openai

    name = provider.name
    if isinstance(error, (openai.APITimeoutError, anthropic.APITimeoutError)) and _timed_out(error):
        return ProviderError(f"The model provider {name!r} timed out.", status=504)
    if isinstance(error, (openai.APITimeoutError, anthropic.APITimeoutError)):
        return ProviderError(f"The model provider {name!r} cannot be reached.", status=503, retry_after=30)
    if isinstance(error, (openai.APIConnectionError, anthropic.APIConnectionError)):
        return ProviderError(f"The model provider {name!r} cannot be reached.", status=503, retry_after=30)
    if isinstance(error, (openai.RateLimitError, anthropic.RateLimitError)):
        return ProviderError(
            f"The model provider {name!r} is rate limiting us.", status=503, retry_after=30, provider_fault=False
        )
    if isinstance(error, (openai.BadRequestError, anthropic.BadRequestError)):
        return ProviderError(
            f"The model provider {name!r} refused the request as invalid.", status=400, provider_fault=False
        )
    if isinstance(error, (openai.APIStatusError, anthropic.APIStatusError)) and error.status_code >= 500:
        return ProviderError(f"The model provider {name!r} failed.", status=502)
    return ProviderError(f"The model provider {name!r} answered with an error.", status=502)


def _timed_out(error: Exception) -> bool:
    """Whether an SDK timeout is one: under the aiohttp transport a refused or dropped connection is
    reported as a connect timeout too, with aiohttp's own error as its cause."""
    import aiohttp

    cause = error.__cause__
    while cause is not None:
        if isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(cause, TimeoutError):
            return False
        cause = cause.__cause__
    return True


def _sdk_errors() -> tuple:
    import anthropic
    import openai

    return openai.OpenAIError, anthropic.AnthropicError


def _split_system(messages: list[dict]) -> tuple[str, list[dict]]:
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    return system, [m for m in messages if m["role"] != "system"]


def _echo_text(messages: list[dict]) -> str:
    last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    return f"echo: {last_user}"


def _word_count(messages: list[dict]) -> int:
    return sum(len(m["content"].split()) for m in messages)


def _words(text: str):
    words = text.split(" ")
    for index, word in enumerate(words):
        yield word if index == len(words) - 1 else word + " "


# This anthropic SDK release has no `temperature` parameter; the Messages API still takes it in the body.


def _chat_body(model: LanguageModel, messages: list[dict], temperature: float, max_tokens: int) -> dict:
    """A Chat Completions request body, sent with the SDK's `client.post` (its documented way to send a
    body as is): `chat.completions.create()` re-checks its typed parameters on every call, a tenth of a
    busy web process's time, for a body built here from validated values."""
    return {"model": model.provider_model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens}


async def complete(
    *, model: LanguageModel, messages: list[dict], temperature: float, max_tokens: int, idempotency_key: str = ""
) -> Completion:
    provider = model.provider
    if provider.kind == Provider.Kind.ECHO:
        text = _echo_text(messages)
        return Completion(text, _word_count(messages), len(text.split()))
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    try:
        async with _sdk_client(provider) as client:
            if provider.kind == Provider.Kind.ANTHROPIC:
                import anthropic

                system, rest = _split_system(messages)
                response = await client.messages.create(
                    model=model.provider_model,
                    system=system or anthropic.NOT_GIVEN,
                    messages=rest,
                    max_tokens=max_tokens,
                    extra_body={"temperature": temperature},
                    extra_headers=headers,
                )
                text = "".join(block.text for block in response.content if getattr(block, "type", "") == "text")
                return Completion(text, response.usage.input_tokens, response.usage.output_tokens)
            from openai.types.chat import ChatCompletion

            response = await client.post(
                "/chat/completions",
                cast_to=ChatCompletion,
                body=_chat_body(model, messages, temperature, max_tokens),
                options={"headers": headers},
            )
            usage = response.usage
            return Completion(response.choices[0].message.content or "", usage.prompt_tokens, usage.completion_tokens)
    except ProviderError:
        raise
    except _sdk_errors() as error:
        logger.warning("provider %s failed: %r", provider.name, error, extra={"provider": provider.name})
        raise _translate(error, provider) from error
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as error:  # an answer of the wrong shape
        logger.warning("provider %s answered malformed: %r", provider.name, error, extra={"provider": provider.name})
        raise ProviderError(f"The model provider {provider.name!r} answered malformed.", status=502) from error


class Stream:
    """Text chunks of a streamed completion (`async for`); `completion` is filled once the stream has ended."""

    def __init__(self, model: LanguageModel, messages: list[dict], temperature: float, max_tokens: int):
        self.model, self.messages, self.temperature, self.max_tokens = model, messages, temperature, max_tokens
        self.completion: Completion | None = None

    def __aiter__(self):
        provider = self.model.provider
        if provider.kind == Provider.Kind.ECHO:
            return self._echo()
        if provider.kind == Provider.Kind.ANTHROPIC:
            return self._anthropic(provider)
        return self._openai(provider)

    async def _echo(self):
        text = _echo_text(self.messages)
        for piece in _words(text):
            yield piece
        self.completion = Completion(text, _word_count(self.messages), len(text.split()))

    async def _anthropic(self, provider):
        import anthropic

        system, rest = _split_system(self.messages)
        try:
            async with (
                _sdk_client(provider) as client,
                client.messages.stream(
                    model=self.model.provider_model,
                    system=system or anthropic.NOT_GIVEN,
                    messages=rest,
                    max_tokens=self.max_tokens,
                    extra_body={"temperature": self.temperature},
                ) as events,
            ):
                parts = []
                async for text in events.text_stream:
                    parts.append(text)
                    yield text
                usage = (await events.get_final_message()).usage
        except _sdk_errors() as error:
            logger.warning("provider %s failed while streaming: %r", provider.name, error)
            raise _translate(error, provider) from error
        self.completion = Completion("".join(parts), usage.input_tokens, usage.output_tokens)

    async def _openai(self, provider):
        try:
            from openai import AsyncStream
            from openai.types.chat import ChatCompletion, ChatCompletionChunk

            async with _sdk_client(provider) as client:
                body = _chat_body(self.model, self.messages, self.temperature, self.max_tokens)
                response = await client.post(
                    "/chat/completions",
                    cast_to=ChatCompletion,
                    body={**body, "stream": True, "stream_options": {"include_usage": True}},
                    stream=True,
                    stream_cls=AsyncStream[ChatCompletionChunk],
                )
                parts, usage, finished = [], None, False
                try:
                    async for chunk in response:
                        if chunk.usage is not None:
                            usage = chunk.usage
                        if chunk.choices and chunk.choices[0].finish_reason:
                            finished = True
                        if chunk.choices and chunk.choices[0].delta.content:
                            parts.append(chunk.choices[0].delta.content)
                            yield chunk.choices[0].delta.content
                finally:
                    await response.close()  # a client that went away must not keep the provider generating
        except _sdk_errors() as error:
            logger.warning("provider %s failed while streaming: %r", provider.name, error)
            raise _translate(error, provider) from error
        if not finished:
            raise ProviderError(f"The model provider {provider.name!r} cut the answer off.", status=502)
        text = "".join(parts)
        self.completion = Completion(
            text, usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else len(text.split())
        )


def stream(*, model: LanguageModel, messages: list[dict], temperature: float, max_tokens: int) -> Stream:
    return Stream(model, messages, temperature, max_tokens)
