"""The published JSON Schema (workflows/schema/workflow-v1.schema.json) applied to a document, its errors
said in words a user acts on: one problem per unknown field (at the field), "unknown step kind" rather
than nine failed alternatives, "give one of input or messages" rather than "not valid under any"."""

import difflib
import functools
import json
from pathlib import Path

from jsonschema import Draft202012Validator

from workflows.definition.problems import Parts, Positions, Problem

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema" / "workflow-v1.schema.json"
KINDS = ("agent", "switch", "parallel", "map", "transform", "memory", "approval", "wait", "workflow")
_TYPE_WORDS = {
    "string": "text",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}


@functools.cache
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


@functools.cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(schema())


@functools.cache
def _pattern_words() -> dict[str, str]:
    """What each pattern of the schema asks for, in words, by the pattern."""
    defs = schema()["$defs"]
    steps = {name: definition["properties"] for name, definition in defs.items() if name.startswith("step.")}
    return {
        schema()["properties"]["name"][
            "pattern"
        ]: "a name of lower-case letters, digits, _ and -, starting with a letter or digit, at most 100 characters",
        defs["name"][
            "pattern"
        ]: "a name of lower-case letters, digits and _, not starting with a digit, at most 63 characters",
        defs["step_id"][
            "pattern"
        ]: "a step id: lower-case letters, digits and _, starting with a letter, at most 63 characters",
        defs["duration"]["pattern"]: "a duration: a number of seconds, or text such as 500ms, 30s, 5m, 2h or 1d",
        steps["step.wait"]["event"][
            "pattern"
        ]: "an event name: lower-case letters, digits, _, . and -, at most 100 characters",
        steps["step.memory"]["namespace"]["pattern"]: "a name of letters, digits, _ and -, at most 100 characters",
    }


def schema_problems(data, positions: Positions) -> list[Problem]:
    problems = []
    for error in _validator().iter_errors(data):
        problems.extend(_problems_of(error, positions))
    return problems


def _short(value) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value) -> str:
    for name, kind in (("boolean", bool), ("integer", int), ("number", float), ("string", str)):
        if isinstance(value, kind):
            return name
    return "object" if isinstance(value, dict) else "array" if isinstance(value, list) else "null"


def _what(instance, parts: Parts) -> str:
    """How to name the mapping an error is about: "an agent step", "a memory search step", "the definition"."""
    if not parts:
        return "the definition"
    kind = instance.get("kind") if isinstance(instance, dict) else None
    if kind in KINDS:
        if kind == "memory" and instance.get("action") in ("search", "write"):
            return f"a memory {instance['action']} step"
        return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} step"
    if len(parts) == 2 and parts[0] == "inputs":
        return f"the input '{parts[1]}'"
    if isinstance(parts[-1], int) and len(parts) >= 2:
        return {"cases": "a switch case", "messages": "a message", "branches": "a branch", "steps": "a step"}.get(
            parts[-2], "this item"
        )
    return f"'{parts[-1]}'"


def _one_of_names(alternatives) -> list[str] | None:
    """The names of a oneOf/anyOf made only of {required: [name]} alternatives, else None."""
    names = []
    for alternative in alternatives:
        if not isinstance(alternative, dict) or set(alternative) != {"required"} or len(alternative["required"]) != 1:
            return None
        names.append(alternative["required"][0])
    return names


def _listed(names, word: str = "or") -> str:
    quoted = [f"'{name}'" for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f" {word} " + quoted[-1]


def _problems_of(error, positions: Positions) -> list[Problem]:
    parts: Parts = tuple(error.absolute_path)
    instance, expected = error.instance, error.validator_value
    validator = error.validator

    def problem(message, at: Parts = parts, *, key=False):
        return positions.problem(at, "schema", message, key=key)

    if "propertyNames" in error.schema_path:
        which = "an input" if parts == ("inputs",) else "an output" if parts == ("outputs",) else "a key"
        words = _pattern_words().get(expected, f"text matching {expected}")
        return [
            problem(f"{_short(instance)} is not allowed as {which} name: use {words}", (*parts, instance), key=True)
        ]
    if validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        what = _what(instance, parts)
        return [
            problem(_unknown_field(name, what, allowed), (*parts, name), key=True)
            for name in instance
            if name not in allowed
        ]
    if validator == "required":
        what = _what(instance, parts)
        return [problem(f"{what} needs '{name}'") for name in expected if name not in instance]
    if validator in ("oneOf", "anyOf") and (names := _one_of_names(expected)) is not None:
        what = _what(instance, parts)
        given = [name for name in names if name in instance]
        if not given:
            count = "one" if validator == "oneOf" else "at least one"
            return [problem(f"{what} needs {count} of {_listed(names)}")]
        message = f"{what} takes only one of {_listed(names)}; it has {_listed(given, 'and')}"
        return [problem(message, (*parts, given[1]), key=True)]
    if validator == "not" and isinstance(expected, dict) and (names := _one_of_names(expected.get("anyOf", []))):
        what = _what(instance, parts)
        return [
            problem(f"'{name}' does not apply to {what}", (*parts, name), key=True)
            for name in names
            if name in instance
        ]
    if validator == "dependentRequired":
        what = _what(instance, parts)
        return [
            problem(f"'{name}' applies to {what} only together with {_listed(needed)}", (*parts, name), key=True)
            for name, needed in expected.items()
            if name in instance and any(other not in instance for other in needed)
        ]
    if validator == "enum":
        if parts and parts[-1] == "kind":
            return [problem(_kind_message(instance, expected, parts))]
        if parts and parts[-1] == "join":
            return [problem(f"{_short(instance)} is not a join: use all, any or {{at_least: n}}")]
        return [problem(f"{_short(instance)} is not one of: {', '.join(map(str, expected))}")]
    if validator == "const":
        if parts == ("version",):
            return [problem(f"version {_short(instance)} is not supported: this is version 1 of the language")]
        return [problem(f"expected {_short(expected)}, not {_short(instance)}")]
    if validator == "type":
        return [problem(_type_message(error, instance, expected))]
    if validator == "pattern":
        words = _pattern_words().get(expected, f"text matching {expected}")
        return [problem(f"{_short(instance)} is not {words}")]
    if validator == "minItems":
        return [problem(_too_few(parts, expected))]
    if validator == "uniqueItems":
        seen, repeated = [], None
        for item in instance:
            if item in seen:
                repeated = item
                break
            seen.append(item)
        return [problem(f"{_short(repeated)} is listed more than once")]
    if validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = {
            "minimum": "at least",
            "maximum": "at most",
            "exclusiveMinimum": "more than",
            "exclusiveMaximum": "less than",
        }[validator]
        return [
            problem(
                f"{_short(instance)} is too {'small' if 'inimum' in validator else 'large'}: it must be {bound} {expected}"
            )
        ]
    if validator == "minProperties":
        if parts == ("budget",):
            return [problem("a budget gives tokens, usd or both")]
        return [problem("must not be empty")]
    if validator == "minLength":
        return [problem("must not be empty")]
    if validator == "maxLength":
        return [problem(f"is longer than {expected} characters")]
    return [problem(error.message)]


def _unknown_field(name: str, what: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown field '{name}' in {what}; {hint}its fields are: {', '.join(allowed)}"


def _kind_message(instance, allowed, parts: Parts) -> str:
    if instance not in KINDS:
        return f"unknown step kind {_short(instance)}; the kinds are: {', '.join(KINDS)}"
    where = "a map's step" if len(parts) >= 2 and parts[-2] == "step" else "a parallel branch"
    return f"a {instance} step cannot be {where}; allowed there: {', '.join(allowed)}"


def _type_message(error, instance, expected) -> str:
    defs = schema()["$defs"]
    if error.schema is defs["duration"]:
        wanted = "a duration (a number of seconds, or text such as 30s, 5m or 1d)"
    elif error.schema is defs["condition"]:
        wanted = "a CEL condition (text), or true or false"
    elif error.schema is defs["expression"]:
        wanted = "a CEL expression (text)"
    elif error.schema is defs["template"]:
        wanted = "text (a template)"
    else:
        types = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_TYPE_WORDS.get(name, name) for name in types)
    got = _TYPE_WORDS[_type_name(instance)]
    return (
        f"expected {wanted}, not {got} ({_short(instance)})"
        if got not in ("a mapping", "a list")
        else f"expected {wanted}, not {got}"
    )


def _too_few(parts: Parts, minimum: int) -> str:
    if parts == ("steps",):
        return "a definition needs at least one step"
    if parts and parts[-1] == "branches":
        return "a parallel step needs at least two branches"
    if parts and parts[-1] == "cases":
        return "a switch needs at least one case"
    return f"needs at least {minimum} item{'s' if minimum != 1 else ''}"
