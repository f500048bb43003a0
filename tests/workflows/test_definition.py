"""The workflow definition language (docs/workflows.md): parsing with places, the published schema, every
problem at once with its line and column, normalisation, and the examples. No database: a fake resolver
stands in for the owner's agents, workflows and namespaces."""

import copy
import json
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from workflows.definition import (
    KINDS,
    MAX_EXPRESSION_CHARS,
    MAX_SOURCE_BYTES,
    MAX_STEPS,
    PROBLEM_CODES,
    SCHEMA_PATH,
    DefinitionInvalid,
    Problem,
    graph_order,
    normalise,
    parse,
    schema,
    seconds,
    validate,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "workflows.md"
EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "workflows" / "examples").glob("*.yaml"))
DEMO_AGENTS = {"researcher", "writer", "critic", "judge", "summarizer"}


class FakeResolver:
    """The owner's world: the agents, workflows and namespaces they may use; counts what it was asked."""

    def __init__(self, agents=DEMO_AGENTS, workflows=(), namespaces=("default",)):
        self.known = {"agent": set(agents), "workflow": set(workflows), "namespace": set(namespaces)}
        self.asked = []

    def agent(self, name):
        self.asked.append(("agent", name))
        return name in self.known["agent"]

    def workflow(self, name):
        self.asked.append(("workflow", name))
        return name in self.known["workflow"]

    def namespace(self, name):
        self.asked.append(("namespace", name))
        return name in self.known["namespace"]


def doc(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def problems_of(source: str, resolver=None, **options) -> list[Problem]:
    with pytest.raises(DefinitionInvalid) as caught:
        validate(source, resolver=resolver, **options)
    return caught.value.problems


def the_one(problems: list[Problem], code: str) -> Problem:
    found = [problem for problem in problems if problem.code == code]
    assert len(found) == 1, problems
    return found[0]


def text_at(source: str, problem: Problem) -> str:
    """The source from the problem's line and column on, to the end of that line."""
    assert problem.line is not None and problem.column is not None, problem
    return source.splitlines()[problem.line - 1][problem.column - 1 :]


def minimal(**step) -> dict:
    return {"version": 1, "name": "t", "steps": [{"id": "a", "kind": "transform", "output": 1, **step}]}


# The examples


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_each_example_validates_with_the_demo_agents_and_the_default_namespace(path):
    resolver = FakeResolver()

    definition = validate(path.read_text(), resolver=resolver)

    assert definition["version"] == 1
    assert {name for kind, name in resolver.asked if kind == "agent"} <= DEMO_AGENTS
    assert {name for kind, name in resolver.asked if kind == "namespace"} <= {"default"}


def test_the_three_promised_examples_are_there():
    assert {path.name for path in EXAMPLES} >= {
        "research-review.yaml",
        "panel-and-judge.yaml",
        "documents-to-memory.yaml",
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_the_json_form_of_each_example_validates_to_the_same_definition(path):
    as_json = json.dumps(yaml.safe_load(path.read_text()), indent=2)

    assert validate(as_json, resolver=FakeResolver()) == validate(path.read_text(), resolver=FakeResolver())
    assert validate(as_json, resolver=None, format="json") == validate(path.read_text(), resolver=None)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_each_example_is_valid_under_the_published_schema_alone(path):
    Draft202012Validator(schema()).validate(parse(path.read_text()))


def test_the_research_review_example_branches_on_quality_and_on_the_approval():
    definition = validate((EXAMPLES[0].parent / "research-review.yaml").read_text(), resolver=None)
    steps = {step["id"]: step for step in definition["steps"]}

    assert steps["quality"]["routes"] == ["accept", "revise"]
    assert steps["approve"]["routes"] == ["publish", "expired"]
    assert steps["approve"]["expires_in"] == 2 * 86400.0
    assert steps["approve"]["approvers"] == {"users": [], "role": "operator"}


def test_the_panel_example_joins_on_two_of_three_answers():
    definition = validate((EXAMPLES[0].parent / "panel-and-judge.yaml").read_text(), resolver=None)
    panel = definition["steps"][0]

    assert (panel["kind"], panel["join"], panel["at_least"], len(panel["branches"])) == (
        "parallel",
        {"at_least": 2},
        2,
        3,
    )


def test_the_documents_example_maps_twice_and_writes_memories():
    definition = validate((EXAMPLES[0].parent / "documents-to-memory.yaml").read_text(), resolver=None)
    summaries, remember = definition["steps"]

    assert (summaries["kind"], summaries["max_concurrency"], summaries["step"]["agent"]) == ("map", 5, "summarizer")
    assert (remember["step"]["kind"], remember["step"]["action"], remember["needs"]) == (
        "memory",
        "write",
        ["summaries"],
    )


# Every problem code, with its place


CODES = [
    (
        "schema",
        """
        version: 1
        name: t
        steps:
          - id: a
            kind: transform
            output: 1
            ouptut: 2
        """,
        None,
        "steps[0].ouptut",
        "ouptut",
    ),
    (
        "duplicate_id",
        """
        version: 1
        name: t
        steps:
          - id: a
            kind: transform
            output: 1
          - id: b
            kind: parallel
            branches:
              - {id: a, kind: transform, output: 2}
              - {id: c, kind: transform, output: 3}
        """,
        None,
        "steps[1].branches[0].id",
        "a, kind",
    ),
    (
        "unknown_step",
        """
        version: 1
        name: t
        steps:
          - {id: a, kind: transform, output: 1}
          - id: b
            kind: transform
            needs: [a, missing]
            output: 2
        """,
        None,
        "steps[1].needs[1]",
        "missing]",
    ),
    (
        "nested_needs",
        """
        version: 1
        name: t
        steps:
          - {id: a, kind: transform, output: 1}
          - id: p
            kind: parallel
            branches:
              - id: x
                kind: transform
                needs: [a]
                output: 1
              - {id: y, kind: transform, output: 2}
        """,
        None,
        "steps[1].branches[0].needs",
        "needs: [a]",
    ),
    (
        "route_without_need",
        """
        version: 1
        name: t
        steps:
          - id: choose
            kind: switch
            cases:
              - when: inputs.size > 3
                steps: [big]
          - {id: big, kind: transform, output: 1}
        """,
        None,
        "steps[0].cases[0].steps[0]",
        "big]",
    ),
    (
        "cycle",
        """
        version: 1
        name: t
        steps:
          - {id: a, kind: transform, output: 1, needs: [b]}
          - {id: b, kind: transform, output: 2, needs: [a]}
        """,
        None,
        "steps[0].needs[0]",
        "b]}",
    ),
    (
        "unreachable",
        """
        version: 1
        name: t
        steps:
          - id: a
            kind: transform
            if: "false"
            output: 1
        """,
        None,
        "steps[0].if",
        '"false"',
    ),
    (
        "expression",
        """
        version: 1
        name: t
        steps:
          - id: a
            kind: agent
            agent: writer
            input: "Write about ${secrets.key}"
        """,
        None,
        "steps[0].input",
        '"Write about',
    ),
    (
        "join",
        """
        version: 1
        name: t
        steps:
          - id: p
            kind: parallel
            join: {at_least: 3}
            branches:
              - {id: x, kind: transform, output: 1}
              - {id: y, kind: transform, output: 2}
        """,
        None,
        "steps[0].join.at_least",
        "3}",
    ),
    (
        "approvers",
        """
        version: 1
        name: t
        steps:
          - id: ok
            kind: approval
            approvers: {users: [alice]}
            required: 2
        """,
        None,
        "steps[0].required",
        "2",
    ),
    (
        "unknown_agent",
        """
        version: 1
        name: t
        steps:
          - id: a
            kind: agent
            agent: ghost
            input: hello
        """,
        FakeResolver(),
        "steps[0].agent",
        "ghost",
    ),
    (
        "unknown_workflow",
        """
        version: 1
        name: t
        steps:
          - id: a
            kind: workflow
            workflow: ghost
        """,
        FakeResolver(),
        "steps[0].workflow",
        "ghost",
    ),
    (
        "unknown_namespace",
        """
        version: 1
        name: t
        steps:
          - id: a
            kind: memory
            action: search
            namespace: ghost
            query: anything
        """,
        FakeResolver(),
        "steps[0].namespace",
        "ghost",
    ),
    (
        "duplicate_key",
        """
        version: 1
        name: t
        steps:
          - id: a
            kind: transform
            output: 1
            output: 2
        """,
        None,
        "steps[0].output",
        "output: 2",
    ),
]


@pytest.mark.parametrize(("code", "source", "resolver", "path", "text"), CODES, ids=[case[0] for case in CODES])
def test_each_problem_code_points_at_the_token_that_caused_it(code, source, resolver, path, text):
    source = doc(source)

    problem = the_one(problems_of(source, resolver), code)

    assert problem.path == path
    assert text_at(source, problem).startswith(text), (problem, text_at(source, problem))
    assert problem.message


def test_a_syntax_error_has_its_line_and_column():
    source = doc(
        """
        version: 1
        name: t
        steps:
          - id: a
            kind: transform
            output: "unterminated
        """
    )

    problem = the_one(problems_of(source), "syntax")

    assert (problem.path, problem.line) == ("", 7)


def test_a_json_syntax_error_has_its_line_and_column():
    source = '{\n  "version": 1,\n  "name": "t"\n  "steps": []\n}'

    problem = the_one(problems_of(source, format="json"), "syntax")

    assert (problem.line, problem.column) == (4, 3)
    assert "expected ','" in problem.message


def test_problems_in_a_json_source_point_at_the_json_token():
    source = json.dumps(
        {
            "version": 1,
            "name": "t",
            "steps": [{"id": "a", "kind": "transform", "output": 1, "needs": ["zz"]}],
        },
        indent=2,
    )

    problem = the_one(problems_of(source), "unknown_step")

    assert problem.path == "steps[0].needs[0]"
    assert text_at(source, problem).startswith('"zz"')


def test_every_problem_is_reported_at_once_in_reading_order():
    source = doc(
        """
        version: 1
        name: t
        steps:
          - id: a
            kind: agnet
          - id: b
            kind: agent
            agent: ghost
            needs: [nowhere]
            input: "${nope}"
          - id: b
            kind: transform
            output: 1
            extra: true
          - {id: c, kind: transform, output: 1, needs: [d]}
          - {id: d, kind: transform, output: 1, needs: [c]}
        """
    )

    problems = problems_of(source, FakeResolver())

    assert [problem.code for problem in problems] == [
        "schema",  # unknown kind
        "unknown_agent",
        "unknown_step",
        "expression",
        "duplicate_id",
        "schema",  # extra field
        "cycle",
    ]
    assert [problem.line for problem in problems] == sorted(problem.line for problem in problems)


def test_a_cycle_names_its_members_in_order():
    source = doc(
        """
        version: 1
        name: t
        steps:
          - {id: start, kind: transform, output: 1}
          - {id: a, kind: transform, output: 1, needs: [start, c]}
          - {id: b, kind: transform, output: 1, needs: [a]}
          - {id: c, kind: transform, output: 1, needs: [b]}
        """
    )

    problem = the_one(problems_of(source), "cycle")

    assert "a → c → b → a" in problem.message
    assert problem.path == "steps[1].needs[1]"


def test_a_step_that_needs_itself_is_a_cycle():
    problem = the_one(problems_of(json.dumps(minimal(needs=["a"]))), "cycle")

    assert problem.message == "'a' needs itself."


def test_two_separate_cycles_are_two_problems():
    source = doc(
        """
        version: 1
        name: t
        steps:
          - {id: a, kind: transform, output: 1, needs: [b]}
          - {id: b, kind: transform, output: 1, needs: [a]}
          - {id: c, kind: transform, output: 1, needs: [d]}
          - {id: d, kind: transform, output: 1, needs: [c]}
        """
    )

    assert [problem.path for problem in problems_of(source) if problem.code == "cycle"] == [
        "steps[0].needs[0]",
        "steps[2].needs[0]",
    ]


# Messages a user acts on


@pytest.mark.parametrize(
    ("step", "path", "message"),
    [
        ({"kind": "transfrom"}, "steps[0].kind", "Unknown step kind 'transfrom'"),
        ({"kind": "agent", "input": "x"}, "steps[0]", "An agent step needs 'agent'."),
        ({"kind": "agent", "agent": "writer"}, "steps[0]", "needs one of 'input' or 'messages'"),
        (
            {"kind": "agent", "agent": "writer", "input": "x", "messages": [{"role": "user", "content": "y"}]},
            "steps[0].messages",
            "only one of 'input' or 'messages'",
        ),
        (
            {"kind": "wait", "for": "5m", "timeout": "1h"},
            "steps[0].timeout",
            "'timeout' applies to a wait step only together with 'event'",
        ),
        ({"kind": "wait", "for": "5 minutes"}, "steps[0].for", "is not a duration"),
        (
            {"kind": "memory", "action": "search", "namespace": "default", "query": "q", "content": "c"},
            "steps[0].content",
            "'content' does not apply to a memory search step",
        ),
        (
            {"kind": "memory", "action": "write", "namespace": "default"},
            "steps[0]",
            "A memory write step needs 'content'.",
        ),
        ({"kind": "approval", "approvers": {}}, "steps[0].approvers", "needs at least one of 'users' or 'role'"),
        (
            {"kind": "map", "items": "inputs.xs", "step": {"id": "m", "kind": "map", "items": "[]", "step": {}}},
            "steps[0].step.kind",
            "A map step cannot be a map's step",
        ),
        ({"kind": "transform", "output": 1, "timeout": -1}, "steps[0].timeout", "it must be at least 0"),
        ({"kind": "transform", "output": 1, "if": 3}, "steps[0].if", "Expected a CEL condition"),
        ({"id": "Bad-Id", "kind": "transform", "output": 1}, "steps[0].id", "is not a step id"),
    ],
)
def test_schema_problems_say_what_to_do(step, path, message):
    definition = {"version": 1, "name": "t", "steps": [{"id": "a", **step}]}

    problems = [problem for problem in problems_of(json.dumps(definition)) if problem.code == "schema"]

    assert len(problems) == 1, problems
    assert problems[0].path == path
    assert message in problems[0].message


def test_an_unknown_kind_is_one_problem_not_one_per_kind():
    problems = problems_of(doc("version: 1\nname: t\nsteps:\n  - {id: a, kind: nope, agent: x}\n"))

    assert [problem.message for problem in problems] == [
        "Unknown step kind 'nope'; the kinds are: " + ", ".join(KINDS) + "."
    ]


def test_a_parallel_branch_may_not_be_a_switch():
    branches = [
        {"id": "s", "kind": "switch", "cases": [{"when": "true", "steps": []}]},
        {"id": "t", "kind": "transform", "output": 1},
    ]
    definition = {"version": 1, "name": "t", "steps": [{"id": "p", "kind": "parallel", "branches": branches}]}

    problem = the_one(problems_of(json.dumps(definition)), "schema")

    assert problem.path == "steps[0].branches[0].kind"
    assert problem.message.startswith("A switch step cannot be a parallel branch")


def test_top_level_problems_name_the_field():
    source = doc(
        """
        version: 2
        name: Not A Name
        inputs:
          Bad: {type: string}
        budget: {}
        steps: []
        """
    )

    problems = {problem.path: problem for problem in problems_of(source)}

    assert "Version 2 is not supported" in problems["version"].message
    assert "is not a name" in problems["name"].message
    assert "not allowed as an input name" in problems["inputs.Bad"].message
    assert problems["inputs.Bad"].line == 4
    assert problems["budget"].message == "A budget gives tokens, usd or both."
    assert problems["steps"].message == "A definition needs at least one step."


def test_an_input_default_must_have_the_inputs_type():
    definition = {**minimal(), "inputs": {"depth": {"type": "integer", "default": "deep"}}}

    problem = the_one(problems_of(json.dumps(definition)), "schema")

    assert problem.path == "inputs.depth.default"


# Unreachable steps


def unreachable_paths(source: str) -> list[str]:
    return [problem.path for problem in problems_of(doc(source)) if problem.code == "unreachable"]


def test_the_dependents_of_a_cycle_are_unreachable_but_the_cycle_is_reported_once():
    source = """
        version: 1
        name: t
        steps:
          - {id: a, kind: transform, output: 1, needs: [b]}
          - {id: b, kind: transform, output: 1, needs: [a]}
          - {id: c, kind: transform, output: 1, needs: [a]}
          - {id: d, kind: transform, output: 1, needs: [c]}
        """

    assert unreachable_paths(source) == ["steps[2].needs[0]", "steps[3].needs[0]"]


def test_the_dependents_of_a_step_naming_an_unknown_step_are_unreachable():
    source = doc(
        """
        version: 1
        name: t
        steps:
          - {id: a, kind: transform, output: 1, needs: [ghost]}
          - {id: b, kind: transform, output: 1, needs: [a]}
        """
    )

    problems = problems_of(source)

    assert [(problem.code, problem.path) for problem in problems] == [
        ("unknown_step", "steps[0].needs[0]"),
        ("unreachable", "steps[1].needs[0]"),
    ]
    assert "needs a step that does not exist" in problems[1].message


def test_a_step_whose_if_is_literally_false_and_what_needs_only_it_are_unreachable():
    source = """
        version: 1
        name: t
        steps:
          - {id: a, kind: transform, output: 1, if: false}
          - {id: b, kind: transform, output: 1, needs: [a]}
          - {id: c, kind: transform, output: 1}
          - {id: d, kind: transform, output: 1, needs: [a, c]}
        """

    assert unreachable_paths(source) == ["steps[0].if", "steps[1].needs"]


def test_cases_after_an_always_true_case_and_their_only_targets_are_unreachable():
    source = """
        version: 1
        name: t
        steps:
          - id: choose
            kind: switch
            cases:
              - when: true
                steps: [x]
              - when: inputs.n > 1
                steps: [y, z]
              - when: "false"
                steps: [z]
            default: [w]
          - {id: x, kind: transform, output: 1, needs: [choose]}
          - {id: y, kind: transform, output: 1, needs: [choose]}
          - {id: z, kind: transform, output: 1, needs: [choose]}
          - {id: w, kind: transform, output: 1, needs: [choose]}
        """

    assert unreachable_paths(source) == [
        "steps[0].cases[1]",
        "steps[0].cases[2]",
        "steps[0].default",
        "steps[2].id",
        "steps[3].id",
        "steps[4].id",
    ]


def test_a_case_whose_when_is_false_leaves_its_only_targets_unreachable():
    source = """
        version: 1
        name: t
        steps:
          - id: choose
            kind: switch
            cases:
              - {when: "false", steps: [never, sometimes]}
              - {when: inputs.go, steps: [sometimes]}
          - {id: never, kind: transform, output: 1, needs: [choose]}
          - {id: sometimes, kind: transform, output: 1, needs: [choose]}
        """

    assert unreachable_paths(source) == ["steps[0].cases[0]", "steps[1].id"]


def test_a_step_after_both_exclusive_branches_of_a_switch_is_reachable():
    source = doc(
        """
        version: 1
        name: t
        steps:
          - id: choose
            kind: switch
            cases: [{when: inputs.go, steps: [left]}]
            default: [right]
          - {id: left, kind: transform, output: 1, needs: [choose]}
          - {id: right, kind: transform, output: 2, needs: [choose]}
          - {id: merge, kind: transform, output: 3, needs: [left, right]}
        """
    )

    definition = validate(source, resolver=None)

    assert definition["steps"][0]["routes"] == ["left", "right"]


def test_a_nested_step_whose_if_is_literally_false_is_unreachable():
    definition = {
        "version": 1,
        "name": "t",
        "steps": [
            {
                "id": "m",
                "kind": "map",
                "items": "inputs.xs",
                "step": {"id": "s", "kind": "transform", "output": 1, "if": "false"},
            }
        ],
    }

    assert [problem.path for problem in problems_of(json.dumps(definition))] == ["steps[0].step.if"]


# Expressions


def test_item_may_be_read_only_inside_a_maps_step():
    source = doc(
        """
        version: 1
        name: t
        steps:
          - id: m
            kind: map
            items: item.children
            step:
              id: each
              kind: transform
              if: item.size > 0
              output: {name: "${item.name}"}
          - id: after
            kind: transform
            needs: [m]
            output: "${item}"
        outputs:
          last: "${item}"
        """
    )

    problems = problems_of(source)

    assert [(problem.code, problem.path) for problem in problems] == [
        ("expression", "steps[0].items"),
        ("expression", "steps[1].output"),
        ("expression", "outputs.last"),
    ]


def test_every_string_of_a_templated_value_is_checked_where_it_is():
    definition = minimal(output={"ok": "${inputs.x}", "list": [1, "${bad name}"]})

    problem = the_one(problems_of(json.dumps(definition)), "expression")

    assert problem.path == "steps[0].output.list[1]"


# The resolver


def test_the_resolver_is_asked_once_per_name_and_about_nested_steps_too():
    definition = {
        "version": 1,
        "name": "t",
        "steps": [
            {"id": "a", "kind": "agent", "agent": "writer", "input": "x"},
            {"id": "b", "kind": "agent", "agent": "writer", "input": "y"},
            {
                "id": "m",
                "kind": "map",
                "items": "inputs.xs",
                "step": {"id": "c", "kind": "agent", "agent": "stranger", "input": "${item}"},
            },
        ],
    }
    resolver = FakeResolver()

    problem = the_one(problems_of(json.dumps(definition), resolver), "unknown_agent")

    assert problem.path == "steps[2].step.agent"
    assert sorted(resolver.asked) == [("agent", "stranger"), ("agent", "writer")]


def test_without_a_resolver_names_are_not_checked():
    definition = minimal()
    definition["steps"][0] = {"id": "a", "kind": "agent", "agent": "anyone", "input": "x"}

    assert validate(json.dumps(definition), resolver=None)["steps"][0]["agent"] == "anyone"


# Parsing: hostile and unusual sources


def billion_laughs() -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        name, previous = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_a_billion_laughs_document_is_refused_quickly():
    started = time.perf_counter()

    problem = the_one(problems_of(billion_laughs()), "too_large")

    assert time.perf_counter() - started < 1
    assert "aliases" in problem.message


def test_a_ten_megabyte_source_is_refused_quickly():
    source = "version: 1\nname: t\ndescription: " + "x" * 10_000_000 + "\n"
    started = time.perf_counter()

    problem = the_one(problems_of(source), "too_large")

    assert time.perf_counter() - started < 0.5
    assert "256 KB" in problem.message


def test_a_source_just_under_the_cap_is_read():
    padding = "# " + "x" * (MAX_SOURCE_BYTES - 200) + "\n"

    assert parse(padding + yaml.safe_dump(minimal()))["name"] == "t"


@pytest.mark.parametrize(
    "source",
    [
        "a: " + "[" * 70 + "]" * 70,
        "- " * 5000 + "x",
        '{"a": ' + "[" * 50_000,
    ],
    ids=["yaml flow", "yaml block", "json"],
)
def test_deep_nesting_is_refused_without_recursing(source):
    problem = problems_of(source)[0]

    assert problem.code in ("too_large", "syntax")


def test_more_steps_than_the_limit_are_refused_before_anything_else_is_checked():
    steps = [{"id": f"s{index}", "kind": "nope"} for index in range(MAX_STEPS + 1)]

    problems = problems_of(json.dumps({"version": 1, "name": "t", "steps": steps}))

    assert [(problem.code, problem.path) for problem in problems] == [("too_large", "steps")]


def test_expressions_past_their_budget_are_one_problem_and_are_not_compiled():
    template = "${inputs.text + '" + "x" * 1000 + "'}"
    count = MAX_EXPRESSION_CHARS // len(template) + 2
    definition = minimal(output=[template.replace("x", str(index % 10), 1) for index in range(count)])
    started = time.perf_counter()

    problem = the_one(problems_of(json.dumps(definition)), "too_large")

    assert problem.path == f"steps[0].output[{count - 2}]"
    assert time.perf_counter() - started < 2


def test_a_recursive_alias_is_refused():
    assert "anchor" in the_one(problems_of("a: &x [1, *x]\n"), "syntax").message


def test_anchors_and_aliases_are_expanded():
    source = doc(
        """
        version: 1
        name: t
        steps:
          - {id: a, kind: transform, output: 1, retries: &retry {max: 3, backoff: 2s}}
          - {id: b, kind: transform, output: 2, retries: *retry}
        """
    )

    steps = validate(source, resolver=None)["steps"]

    assert steps[0]["retries"] == steps[1]["retries"] == {"max": 3, "backoff": 2.0, "factor": 2.0, "max_delay": 60.0}


def test_yaml_merge_keys_are_refused_with_a_hint():
    source = "base: &b {kind: transform}\nstep: {<<: *b, id: a}\n"

    assert "merge keys" in the_one(problems_of(source), "syntax").message


@pytest.mark.parametrize(
    "value",
    [
        "!foo x",
        "!!python/object/apply:os.system ['ls']",
        "!!binary aGk=",
        "!!set {a, b}",
        "!!timestamp 2025-01-01",
        "!!omap [a: 1]",
    ],
)
def test_custom_and_non_json_tags_are_refused(value):
    problem = the_one(problems_of(f"version: 1\nname: t\ndescription: {value}\n"), "syntax")

    assert "tag" in problem.message
    assert (problem.line, problem.column) == (3, 14)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("on", "on"),
        ("yes", "yes"),
        ("No", "No"),
        ("2025-01-01T10:00:00Z", "2025-01-01T10:00:00Z"),
        ("1_000", "1_000"),
        ("true", True),
        ("False", False),
        ("~", None),
        ("null", None),
        ("42", 42),
        ("-7", -7),
        ("0x1F", 31),
        ("0o17", 15),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ('"42"', "42"),
        ("!!str 42", "42"),
        ('!!int "42"', 42),
        ("!!float 1", 1.0),
    ],
)
def test_plain_values_follow_the_yaml_1_2_core_schema(text, value):
    read = parse(f"value: {text}\n")["value"]

    assert read == value and type(read) is type(value)


@pytest.mark.parametrize("text", [".inf", "-.Inf", ".nan", "1e999"])
def test_numbers_json_cannot_hold_are_refused(text):
    assert "not a JSON number" in the_one(problems_of(f"value: {text}\n"), "syntax").message


def test_mapping_keys_are_always_text():
    assert parse("1: a\ntrue: b\n") == {"1": "a", "true": "b"}


def test_a_list_as_a_key_is_refused():
    assert the_one(problems_of("? [a]\n: b\n"), "syntax").line == 1


def test_every_duplicate_key_is_reported_with_the_line_of_the_first():
    source = doc(
        """
        version: 1
        name: t
        name: u
        steps:
          - {id: a, kind: transform, output: 1, id: b}
        """
    )

    problems = problems_of(source)

    assert [(problem.code, problem.path, problem.line) for problem in problems] == [
        ("duplicate_key", "name", 3),
        ("duplicate_key", "steps[0].id", 5),
    ]
    assert "first on line 2" in problems[0].message


def test_duplicate_keys_in_json_are_reported_too():
    source = '{"version": 1,\n "version": 1, "name": "t", "steps": []}'

    problem = the_one(problems_of(source), "duplicate_key")

    assert (problem.path, problem.line, problem.column) == ("version", 2, 2)


def test_a_second_yaml_document_is_refused():
    assert "one YAML document" in the_one(problems_of("a: 1\n---\nb: 2\n"), "syntax").message


@pytest.mark.parametrize(
    ("source", "what"),
    [("", "empty"), ("- a\n- b\n", "a list"), ("just text\n", "a string"), ("[]", "a list")],
)
def test_a_document_that_is_not_a_mapping_is_refused(source, what):
    with pytest.raises(DefinitionInvalid) as caught:
        parse(source)

    assert caught.value.problems[0].code == "schema"
    assert what in caught.value.problems[0].message


def test_a_source_starting_with_a_brace_is_json_and_else_yaml_flow():
    assert parse('{"version": 1}') == {"version": 1}
    assert parse("{version: 1, name: t}") == {"version": 1, "name": "t"}
    assert the_one(problems_of("{version: 1}", format="json"), "syntax").column == 2


def test_a_byte_order_mark_is_ignored():
    assert parse("\ufeffversion: 1\n") == {"version": 1}


def test_an_unknown_format_is_a_programming_error():
    with pytest.raises(ValueError):
        parse("a: 1", format="toml")


def test_every_message_is_one_sentence():
    problem = Problem(path="", line=None, column=None, code="schema", message="something is off")

    assert problem.message == "Something is off."
    assert Problem("", None, None, "schema", "'a' needs itself?").message == "'a' needs itself?"


def test_a_problem_reads_as_a_dict_and_the_exception_summarises():
    with pytest.raises(DefinitionInvalid) as caught:
        validate(doc("version: 1\nname: t\nsteps:\n  - {id: a, kind: nope}\n"), resolver=None)

    assert caught.value.problems[0].as_dict() == {
        "path": "steps[0].kind",
        "line": 4,
        "column": 19,
        "code": "schema",
        "message": "Unknown step kind 'nope'; the kinds are: " + ", ".join(KINDS) + ".",
    }
    assert str(caught.value).startswith("steps[0].kind: Unknown step kind")


# Normalisation


def test_normalisation_fills_every_default():
    source = doc(
        """
        version: 1
        name: t
        inputs:
          topic: {type: string}
          depth: {default: 2}
          tone: {required: false}
        steps:
          - {id: a, kind: agent, agent: writer, input: "${inputs.topic}"}
          - {id: b, kind: memory, action: search, namespace: default, query: q, needs: [a]}
          - {id: c, kind: memory, action: write, namespace: default, content: x, expires_in: 1h}
          - {id: d, kind: wait, event: signed, timeout: 2h}
          - {id: e, kind: wait, for: 500ms}
          - {id: f, kind: approval, approvers: {users: [alice]}}
          - {id: g, kind: workflow, workflow: child}
          - id: h
            kind: map
            items: inputs.topic
            step: {id: i, kind: transform, output: "${item}"}
        """
    )

    definition = validate(source, resolver=None)
    steps = {step["id"]: step for step in definition["steps"]}

    assert definition["inputs"] == {
        "topic": {"type": "string", "required": True},
        "depth": {"type": "integer", "required": False, "default": 2},
        "tone": {"type": "string", "required": False},
    }
    assert (definition["outputs"], definition["budget"], definition["on_failure"]) == ({}, None, "stop")
    assert steps["a"]["needs"] == [] and steps["a"]["if"] is None and steps["a"]["options"] == {}
    assert steps["a"]["retries"] == {"max": 0, "backoff": 1.0, "factor": 2.0, "max_delay": 60.0}
    assert [steps[name]["timeout"] for name in "abcdefgh"] == [300.0, 300.0, 300.0, 7200.0, None, None, 300.0, None]
    assert (steps["b"]["k"], steps["b"]["filters"]) == (5, {})
    assert (steps["c"]["metadata"], steps["c"]["expires_in"]) == ({}, 3600.0)
    assert steps["e"]["for"] == 0.5
    assert steps["f"] == {
        **steps["f"],
        "approvers": {"users": ["alice"], "role": None},
        "required": 1,
        "expires_in": 86400.0,
        "context": None,
        "branches": {"approved": [], "rejected": [], "expired": []},
        "routes": [],
    }
    assert steps["g"]["inputs"] == {}
    assert (steps["h"]["max_concurrency"], steps["h"]["on_error"], steps["h"]["step"]["needs"]) == (4, "stop", [])


@pytest.mark.parametrize(
    ("join", "at_least"),
    [(None, 3), ("all", 3), ("any", 1), ({"at_least": 2}, 2)],
)
def test_a_join_becomes_a_number_of_branches_and_keeps_how_it_was_written(join, at_least):
    branches = [{"id": name, "kind": "transform", "output": 1} for name in "xyz"]
    step = {"id": "p", "kind": "parallel", "branches": branches, **({"join": join} if join else {})}

    parallel = validate(json.dumps({"version": 1, "name": "t", "steps": [step]}), resolver=None)["steps"][0]

    assert (parallel["join"], parallel["at_least"]) == (join or "all", at_least)


def test_conditions_written_as_bare_booleans_become_cel_text():
    source = doc(
        """
        version: 1
        name: t
        steps:
          - {id: s, kind: switch, cases: [{when: true, steps: [a]}], if: true}
          - {id: a, kind: transform, output: 1, needs: [s]}
        """
    )

    switch = validate(source, resolver=None)["steps"][0]

    assert (switch["if"], switch["cases"][0]["when"], switch["default"], switch["routes"]) == (
        "true",
        "true",
        [],
        ["a"],
    )


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        (5, 5.0),
        (0.25, 0.25),
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1.5h", 5400.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
    ],
)
def test_durations_become_seconds(duration, expected):
    assert seconds(duration) == expected


def test_retries_are_filled_and_their_durations_converted():
    definition = validate(json.dumps(minimal(retries={"max": 3, "backoff": "2s", "max_delay": "1m"})), resolver=None)

    assert definition["steps"][0]["retries"] == {"max": 3, "backoff": 2.0, "factor": 2.0, "max_delay": 60.0}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_normalisation_is_idempotent_and_leaves_its_argument_alone(path):
    data = parse(path.read_text())
    before = copy.deepcopy(data)

    once = normalise(data)

    assert normalise(once) == once
    assert data == before


def test_the_normalised_definition_keeps_the_order_of_the_steps():
    definition = validate((EXAMPLES[0].parent / "research-review.yaml").read_text(), resolver=None)

    assert [step["id"] for step in definition["steps"]] == [
        "research",
        "draft",
        "review",
        "quality",
        "accept",
        "revise",
        "article",
        "approve",
        "publish",
        "expired",
    ]


# Graph order


def test_graph_order_puts_needs_first_and_otherwise_keeps_the_written_order():
    definition = {
        "steps": [
            {"id": "report", "needs": ["left", "right"]},
            {"id": "right", "needs": ["start"]},
            {"id": "start"},
            {"id": "left", "needs": ["start"]},
            {"id": "alone"},
        ]
    }

    assert graph_order(definition) == ["start", "right", "left", "report", "alone"]


def test_graph_order_of_an_example_respects_every_need():
    definition = validate((EXAMPLES[0].parent / "research-review.yaml").read_text(), resolver=None)
    order = graph_order(definition)

    for step in definition["steps"]:
        assert all(order.index(need) < order.index(step["id"]) for need in step["needs"])


def test_graph_order_refuses_a_cycle():
    with pytest.raises(ValueError, match="cycle"):
        graph_order({"steps": [{"id": "a", "needs": ["b"]}, {"id": "b", "needs": ["a"]}]})


# The schema file


def walk(node, where=()):
    """Every sub-schema with where it is, not descending into if/then (they constrain, they declare nothing)."""
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            if key not in ("if", "then"):
                yield from walk(value, (*where, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, (*where, index))


def test_the_schema_file_is_a_valid_draft_2020_12_schema():
    published = json.loads(SCHEMA_PATH.read_text())

    Draft202012Validator.check_schema(published)
    assert published["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert published["$id"] == "https://switchboard.dev/schemas/workflow-v1.json"


def test_the_schema_has_one_definition_per_kind_and_dispatches_on_the_kinds():
    defs = schema()["$defs"]

    assert {name.removeprefix("step.") for name in defs if name.startswith("step.")} == set(KINDS)
    assert defs["step"]["properties"]["kind"]["enum"] == list(KINDS)
    assert set(defs["branch_step"]["properties"]["kind"]["enum"]) == set(KINDS) - {"switch", "approval", "parallel"}
    assert set(defs["mapped_step"]["properties"]["kind"]["enum"]) == set(KINDS) - {
        "switch",
        "approval",
        "parallel",
        "map",
    }
    for kind in KINDS:
        assert defs[f"step.{kind}"]["properties"]["kind"] == {
            "const": kind,
            "description": f"The kind of step: `{kind}`.",
        }


def test_every_property_in_the_schema_has_a_description():
    missing = [
        ".".join(map(str, (*where, name)))
        for where, node in walk(schema())
        for name, prop in node.get("properties", {}).items()
        if isinstance(prop, dict) and "description" not in prop
    ]

    assert not missing, missing


def test_every_mapping_in_the_schema_refuses_unknown_fields():
    dispatchers = {("$defs", "step"), ("$defs", "branch_step"), ("$defs", "mapped_step")}
    open_mappings = [
        where
        for where, node in walk(schema())
        if "properties" in node and where not in dispatchers and node.get("additionalProperties") is not False
    ]

    assert not open_mappings, open_mappings


# The reference


def test_the_reference_prints_every_example_as_it_is():
    reference = DOCS.read_text()

    for path in EXAMPLES:
        assert f"```yaml\n{path.read_text()}```" in reference, path.name


def test_the_reference_explains_every_problem_code_and_every_code_is_tested():
    reference = DOCS.read_text()

    assert [code for code in PROBLEM_CODES if f"| `{code}` |" not in reference] == []
    assert {case[0] for case in CODES} | {"syntax", "too_large"} == set(PROBLEM_CODES)


def snippets() -> list[str]:
    text = DOCS.read_text()
    return [block.split("```", 1)[0] for block in text.split("```yaml\n")[1:]]


@pytest.mark.parametrize("snippet", snippets())
def test_every_yaml_snippet_in_the_reference_is_valid_as_far_as_it_goes(snippet):
    """A whole definition must validate; a fragment (some steps, some inputs) is put in one and may only
    lack the steps it refers to (and so leave what needs them unreachable)."""
    data = yaml.safe_load(textwrap.dedent(snippet))
    if isinstance(data, dict) and "version" in data:
        validate(snippet, resolver=None)
        return
    definition = {**minimal(), **data} if isinstance(data, dict) else {"version": 1, "name": "t", "steps": data}
    try:
        validate(json.dumps(definition), resolver=None)
    except DefinitionInvalid as invalid:
        assert {problem.code for problem in invalid.problems} <= {
            "unknown_step",
            "route_without_need",
            "unreachable",
        }, invalid.problems
