"""CEL conditions and `${...}` templates of workflow definitions: checked when a definition is saved,
evaluated under a cost, a time and a size cap when a run reads them.

We use cel-python (`celpy`): it walks the syntax tree in Python (never `eval`; its transpiling runner is
not used here), so an evaluation can be stopped between any two nodes. The Rust bindings (`cel`) are
faster on small expressions, but one call runs to its end holding the GIL, with nothing to stop it,
and their comprehensions are quadratic in the list's length: `l.map(x, l.map(y, x * y))` over 1,000
items ran for 63 s.

What is ours on top of celpy, each for a hole found by trying it:
- its string terminals are replaced by linear ones (its own backtrack exponentially: `"` then 40
  backslashes took 48 s to refuse), and `duration()` checks its text with a linear pattern first;
- the pass-through nodes of its tree (`expr` -> `conditionalor` -> ... -> `member`, one child each,
  whose methods return that child's value) are dropped: its recursive interpreter goes five times less
  deep and runs twice as fast;
- names and functions are checked before anything runs, so `os`, `__import__` or `request` is a
  validation error rather than a failed run;
- the few functions that could do unbounded work in one step are charged or refused (see evaluation._functions);
  without that, `==` on a structure of shared sublists ran for 77 s, and `"%999999999d" % 1` built a
  gigabyte with Python's printf.

The package, by topic: `limits` (the names an expression reads, the caps), `compiling` (parsing and the
checks before anything runs), `evaluation` (celpy's interpreter under the budget, its values as plain
data), `templates` (`${...}` parts), `errors` (ExpressionError and its messages, in CEL's words).
"""

import time

from workflows.expressions.compiling import _check_names, _compile, _program  # noqa: F401  (tests read _compile's cache)
from workflows.expressions.errors import ExpressionError, _kind, _OverCap, _shown
from workflows.expressions.evaluation import _evaluate
from workflows.expressions.limits import (
    MACRO_ITEM_COST,
    MAX_COST,
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_RESULT_CHARS,
    MAX_RESULT_ITEMS,
    NAMES,
    TIME_LIMIT,
)
from workflows.expressions.templates import _Part, _parts, _render

__all__ = [
    "MACRO_ITEM_COST",
    "MAX_COST",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_RESULT_CHARS",
    "MAX_RESULT_ITEMS",
    "NAMES",
    "TIME_LIMIT",
    "ExpressionError",
    "check_expression",
    "check_template",
    "check_value",
    "evaluate",
    "is_true",
    "render",
    "render_value",
]


def check_expression(source: str, *, names=NAMES) -> None:
    """Compile-time check: syntax, caps, and that it reads no name other than `names`."""
    _check_names(_program(source), source, names)


def check_template(template: str, *, names=NAMES) -> None:
    for part in _parts(template):
        if isinstance(part, _Part):
            check_expression(part.source, names=names)


def check_value(value, *, names=NAMES) -> None:
    """Every string inside a JSON value is a template (map keys are names and stay as they are)."""
    if isinstance(value, str):
        check_template(value, names=names)
    elif isinstance(value, list):
        for element in value:
            check_value(element, names=names)
    elif isinstance(value, dict):
        for element in value.values():
            check_value(element, names=names)


def evaluate(source: str, context: dict):
    """The expression's value as plain JSON data (dict, list, str, int, float, bool or None)."""
    return _evaluate(source, context, _Budget())


def is_true(source: str, context: dict) -> bool:
    value = evaluate(source, context)
    if not isinstance(value, bool):
        raise ExpressionError(f"The condition `{_shown(source)}` gave {_kind(value)}, not true or false.", source)
    return value


def render(template: str, context: dict):
    """A template that is exactly one `${...}` gives that value with its type; any other gives text.
    All the parts of one call share one budget, so a long template cannot multiply the caps."""
    return _render(template, context, _Budget())


def render_value(value, context: dict):
    budget = _Budget()

    def walk(value):
        if isinstance(value, str):
            return _render(value, context, budget)
        if isinstance(value, list):
            return [walk(element) for element in value]
        if isinstance(value, dict):
            return {key: walk(element) for key, element in value.items()}
        return value

    return walk(value)


# One call's budget lives beside the calls that start one and reads the caps of this module: a test lowers them here.


class _Budget:
    """What one call of evaluate, is_true, render or render_value may spend."""

    __slots__ = ("cost", "deadline", "items", "chars")

    def __init__(self):
        self.cost = 0
        self.deadline = None  # set by the first charge: compiling (and building the parser once) is not evaluating
        self.items = MAX_RESULT_ITEMS
        self.chars = MAX_RESULT_CHARS

    def charge(self, cost):
        if self.deadline is None:
            self.deadline = time.monotonic() + TIME_LIMIT
        self.cost += cost
        if self.cost > MAX_COST:
            raise _OverCap(f"it went over its cost limit ({MAX_COST} steps)")
        if time.monotonic() > self.deadline:
            raise _OverCap(f"it went over its time limit ({TIME_LIMIT * 1000:.0f} ms)")

    def charge_walk(self, *values):
        """One step for each element under the values, as often as a walk over them meets it."""
        stack = list(values)
        while stack:
            value = stack.pop()
            if isinstance(value, dict):
                self.charge(len(value))
                stack.extend(value.values())
            elif isinstance(value, list):
                self.charge(len(value))
                stack.extend(value)
