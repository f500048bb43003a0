"""Evaluating a compiled expression: celpy's interpreter charging a budget, functions that could do unbounded
work in one step charged or refused, and the value given back as plain JSON data."""

import logging
import math
import operator
import re

import celpy
from celpy.adapter import json_to_cel
from celpy.evaluation import (
    Activation,
    CELEvalError,
    Evaluator,
    bool_eq,
    bool_ne,
    function_contains,
    operator_in,
)

from workflows.expressions.compiling import _check_names, _program
from workflows.expressions.errors import ExpressionError, _kind, _names, _OverCap, _quote, _reason
from workflows.expressions.limits import MACRO_ITEM_COST, MAX_RESULT_CHARS, MAX_RESULT_ITEMS, NAMES

# celpy's debug lines carry every variable's value at every step: the run's data, never for the logs.
logging.getLogger("celpy").setLevel(logging.INFO)

# A CEL duration: linear, unlike the pattern celpy checks it with (24 letters and a "!" took it 1.3 s).
DURATION = re.compile(r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:h|ms|m|s|us|µs|ns|d))+")


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
