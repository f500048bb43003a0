"""Templates: text with `${...}` parts, each an expression; `$${` is a literal `${`."""

import functools
import json

from workflows.expressions.errors import ExpressionError, _kind, _shown
from workflows.expressions.evaluation import _evaluate, _spend_text


class _Part:
    __slots__ = ("source",)

    def __init__(self, source):
        self.source = source


def _render(template, context, budget):
    parts = _parts(template)
    if len(parts) == 1 and isinstance(parts[0], _Part):
        return _evaluate(parts[0].source, context, budget)
    text = "".join(part if isinstance(part, str) else _text(_evaluate(part.source, context, budget)) for part in parts)
    return _spend_text(text, template, budget)


def _parts(template) -> tuple:
    if not isinstance(template, str):
        raise ExpressionError(f"A template must be text, not {_kind(template)}.", str(template))
    return _template_parts(template)


@functools.lru_cache(maxsize=4096)
def _template_parts(template: str) -> tuple:
    """Text and `${...}` parts; `$${` is a literal `${`. A part ends at the first `}` outside its own
    braces and strings, so maps and strings with braces may sit inside it."""
    parts, text, i = [], [], 0
    while i < len(template):
        if template.startswith("$${", i):
            text.append("${")
            i += 3
        elif template.startswith("${", i):
            end = _part_end(template, i + 2)
            if end is None:
                raise ExpressionError(
                    f"The template `{_shown(template)}` opens a ${{ at character {i + 1} that is never closed.",
                    template,
                )
            if text:
                parts.append("".join(text))
                text = []
            parts.append(_Part(template[i + 2 : end]))
            i = end + 1
        else:
            text.append(template[i])
            i += 1
    if text:
        parts.append("".join(text))
    return tuple(parts)


def _part_end(template, i):
    depth, quote = 0, None
    while i < len(template):
        char = template[i]
        if quote:
            if char == "\\":
                i += 1
            elif template.startswith(quote, i):
                i += len(quote) - 1
                quote = None
        elif char in "\"'":
            quote = char * 3 if template.startswith(char * 3, i) else char
            i += len(quote) - 1
        elif char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return None


def _text(value):
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
