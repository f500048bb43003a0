"""ExpressionError, and its messages in CEL's words: never the run's data celpy would add."""

import re

import celpy
import lark
from celpy.evaluation import CELEvalError

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


class ExpressionError(Exception):
    """A bad expression or template, or one that failed or went over a cap while evaluated."""

    def __init__(self, message: str, expression: str = ""):
        super().__init__(message)
        self.message = message
        self.expression = expression


class _OverCap(Exception):
    pass


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
