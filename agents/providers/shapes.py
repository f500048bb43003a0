"""What a call answers (Completion, streamed ToolCallDelta pieces) and how message content is read."""

from dataclasses import dataclass, field


@dataclass
class Completion:
    text: str  # "" when the answer is only tool calls
    input_tokens: int
    output_tokens: int
    # OpenAI's shape: {"id", "type": "function", "function": {"name", "arguments": JSON text}}
    tool_calls: list[dict] = field(default_factory=list)
    finish_reason: str = "stop"  # OpenAI's vocabulary: stop, length, tool_calls, content_filter
    response_id: str = ""  # the provider's id of the answer and the model that wrote it (for traces)
    response_model: str = ""


@dataclass
class ToolCallDelta:
    """One piece of a streamed tool call, as OpenAI's `delta.tool_calls[i]`: the first piece of a call has its
    id and name, the next ones fragments of its JSON arguments."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class ToolCalls:
    """Streamed tool call pieces put together, by index."""

    def __init__(self):
        self._calls: dict[int, dict] = {}

    def add(self, piece: ToolCallDelta) -> None:
        call = self._calls.setdefault(
            piece.index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
        )
        if piece.id:
            call["id"] = piece.id
        if piece.name:
            call["function"]["name"] = piece.name
        call["function"]["arguments"] += piece.arguments

    def assembled(self) -> list[dict]:
        return [self._calls[index] for index in sorted(self._calls)]


def content_text(content, separator: str = "\n") -> str:
    """The text of a message's content: a string, None, or a list of parts whose text parts are joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return separator.join(part["text"] for part in content if part.get("type") == "text")
