"""Compiling an expression: celpy's grammar with linear string terminals, the pass-through nodes dropped, and
the names, functions, literals and depth checked before anything runs."""

import functools
import re
from collections import Counter, namedtuple
from pathlib import Path

import celpy
import lark
from celpy.celparser import CELParser
from celpy.evaluation import Activation, Evaluator, base_functions

from workflows.expressions.errors import ExpressionError, _kind, _names, _quote, _syntax
from workflows.expressions.limits import MAX_DEPTH, MAX_LENGTH, NAMES

MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
FUNCTIONS = frozenset(name for name in base_functions if name.isidentifier())
TYPE_NAMES = frozenset(
    {"bool", "bytes", "double", "duration", "int", "list", "map", "null_type", "string", "timestamp", "type", "uint"}
)
PASS_THROUGH = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary", "member"}
)
# Linear replacements for celpy's string terminals: an escape is a backslash and any one character.
STRING_TERMINALS = r"""
STRING_LIT     : /[rR]?"(?:\\.|[^"\\\r\n])*"/ | /[rR]?'(?:\\.|[^'\\\r\n])*'/
MLSTRING_LIT   : /[rR]?\"\"\"(?:\\[\s\S]|[^\\])*?\"\"\"/ | /[rR]?'''(?:\\[\s\S]|[^\\])*?'''/

"""


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
