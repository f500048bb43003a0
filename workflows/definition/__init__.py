"""Workflow definitions (docs/workflows.md): reading YAML or JSON with the place of every value, checking
it against the published schema and the rules a schema cannot say, all problems at once, and the
normalised form the engine runs."""

from workflows.definition.checks import MAX_EXPRESSION_CHARS, MAX_STEPS, Resolver, check, step_count
from workflows.definition.normalising import graph_order, normalise, seconds
from workflows.definition.parsing import MAX_DEPTH, MAX_SOURCE_BYTES, MAX_VALUES, parse_document
from workflows.definition.problems import PROBLEM_CODES, DefinitionInvalid, Problem
from workflows.definition.schema import KINDS, SCHEMA_PATH, schema, schema_problems

__all__ = [
    "KINDS",
    "MAX_DEPTH",
    "MAX_EXPRESSION_CHARS",
    "MAX_SOURCE_BYTES",
    "MAX_STEPS",
    "MAX_VALUES",
    "PROBLEM_CODES",
    "SCHEMA_PATH",
    "DefinitionInvalid",
    "Problem",
    "Resolver",
    "graph_order",
    "normalise",
    "parse",
    "schema",
    "seconds",
    "validate",
]


def parse(source: str, format: str | None = None) -> dict:
    """The data of a definition's text. `format` is "yaml", "json" or None (a document starting with `{` is
    JSON). Raises DefinitionInvalid for text that is not a well-formed YAML or JSON mapping, with its place."""
    data, _positions = parse_document(source, format)
    return data


def validate(source: str, *, resolver: Resolver | None, format: str | None = None) -> dict:
    """The normalised definition of `source`, or DefinitionInvalid with every problem found: the schema,
    references, cycles, steps that can never run, expressions, and (unless `resolver` is None) agents,
    workflows and memory namespaces the owner cannot use."""
    data, positions = parse_document(source, format)
    if (count := step_count(data)) > MAX_STEPS:
        message = f"the definition has {count} steps (nested ones included); the limit is {MAX_STEPS}"
        raise DefinitionInvalid([positions.problem(("steps",), "too_large", message)])
    problems = schema_problems(data, positions) + check(data, positions, resolver)
    if problems:
        raise DefinitionInvalid(_in_reading_order(problems))
    return normalise(data)


def _in_reading_order(problems: list[Problem]) -> list[Problem]:
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda problem: (problem.line is None, problem.line or 0, problem.column or 0))
