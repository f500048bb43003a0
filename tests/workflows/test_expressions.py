"""The CEL layer of workflows: conditions, templates, the names an expression may read, the caps, and a
corpus of injection attempts that must be refused or give plain data, with no side effect and no hang."""

import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflows import expressions
from workflows.expressions import (
    NAMES,
    ExpressionError,
    check_expression,
    check_template,
    check_value,
    evaluate,
    is_true,
    render,
    render_value,
)

PWNED = "/tmp/pwned-xyz"
HANG_GUARD = 10.0  # seconds: a guard against hangs (unbounded work runs for minutes), not a speed goal

CONTEXT = {
    "inputs": {"name": "alice", "depth": 2, "tags": ["a", "b"], "big": list(range(1000)), "text": "t" * 10_000},
    "steps": {
        "research": {"output": {"score": 0.7, "items": [1, 2]}, "status": "succeeded"},
        "write": {"output": "a report", "status": "succeeded"},
    },
    "item": {"id": 7, "url": "https://example.com"},
    "run": {"id": "r1", "workflow": "flow", "version": 3, "started_at": "2024-01-01T00:00:00Z"},
}


def assert_plain(value):
    """Only Python's own JSON types, all the way down: no wrapper type of the CEL library leaks out."""
    assert type(value) in (dict, list, str, int, float, bool, type(None)), type(value)
    if type(value) is dict:
        for key, element in value.items():
            assert type(key) is str
            assert_plain(element)
    elif type(value) is list:
        for element in value:
            assert_plain(element)


# Conditions


def test_a_condition_that_holds_is_true():
    assert is_true('steps.research.status == "succeeded" && inputs.depth > 1', CONTEXT) is True


def test_a_condition_that_does_not_hold_is_false():
    assert is_true("steps.research.output.score > 0.9 || size(inputs.tags) > 5", CONTEXT) is False


def test_a_condition_may_use_macros_and_the_current_item():
    assert is_true('inputs.tags.exists(t, t == "b") && item.id == 7', CONTEXT) is True


def test_a_condition_that_gives_something_other_than_a_boolean_is_an_error():
    with pytest.raises(ExpressionError, match="gave a string, not true or false") as caught:
        is_true("inputs.name", CONTEXT)
    assert caught.value.expression == "inputs.name"


# Templates


def test_a_template_that_is_one_part_keeps_a_lists_type():
    assert render("${inputs.tags}", CONTEXT) == ["a", "b"]


def test_a_template_that_is_one_part_keeps_a_maps_type():
    assert render("${ steps.research.output }", CONTEXT) == {"score": 0.7, "items": [1, 2]}


def test_a_template_that_is_one_part_keeps_a_numbers_type():
    assert render("${inputs.depth * 2}", CONTEXT) == 4
    assert render("${steps.research.output.score}", CONTEXT) == 0.7


def test_a_template_with_text_around_its_parts_gives_text():
    assert render("Summarise ${steps.write.output} for ${inputs.name}", CONTEXT) == "Summarise a report for alice"


def test_values_that_are_not_text_are_written_as_json_inside_text():
    assert render("${inputs.tags} / ${inputs.depth} / ${null} / ${true}", CONTEXT) == '["a", "b"] / 2 / null / true'


def test_a_doubled_dollar_is_a_literal_dollar_brace():
    assert render("costs $${inputs.depth} and ${inputs.depth}", CONTEXT) == "costs ${inputs.depth} and 2"
    assert render("$${", CONTEXT) == "${"


def test_a_part_may_hold_maps_and_strings_with_braces():
    assert render('${ {"k": {"j": inputs.name}} }', CONTEXT) == {"k": {"j": "alice"}}
    assert render('<${ "}" + inputs.name }>', CONTEXT) == "<}alice>"


def test_text_without_parts_is_kept_as_it_is():
    assert render("no parts { here } $ {}", CONTEXT) == "no parts { here } $ {}"


def test_an_unclosed_part_is_an_error():
    with pytest.raises(ExpressionError, match="never closed"):
        check_template("Hello ${inputs.name")


def test_every_part_of_a_template_is_checked():
    with pytest.raises(ExpressionError, match="`secrets`"):
        check_template("ok ${inputs.name} but ${secrets.key}")


def test_every_string_of_a_value_is_a_template():
    value = {"title": "${inputs.name}", "list": ["${inputs.depth}", {"deep": "n=${inputs.depth}"}], "n": 5, "x": None}
    check_value(value)
    assert render_value(value, CONTEXT) == {"title": "alice", "list": [2, {"deep": "n=2"}], "n": 5, "x": None}


def test_a_bad_template_deep_inside_a_value_is_found():
    with pytest.raises(ExpressionError, match="`os`"):
        check_value({"a": [{"b": "${os.environ}"}]})


def test_template_syntaxes_of_other_engines_are_plain_text():
    for text in ("{{ 7*7 }}", "{% raw %}", "#{7*7}", "<%= 7*7 %>", "$(id)", "`id`"):
        check_template(text)
        assert render(text, CONTEXT) == text


# Errors


def test_a_missing_key_gives_a_clear_error():
    with pytest.raises(ExpressionError) as caught:
        evaluate("steps.nope.output", CONTEXT)
    assert "steps.nope.output" in str(caught.value) and "'nope'" in str(caught.value)
    assert caught.value.message == str(caught.value)


def test_a_name_the_context_lacks_is_named():
    with pytest.raises(ExpressionError, match="reads `item`, which this step does not have"):
        evaluate("item.url", {"inputs": {}})


@pytest.mark.parametrize("source, name", [("os.system('ls')", "os"), ("request.user", "request"), ("x + 1", "x")])
def test_names_other_than_the_four_are_refused_and_named(source, name):
    with pytest.raises(ExpressionError, match=f"reads `{name}`, which an expression cannot read"):
        check_expression(source)


def test_calling_a_function_that_cel_does_not_have_is_refused():
    with pytest.raises(ExpressionError, match=r"calls `__import__\(\)`, which CEL does not have"):
        check_expression("__import__('os')")
    with pytest.raises(ExpressionError, match=r"calls `\.format\(\)`"):
        check_expression("'{0.__class__}'.format(inputs)")


def test_a_step_may_be_limited_to_fewer_names():
    check_expression("inputs.name", names=("inputs",))
    with pytest.raises(ExpressionError, match="reads `item`, which is not available here"):
        check_expression("item.url", names=("inputs", "steps", "run"))


def test_names_bound_by_a_macro_are_not_names_read():
    check_expression("inputs.big.map(n, n * 2).filter(m, m > 3)")
    with pytest.raises(ExpressionError, match="`n`"):
        check_expression("inputs.big.map(n, n * 2) + [n]")


def test_a_syntax_error_says_where():
    with pytest.raises(ExpressionError, match=r"is not valid CEL: unexpected '\)' at column 5"):
        check_expression("1 + )")
    with pytest.raises(ExpressionError, match="is not valid CEL: it ends too early"):
        check_expression("inputs.depth >")


def test_a_type_error_is_said_in_cels_words():
    with pytest.raises(ExpressionError, match=r"\+ does not apply to \(string, int\)"):
        evaluate("inputs.name + 1", CONTEXT)


def test_an_empty_or_non_text_expression_is_refused():
    for source in ("", "   ", None, 12, ["inputs"]):
        with pytest.raises(ExpressionError):
            check_expression(source)


# Results


def test_results_are_plain_python_values():
    value = evaluate(
        '{"n": 1, "x": 2.5, "s": "é", "b": true, "z": null, "l": [1, [2]], "m": {"k": inputs.tags}}', CONTEXT
    )
    assert value == {"n": 1, "x": 2.5, "s": "é", "b": True, "z": None, "l": [1, [2]], "m": {"k": ["a", "b"]}}
    assert_plain(value)


def test_timestamps_and_durations_come_back_as_text():
    assert evaluate('timestamp(run.started_at) + duration("90m")', CONTEXT) == "2024-01-01T01:30:00Z"
    assert evaluate('duration("500ms")', CONTEXT) == "0.5s"


def test_values_without_a_json_form_are_errors():
    for source in ('b"bytes"', "1.0 / 0.0"):
        with pytest.raises(ExpressionError, match="gave"):
            evaluate(source, CONTEXT)


def test_compiled_programs_are_cached():
    evaluate("inputs.depth + 40", CONTEXT)
    hits = expressions._compile.cache_info().hits
    evaluate("inputs.depth + 40", CONTEXT)
    assert expressions._compile.cache_info().hits == hits + 1


def test_only_the_steps_an_expression_names_are_handed_to_the_interpreter():
    context = {"steps": {"a": {"output": 1}, "b": {"output": object()}}}  # b cannot be converted at all
    assert evaluate("steps.a.output + 1", context) == 2
    with pytest.raises(ExpressionError):
        evaluate("size(steps)", context)


# Caps


def test_an_expression_over_the_length_cap_is_refused():
    with pytest.raises(ExpressionError, match="characters long; the limit is 2000"):
        check_expression("1" + " + 1" * 600)


def test_nesting_over_the_depth_cap_is_refused_at_check_time():
    with pytest.raises(ExpressionError, match="nested too deeply"):
        check_expression("(" * 100 + "1" + ")" * 100)


def test_nested_macros_over_large_lists_are_stopped_by_the_cost_cap(monkeypatch):
    monkeypatch.setattr(expressions, "TIME_LIMIT", HANG_GUARD)  # on a busy machine the time cap must not come first
    started = time.monotonic()
    with pytest.raises(ExpressionError, match="cost limit"):
        evaluate("inputs.big.map(x, inputs.big.map(y, x * y))", CONTEXT)
    assert time.monotonic() - started < HANG_GUARD


def test_an_evaluation_is_stopped_by_the_time_cap(monkeypatch):
    monkeypatch.setattr(expressions, "TIME_LIMIT", 0.005)
    with pytest.raises(ExpressionError, match="time limit"):
        evaluate("inputs.big.map(x, x + 1)", CONTEXT)


def test_a_result_over_the_size_cap_is_refused():
    with pytest.raises(ExpressionError, match="list items and map entries"):
        evaluate("inputs.big.map(x, inputs.big)", CONTEXT)
    with pytest.raises(ExpressionError, match="characters of text"):
        evaluate("inputs.big.map(x, inputs.text + inputs.text)", CONTEXT)


def test_the_parts_of_one_template_share_one_budget():
    template = " ".join(["${inputs.big.map(x, x)}"] * 4)  # each part alone is within the caps
    evaluate("inputs.big.map(x, x)", CONTEXT)
    with pytest.raises(ExpressionError, match="cost limit"):
        render(template, CONTEXT)


def test_an_unclosed_string_of_backslashes_is_refused_quickly():
    # celpy's own string pattern backtracks exponentially on this (48 s for 40 backslashes).
    for source in ('"' + "\\\\" * 999, '"""' + "\\\\" * 998, "'" + "\\'" * 999):
        started = time.monotonic()
        with pytest.raises(ExpressionError, match="not valid CEL"):
            check_expression(source)
        assert time.monotonic() - started < HANG_GUARD


def test_a_duration_made_to_backtrack_is_refused_quickly():
    started = time.monotonic()
    with pytest.raises(ExpressionError, match="not a duration"):
        evaluate("duration(inputs.text + '!')", CONTEXT)
    assert time.monotonic() - started < HANG_GUARD


def fourfold(expression, times):
    """A structure of shared sublists, four times bigger at each step but cheap to build."""
    for level in range(times):
        expression = f"[{expression}].map(a{level}, [a{level}, a{level}, a{level}, a{level}])"
    return expression


def test_comparing_a_structure_of_shared_sublists_is_charged_for_every_element():
    huge = fourfold("inputs.big", 8)  # 65,536 references to the same 1,000-item list
    assert evaluate(f"size({huge})", CONTEXT) == 1
    for source in (f"{huge} == {huge}", f"{huge} != []", f"[] in {huge}", f"{huge}.contains([1])"):
        started = time.monotonic()
        with pytest.raises(ExpressionError, match="cost limit"):
            evaluate(source, CONTEXT)
        assert time.monotonic() - started < HANG_GUARD


def test_string_of_a_list_or_map_is_refused():
    with pytest.raises(ExpressionError, match="string\\(\\) is for scalars"):
        evaluate(f"size(string({fourfold('inputs.big', 6)}))", CONTEXT)
    assert evaluate("string(2) + string(2.5) + string(true)", CONTEXT) == "22.5true"


def test_doubling_a_value_by_adding_it_to_itself_stops_at_the_size_cap():
    for start, unit in (("inputs.big", "items"), ("inputs.text", "characters")):
        source = f"[{start}]" + "".join(f".map(a{n}, a{n} + a{n})" for n in range(30))
        with pytest.raises(ExpressionError, match=f"grew past .* {unit}"):
            evaluate(source, CONTEXT)


def test_pythons_printf_formatting_of_text_is_not_reachable():
    for source in ('"%s" % inputs', '"%999999999d" % 1'):
        with pytest.raises(ExpressionError, match="% does not apply"):
            evaluate(source, CONTEXT)
    assert evaluate("7 % 3", CONTEXT) == 1


# Injection corpus: each payload is refused by check_expression, or evaluates to plain data (or fails
# cleanly) within the caps, with no side effect.

LIST_300 = "[" + ",".join(["0"] * 300) + "]"

PAYLOADS = [
    # Python evaluation, execution and imports
    "__import__('os').system('touch /tmp/pwned-xyz')",
    'eval(\'open("/tmp/pwned-xyz", "w")\')',
    "exec('import os')",
    "open('/tmp/pwned-xyz', 'w')",
    "open('/tmp/pwned-xyz', 'w').write('x')",
    "compile('1', 'x', 'exec')",
    "globals()",
    "locals()['__builtins__']",
    "getattr(inputs, '__class__')",
    "import os",
    "lambda: open('/tmp/pwned-xyz', 'w')",
    "os.system('touch /tmp/pwned-xyz')",
    "subprocess.run(['touch', '/tmp/pwned-xyz'])",
    "sys.modules['os'].system('touch /tmp/pwned-xyz')",
    "[c for c in ().__class__.__bases__[0].__subclasses__()]",
    # Dunder access
    "().__class__.__bases__",
    "inputs.__class__",
    "inputs.__class__.__mro__[1].__subclasses__()",
    "inputs.__dict__",
    "''.__class__.__mro__[1].__subclasses__()",
    "inputs['__class__']",
    "steps.__init__.__globals__",
    "run.__reduce__()",
    "inputs.name.__len__()",
    # Format strings
    "'{0.__class__}'.format(inputs)",
    "'%s' % inputs",
    "'%999999999d' % 1",
    'f\'{open("/tmp/pwned-xyz", "w")}\'',
    # Other template languages
    "{{ config.__class__.__init__.__globals__['os'].popen('touch /tmp/pwned-xyz').read() }}",
    "{% import os %}{{ os.system('touch /tmp/pwned-xyz') }}",
    "#{7*7}",
    "<%= 7*7 %>",
    "${7*7}",
    # JavaScript
    "constructor.constructor('return process')()",
    "this.constructor.constructor('return process')().mainModule.require('child_process').execSync('touch /tmp/pwned-xyz')",
    "require('child_process').exec('touch /tmp/pwned-xyz')",
    # SQL
    "'; DROP TABLE workflows_workflow; --",
    "1 OR 1=1",
    "inputs.name == '' || '1' == '1'",
    "1; SELECT pg_sleep(10)",
    # Shell
    "$(touch /tmp/pwned-xyz)",
    "`touch /tmp/pwned-xyz`",
    "inputs.name + '$(touch /tmp/pwned-xyz)'",
    "'; touch /tmp/pwned-xyz #",
    # Unicode tricks
    "ｏｓ.system('touch /tmp/pwned-xyz')",  # fullwidth letters
    "inputs\u200b.name",  # zero-width space
    "inputs.name\u202e == 'x'",  # right-to-left override
    r"__\u0069mport__('os')",  # an escape inside a name
    "ⅰnputs.name",  # a Roman numeral one for the i
    r"'\x5f\x5fimport\x5f\x5f' + '\u0000'",  # text that spells a dunder is only text
    # Blow-ups of size
    "'a' * 1000000000",
    "[1] * 1000000000",
    "inputs.text + inputs.text + inputs.text + inputs.text",
    "inputs.big.map(x, inputs.text + inputs.text)",
    "inputs.big.map(x, inputs.big.map(y, inputs.text + inputs.text))",
    "inputs.big.map(x, inputs.big + inputs.big)",
    # Blow-ups of work
    "[1,2,3].map(x, [1,2,3].map(y, [1,2,3].map(z, x + y + z)))",
    f"{LIST_300}.map(a, {LIST_300}.map(b, {LIST_300}.map(c, a + b + c)))",
    "inputs.big.map(x, inputs.big.map(y, inputs.big.map(z, x * y * z)))",
    "inputs.big.filter(x, inputs.big.exists(y, y == -1))",
    "inputs.big.all(x, inputs.big.all(y, x >= 0 && y >= 0))",
    "duration('" + "a" * 40 + "!')",
    "inputs.text.matches('(a|aa)*b')",
    # Shared sublists: cheap to build, exponential to walk or copy
    f"{fourfold('inputs.big', 12)} == {fourfold('inputs.big', 12)}",
    f"inputs.tags in {fourfold('inputs.big', 12)}",
    f"string({fourfold('inputs.big', 12)})",
    "[inputs.text]" + "".join(f".map(a{n}, a{n} + a{n})" for n in range(40)),
    "[inputs.big]" + "".join(f".map(a{n}, [a{n}, a{n}] + [a{n}, a{n}])" for n in range(40)),
    # Deep nesting and long expressions
    "(" * 900 + "1" + ")" * 900,
    "[" * 500 + "]" * 500,
    "!" * 1990 + "true",
    "size(" * 300 + "[]" + ")" * 300,
    "1" + " + 1" * 499,
    '"' + "\\\\" * 999,
    "inputs.name" * 10_000,
]


def test_the_corpus_is_large_enough():
    assert len(PAYLOADS) >= 40


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_an_injection_payload_is_refused_or_gives_plain_data(payload):
    if os.path.exists(PWNED):
        os.remove(PWNED)
    started = time.monotonic()
    try:
        check_expression(payload)
    except ExpressionError as error:
        assert error.message  # refused with a sentence
    else:
        try:
            assert_plain(evaluate(payload, CONTEXT))
        except ExpressionError:
            pass
    assert time.monotonic() - started < HANG_GUARD
    assert not os.path.exists(PWNED)


# Arbitrary input


TOKENS = [*NAMES, "x", ".", "(", ")", "[", "]", "{", "}", ",", ":", "?", "+", "-", "*", "/", "%", "==", "<", "&&"]
TOKENS += ["||", "!", "in", "1", "2.5", "3u", '"s"', "'t'", "true", "null", "map", "filter", "exists", "all", "size"]
TOKENS += ["has", "name", "output", "int", "string", " ", '"', "'", "\\", "${", "$${", "//", "\n", "é"]
SMALL_CONTEXT = {"inputs": {"name": "n", "l": [1, 2]}, "steps": {}, "item": 1, "run": {"id": "r"}}


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(st.text(max_size=200))
def test_any_text_is_accepted_or_refused_with_an_expression_error(text):
    try:
        check_expression(text)
    except ExpressionError:
        pass


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=30).map("".join))
def test_cel_like_text_is_checked_and_evaluated_without_any_other_exception(text):
    try:
        check_expression(text)
        assert_plain(evaluate(text, SMALL_CONTEXT))
    except ExpressionError:
        pass


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=30).map("".join))
def test_any_template_renders_or_fails_with_an_expression_error(text):
    try:
        check_template(text)
        assert_plain(render(text, SMALL_CONTEXT))
    except ExpressionError:
        pass
