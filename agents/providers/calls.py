"""complete() and stream(): one call to the model's provider, dispatched on its kind."""

import logging

from agents.models import LanguageModel, Provider
from agents.providers.anthropic_messages import anthropic_complete, anthropic_pieces, anthropic_request
from agents.providers.clients import sdk_client
from agents.providers.echo import echo_completion, echo_pieces
from agents.providers.errors import ProviderError, sdk_errors, translate
from agents.providers.openai_chat import chat_body, openai_complete, openai_pieces
from agents.providers.shapes import Completion

logger = logging.getLogger("switchboard.providers")


async def complete(
    *,
    model: LanguageModel,
    messages: list[dict],
    temperature: float,
    max_tokens: int,
    idempotency_key: str = "",
    options: dict | None = None,
) -> Completion:
    """The whole answer. `messages` in OpenAI's Chat Completions shape, `options` among tools, tool_choice,
    parallel_tool_calls, response_format, stop, seed, top_p, user (validated by the caller)."""
    provider = model.provider
    if provider.kind == Provider.Kind.ECHO:
        return echo_completion(messages)
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    if provider.kind == Provider.Kind.ANTHROPIC:
        request, json_tool = anthropic_request(model, messages, temperature, max_tokens, options)
    try:
        async with sdk_client(provider) as client:
            if provider.kind == Provider.Kind.ANTHROPIC:
                return await anthropic_complete(client, request, json_tool, headers)
            return await openai_complete(client, chat_body(model, messages, temperature, max_tokens, options), headers)
    except ProviderError:
        raise
    except sdk_errors() as error:
        logger.warning("provider %s failed: %r", provider.name, error, extra={"provider": provider.name})
        raise translate(error, provider) from error
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as error:  # an answer of the wrong shape
        logger.warning("provider %s answered malformed: %r", provider.name, error, extra={"provider": provider.name})
        raise ProviderError(f"The model provider {provider.name!r} answered malformed.", status=502) from error


class Stream:
    """The pieces of a streamed completion (`async for`): text deltas (`str`) and `ToolCallDelta`s;
    `completion` is the whole Completion once the stream has ended."""

    def __init__(
        self,
        model: LanguageModel,
        messages: list[dict],
        temperature: float,
        max_tokens: int,
        options: dict | None = None,
    ):
        self.model, self.messages, self.temperature, self.max_tokens = model, messages, temperature, max_tokens
        self.options = options or {}
        self.completion: Completion | None = None

    def __aiter__(self):
        kind = self.model.provider.kind
        if kind == Provider.Kind.ECHO:
            return echo_pieces(self)
        if kind == Provider.Kind.ANTHROPIC:
            return anthropic_pieces(self)
        return openai_pieces(self)


def stream(
    *, model: LanguageModel, messages: list[dict], temperature: float, max_tokens: int, options: dict | None = None
) -> Stream:
    return Stream(model, messages, temperature, max_tokens, options)
