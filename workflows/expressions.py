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
- the few functions that could do unbounded work in one step are charged or refused (see _functions);
  without that, `==` on a structure of shared sublists ran for 77 s, and `"%999999999d" % 1` built a
  gigabyte with Python's printf.
"""

import functools
import json
import logging
import math
import operator
import re
import time
from collections import Counter, namedtuple
from pathlib import Path

import celpy
import lark
from celpy.adapter import json_to_cel
from celpy.celparser import CELParser
from celpy.evaluation import (
    Activation,
    CELEvalError,
    Evaluator,
    base_functions,
    bool_eq,
    bool_ne,
    function_contains,
    operator_in,
)

NAMES = ("inputs", "steps", "item", "run")

# celpy's debug lines carry every variable's value at every step: the run's data, never for the logs.
logging.getLogger("celpy").setLevel(logging.INFO)

MAX_LENGTH = 2_000  # characters of one expression
MAX_DEPTH = 60  # levels of the collapsed tree; at most 6 Python frames each: 360 of the default limit of 1,000
MAX_COST = 100_000  # tree nodes visited, plus MACRO_ITEM_COST for each item a macro walks
MACRO_ITEM_COST = 40  # a macro's item costs celpy a new scope: about forty plain nodes' worth
TIME_LIMIT = 0.5  # seconds; the backstop behind MAX_COST, which a 1,000-item map with a small body stays under
MAX_RESULT_ITEMS = 100_000  # list elements and map entries in what one call gives
MAX_RESULT_CHARS = 10_000_000  # characters of text in what one call gives

MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
FUNCTIONS = frozenset(name for name in base_functions if name.isidentifier())
TYPE_NAMES = frozenset(
    {"bool", "bytes", "double", "duration", "int", "list", "map", "null_type", "string", "timestamp", "type", "uint"}
)
PASS_THROUGH = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary", "member"}
)
OPERATORS = {
    "addition_add": "+",
    "addition_sub": "-",
    "multiplication_mul": "*",
    "multiplication_div": "/",
    "multiplication_mod": "%",
    "unary_not": "!",
    "unary_neg": "-",
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
    "relation_eq": "==",
    "relation_ne": "!=",
    "relation_in": "in",
    "_?_:_": "? :",
    "_||_": "||",
    "_&&_": "&&",
    "_[_]": "[]",
}

# A CEL duration: linear, unlike the pattern celpy checks it with (24 letters and a "!" took it 1.3 s).
DURATION = re.compile(r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:h|ms|m|s|us|µs|ns|d))+")

# Linear replacements for celpy's string terminals: an escape is a backslash and any one character.
STRING_TERMINALS = r"""
STRING_LIT     : /[rR]?"(?:\\.|[^"\\\r\n])*"/ | /[rR]?'(?:\\.|[^'\\\r\n])*'/
MLSTRING_LIT   : /[rR]?\"\"\"(?:\\[\s\S]|[^\\])*?\"\"\"/ | /[rR]?'''(?:\\[\s\S]|[^\\])*?'''/

"""


class ExpressionError(Exception):
    """A bad expression or template, or one that failed or went over a cap while evaluated."""

    def __init__(self, message: str, expression: str = ""):
        super().__init__(message)
        self.message = message
        self.expression = expression


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


# Compiling


# reads: name -> the fields read when every reading of it is `name.field`, else None (it is read whole)
_Program = namedtuple("_Program", "tree reads")


@functools.cache
def _parser() -> lark.Lark:
    grammar = (Path(celpy.__file__).parent / "cel.lark").read_text()
    pattern = r"^STRING_LIT\s*:.*?(?=^BYTES_LIT)"
    grammar, count = re.subn(pattern, lambda _: STRING_TERMINALS, grammar, flags=re.M | re.S)
    if count != 1:  # pragma: no cover - a celpy upgrade moved its grammar
        raise RuntimeError("celpy's grammar changed: its string terminals were not found")
    return lark.Lark(  # celpy's own options (celpy.celparser.CELParser)
        grammar,
        parser="lalr",
        start="expr",
        g_regex_flags=re.M,
        lexer_callbacks={"IDENT": CELParser.ambiguous_literals},
        propagate_positions=True,
        maybe_placeholders=False,
        priority="invert",
    )


def _program(source) -> _Program:
    if not isinstance(source, str):
        raise ExpressionError(f"An expression must be text, not {_kind(source)}.", str(source))
    return _compile(source)


@functools.lru_cache(maxsize=4096)
def _compile(source: str) -> _Program:
    if not source.strip():
        raise ExpressionError("An expression is empty.", source)
    if len(source) > MAX_LENGTH:
        raise ExpressionError(
            f"An expression is {len(source)} characters long; the limit is {MAX_LENGTH}.", source[:MAX_LENGTH]
        )
    try:
        tree = _collapse(_parser().parse(source))
    except lark.exceptions.UnexpectedInput as error:
        raise ExpressionError(f"{_quote(source)} is not valid CEL: {_syntax(error, source)}.", source) from None
    except lark.exceptions.LarkError as error:
        raise ExpressionError(f"{_quote(source)} is not valid CEL: {error}.", source) from None
    return _Program(tree, _analyse(tree, source))


def _collapse(tree):
    """Drop the nodes that only pass their one child's value up."""

    def skip(node):
        while node.data in PASS_THROUGH and len(node.children) == 1 and isinstance(node.children[0], lark.Tree):
            node = node.children[0]
        return node

    root = skip(tree)
    stack = [root]
    while stack:
        node = stack.pop()
        node.children = [skip(child) if isinstance(child, lark.Tree) else child for child in node.children]
        stack.extend(child for child in node.children if isinstance(child, lark.Tree))
    return root


def _analyse(tree, source: str) -> dict:
    """What the expression reads (see _Program.reads). Refuses depth over the cap, unknown names and
    functions, bad literals and message construction. Iterative: a deep tree is refused, not a crash."""
    unknown, calls, fields, whole = set(), set(), {}, Counter()
    stack = [(tree, frozenset(), 1)]
    while stack:
        node, bound, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ExpressionError(f"{_quote(source)} is nested too deeply (the limit is {MAX_DEPTH} levels).", source)
        kind, children = node.data, node.children
        if kind in ("ident", "dot_ident"):
            name = children[0].value
            if (kind == "ident" and name in bound) or name in TYPE_NAMES:
                continue
            if name not in NAMES:
                unknown.add(name)
            fields.setdefault(name, set())
            whole[name] += 1
            continue
        if kind == "literal":
            _check_literal(node, source)
            continue
        if kind == "member_object":
            raise ExpressionError(f"{_quote(source)} builds a message object, which workflows do not have.", source)
        if kind == "member_dot" and _identifier(children[0]) in NAMES and _identifier(children[0]) not in bound:
            name = _identifier(children[0])
            fields.setdefault(name, set()).add(children[1].value)
            whole[name] -= 1  # the reading of the name below is this field's
        if kind in ("ident_arg", "dot_ident_arg"):
            name = children[0].value
            if name not in FUNCTIONS and name not in ("has", "dyn"):
                calls.add(f"{name}()")
        if kind == "member_dot_arg":
            name = children[1].value
            args = children[2].children if len(children) > 2 else []
            if name in MACROS:
                variable = _identifier(args[0]) if len(args) == 2 else None
                if variable is None:
                    raise ExpressionError(
                        f"{_quote(source)} uses .{name}() without a variable and an expression, "
                        f"as in .{name}(x, x > 0).",
                        source,
                    )
                stack.append((children[0], bound, depth + 1))
                stack.append((args[1], bound | {variable}, depth + 2))
                continue
            if name not in FUNCTIONS:
                calls.add(f".{name}()")
        stack.extend((child, bound, depth + 1) for child in children if isinstance(child, lark.Tree))
    if unknown:
        raise ExpressionError(
            f"{_quote(source)} reads {_names(sorted(unknown))}, which an expression cannot read "
            f"(it may read only {', '.join(NAMES[:-1])} and {NAMES[-1]}).",
            source,
        )
    if calls:
        raise ExpressionError(f"{_quote(source)} calls {_names(sorted(calls))}, which CEL does not have.", source)
    return {name: None if whole[name] else frozenset(fields[name]) for name in fields}


def _identifier(node):
    """The name when the node is a bare identifier (`x`), else None."""
    if isinstance(node, lark.Tree) and node.data == "primary" and node.children[0].data == "ident":
        return node.children[0].children[0].value
    return None


def _check_literal(node, source):
    try:
        value = Evaluator(node, Activation()).literal(node)
    except Exception as error:
        value = error
    if isinstance(value, Exception):
        raise ExpressionError(f"{_quote(source)} has a bad literal {node.children[0].value[:40]!r}.", source)


def _check_names(program, source, names):
    extra = sorted(set(program.reads) - set(names))
    if extra:
        raise ExpressionError(
            f"{_quote(source)} reads {_names(extra)}, which is not available here "
            f"(it may read only {', '.join(names) or 'nothing'}).",
            source,
        )


# Evaluating


class _OverCap(Exception):
    pass


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


class _Evaluator(Evaluator):
    """celpy's interpreter, charging each node it visits and each item a macro walks to the budget."""

    def __init__(self, ast, activation, budget):
        super().__init__(ast, activation)
        self.budget = budget

    def sub_evaluator(self, ast):
        return _Evaluator(ast, self.activation, self.budget)

    def evaluate(self, context=None):
        if context is not None:  # one item of a macro
            self.budget.charge(MACRO_ITEM_COST)
        return super().evaluate(context)

    def _visit_tree(self, tree):
        self.budget.charge(1)
        return super()._visit_tree(tree)


def _evaluate(source, context, budget):
    program = _program(source)
    _check_names(program, source, NAMES)
    missing = sorted(set(program.reads) - context.keys())
    if missing:
        raise ExpressionError(f"{_quote(source)} reads {_names(missing)}, which this step does not have.", source)
    try:
        variables = {name: json_to_cel(_needed(context[name], read)) for name, read in program.reads.items()}
        activation = Activation(vars=variables, functions=_functions(budget))
        return _plain(_Evaluator(program.tree, activation, budget).evaluate(), source, budget)
    except ExpressionError:
        raise
    except _OverCap as error:
        raise ExpressionError(f"{_quote(source)} was stopped: {error}.", source) from None
    except CELEvalError as error:
        raise ExpressionError(f"{_quote(source)} failed: {_reason(error)}.", source) from None
    except RecursionError:
        raise ExpressionError(f"{_quote(source)} failed: its data is nested too deeply.", source) from None
    except Exception as error:  # celpy's own exceptions on odd input are the expression's failure too
        raise ExpressionError(f"{_quote(source)} failed: {str(error)[:200]}.", source) from None


def _functions(budget):
    """celpy's functions, but none does unbounded work in one step, which no check between steps could stop.
    A macro's variable names a list without copying it, so `[l].map(a, [a, a]).map(b, [b, b])...` holds
    a structure that doubles at each step: what walks it (`==`, `!=`, `in`, `contains`) is charged element
    by element, `string()` refuses it, and `+`, the one operation that copies, may not build past the
    result caps."""

    def add(left, right):
        if isinstance(left, (str, bytes, list)) and isinstance(right, (str, bytes, list)):
            cap, unit = (MAX_RESULT_ITEMS, "items") if isinstance(left, list) else (MAX_RESULT_CHARS, "characters")
            if len(left) + len(right) > cap:
                raise _OverCap(f"a value it built grew past {cap} {unit}")
        return operator.add(left, right)

    def walked(function):
        def charged(*args):
            budget.charge_walk(*args)
            return function(*args)

        return charged

    return {
        "_+_": add,
        "_==_": walked(bool_eq),
        "_!=_": walked(bool_ne),
        "_in_": walked(operator_in),
        "contains": walked(function_contains),
        "_%_": _modulo,
        "string": _string,
        "duration": _duration,
    }


def _modulo(left, right):
    """CEL's `%` is for numbers; celpy hands text to Python's printf (`"%999999999d" % 1` is a gigabyte)."""
    if isinstance(left, (str, bytes)):
        raise TypeError("% is for numbers")
    return operator.mod(left, right)


def _string(value):
    """CEL's string() is for scalars; celpy writes lists, maps, null and booleans as Python would."""
    if value is None or isinstance(value, (list, dict)):
        raise TypeError("string() is for scalars")
    if isinstance(value, (bool, celpy.celtypes.BoolType)):
        return celpy.celtypes.StringType("true" if value else "false")
    return celpy.celtypes.StringType(value)


def _duration(value, *args):
    if isinstance(value, str) and (len(value) > 100 or not DURATION.fullmatch(value)):
        raise ValueError(f"{value[:40]!r} is not a duration such as 90s or 1h30m")
    return celpy.celtypes.DurationType(value, *args)


def _needed(value, fields):
    """Only the fields the expression reads: converting a whole 1,000-item output costs milliseconds."""
    if fields is None or not isinstance(value, dict):
        return value
    return {field: value[field] for field in fields if field in value}


def _plain(value, source, budget):
    """celpy's value as plain JSON data, counted against the budget (a shared sublist counts each time).
    Map keys become text, the only keys JSON has."""
    if value is None:
        return None
    if isinstance(value, (bool, celpy.celtypes.BoolType)):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ExpressionError(f"{_quote(source)} gave {value}, which is not a JSON number.", source)
        return float(value)
    if isinstance(value, str):
        return _spend_text(str(value), source, budget)
    # Timestamps as ISO 8601 and durations as CEL writes them ("90s", "0.5s"); celpy's str drops fractions.
    if isinstance(value, celpy.celtypes.TimestampType):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, celpy.celtypes.DurationType):
        return format(value.total_seconds(), "f").rstrip("0").rstrip(".") + "s"
    if isinstance(value, list):
        _spend_items(len(value), source, budget)
        return [_plain(element, source, budget) for element in value]
    if isinstance(value, dict):
        _spend_items(len(value), source, budget)
        return {_key(key, source, budget): _plain(element, source, budget) for key, element in value.items()}
    raise ExpressionError(f"{_quote(source)} gave {_kind(value)}, which has no JSON form.", source)


def _key(key, source, budget):
    if isinstance(key, (bool, celpy.celtypes.BoolType)):
        return "true" if key else "false"
    if isinstance(key, (str, int)):
        return _spend_text(str(key) if isinstance(key, str) else str(int(key)), source, budget)
    raise ExpressionError(f"{_quote(source)} gave a map key of {_kind(key)}.", source)


def _spend_items(count, source, budget):
    budget.items -= count
    if budget.items < 0:
        raise ExpressionError(f"{_quote(source)} gave more than {MAX_RESULT_ITEMS} list items and map entries.", source)


def _spend_text(text, source, budget):
    budget.chars -= len(text)
    if budget.chars < 0:
        raise ExpressionError(f"{_quote(source)} gave more than {MAX_RESULT_CHARS} characters of text.", source)
    return text


# Templates


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


# Messages


def _quote(source):
    return f"The expression `{_shown(source)}`"


def _shown(source):
    shown = " ".join(source.split())
    return shown[:80] + "..." if len(shown) > 80 else shown


def _names(names):
    return ", ".join(f"`{name}`" for name in names)


KINDS = (
    (type(None), "null"),
    ((bool, celpy.celtypes.BoolType), "a boolean"),
    ((int, float), "a number"),
    (str, "a string"),
    ((list, tuple), "a list"),
    (dict, "a map"),
    (bytes, "bytes"),
)


def _kind(value):
    return next((kind for types, kind in KINDS if isinstance(value, types)), f"a value of type {type(value).__name__}")


def _reason(error: CELEvalError) -> str:
    """celpy's message in CEL's words: operators and type names instead of its grammar rules and classes,
    and never the variables it appends (they are the run's data)."""
    message = str(error.args[0]) if error.args else "it could not be evaluated"
    message = message.split(" (in activation")[0].replace("no such member in mapping:", "no key")
    message = re.sub(r"Token\('RULE', '(\w+)'\)", r"\1", message)
    message = re.sub(r"<class 'celpy\.celtypes\.(\w+?)Type'>", lambda match: match[1].lower(), message)
    overload = re.match(r"found no matching overload for '?(\S+?)'? applied to '\((.*)\)'", message)
    if overload:
        message = f"{OPERATORS.get(overload[1], overload[1])} does not apply to ({overload[2]})"
    detail = error.args[2] if len(error.args) > 2 and error.args[2] else None
    if message == "return error for overflow":
        message = f"a value is out of range or malformed ({detail[0]})" if detail else "a value is out of range"
    elif message in ("no such key", "invalid_argument", "no such overload") and detail:
        message = f"{message}: {detail[0]}"
    return message[:200]


def _syntax(error, source):
    where = f"column {error.column}" if "\n" not in source else f"line {error.line}, column {error.column}"
    if isinstance(error, lark.exceptions.UnexpectedEOF) or (
        isinstance(error, lark.exceptions.UnexpectedToken) and error.token.type == "$END"
    ):
        return "it ends too early"
    if isinstance(error, lark.exceptions.UnexpectedToken):
        return f"unexpected {str(error.token)[:40]!r} at {where}"
    if isinstance(error, lark.exceptions.UnexpectedCharacters):
        return f"unexpected character {error.char!r} at {where}"
    return f"error at {where}"
