"""The echo kind: answers `echo: <last user message>`, for trying the platform without any key. Options are
ignored."""

from agents.providers.shapes import Completion, content_text


def echo_completion(messages: list[dict]) -> Completion:
    text = _echo_text(messages)
    return Completion(text, _word_count(messages), len(text.split()))


async def echo_pieces(call):
    """The words of the echo, one piece each; `call.completion` once they are all out."""
    text = _echo_text(call.messages)
    words = text.split(" ")
    for index, word in enumerate(words):
        yield word if index == len(words) - 1 else word + " "
    call.completion = Completion(text, _word_count(call.messages), len(text.split()))


def _echo_text(messages: list[dict]) -> str:
    last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    return f"echo: {content_text(last_user, ' ')}"


def _word_count(messages: list[dict]) -> int:
    return sum(len(content_text(m.get("content"), " ").split()) for m in messages)
