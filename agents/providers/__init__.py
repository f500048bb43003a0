"""One small interface over the LLM providers: `await complete()` and `stream()` (an async iterator).

OpenAI-compatible endpoints go through the official `openai` SDK, Anthropic through the `anthropic` SDK,
their async clients, so one process holds many calls at once; both SDKs retry 429 and 5xx with exponential
backoff (`max_retries` of the provider). `echo` answers with the last user message, for trying the platform
without any key. Every failure becomes a ProviderError carrying the HTTP status Switchboard answers with;
the detail goes to the log, not to the caller. A call that is cancelled (its client went away) closes its
connection to the provider, which stops generating.

Requests come in OpenAI's Chat Completions shape (text or multi-part content with images, assistant tool
calls, tool results) with `options` (tools, tool_choice, parallel_tool_calls, response_format, stop, seed,
top_p, user); answers go out in it too (`Completion.tool_calls`, `finish_reason`, streamed `ToolCallDelta`
pieces). The OpenAI-compatible kind sends them as they are; the Anthropic kind translates both ways.

The SDKs are imported where they are used: importing both costs seconds, which every process start
(management commands, workers, tests) would otherwise pay.

calls               complete() and stream(): one call, dispatched on the provider's kind
shapes              Completion, ToolCallDelta, the assembly of streamed tool calls, message content
errors              ProviderError and the SDK errors it stands for
clients             the SDK clients, kept per event loop and configuration; load_sdks()
openai_chat         the OpenAI-compatible kind: the Chat Completions body as is, tool calls read back
anthropic_messages  the Anthropic kind: the request and the answer translated both ways, as LiteLLM does
echo                the echo kind
"""

from agents.providers.calls import Stream, complete, stream
from agents.providers.clients import load_sdks
from agents.providers.errors import ProviderError
from agents.providers.shapes import Completion, ToolCallDelta

__all__ = ["Completion", "ProviderError", "Stream", "ToolCallDelta", "complete", "load_sdks", "stream"]
