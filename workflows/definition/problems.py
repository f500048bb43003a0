"""What validation reports: a problem with its place in the source, and where each value of a parsed document
was written, so a problem found on the data can point back at the line and column of the text."""

import re
from dataclasses import asdict, dataclass

# Every code a Problem may carry, in the order docs/workflows.md explains them.
PROBLEM_CODES = (
    "syntax",
    "too_large",
    "duplicate_key",
    "schema",
    "duplicate_id",
    "unknown_step",
    "nested_needs",
    "route_without_need",
    "cycle",
    "unreachable",
    "expression",
    "join",
    "approvers",
    "unknown_agent",
    "unknown_workflow",
    "unknown_namespace",
)
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition. `path` names the value ("steps[2].needs[0]", "" for the document);
    `line` and `column` are 1-based, None when the source gives no place; `message` is one sentence."""

    path: str
    line: int | None
    column: int | None
    code: str
    message: str

    def __post_init__(self):
        # One style for every message, ours and the expression checker's: a sentence, capital to full stop.
        message = self.message.strip()
        if message and message[0].islower():
            message = message[0].upper() + message[1:]
        if message and message[-1] not in ".?!":
            message += "."
        object.__setattr__(self, "message", message)

    def as_dict(self) -> dict:
        return asdict(self)


class DefinitionInvalid(Exception):
    """Every problem found in a definition, in the order they appear in the source."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        first = self.problems[0] if self.problems else None
        summary = f"{first.path or 'definition'}: {first.message}" if first else "invalid definition"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(summary + more)


def join_path(parent: str, part: str | int) -> str:
    """The path of a child: `steps[2]` for an index, `inputs.topic` for a plain key, `metadata["a b"]` otherwise."""
    if isinstance(part, int):
        return f"{parent}[{part}]"
    if _PLAIN_KEY.match(part):
        return f"{parent}.{part}" if parent else part
    quoted = '"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{parent}[{quoted}]"


def path_of(parts) -> str:
    path = ""
    for part in parts:
        path = join_path(path, part)
    return path


Parts = tuple[str | int, ...]


class Positions:
    """Where each value (and each mapping key) of a parsed document starts, by its path as a tuple of keys
    and indexes; 1-based (line, column)."""

    def __init__(self):
        self.values: dict[Parts, tuple[int, int]] = {}
        self.keys: dict[Parts, tuple[int, int]] = {}

    def at(self, parts: Parts, *, key: bool = False) -> tuple[int | None, int | None]:
        """The place of the value at `parts` (of its key when `key`), else of the nearest enclosing value
        that has one: a missing field is reported where its mapping starts, an alias's inside at the alias."""
        parts = tuple(parts)
        if key and parts in self.keys:
            return self.keys[parts]
        for end in range(len(parts), -1, -1):
            if parts[:end] in self.values:
                return self.values[parts[:end]]
        return None, None

    def problem(self, parts: Parts, code: str, message: str, *, key: bool = False) -> Problem:
        line, column = self.at(parts, key=key)
        return Problem(path=path_of(parts), line=line, column=column, code=code, message=message)
