"""The filter language of memory search, validated and compiled to ORM conditions (parameterised SQL).

    {"kind": "fact" or [...], "namespace": "work" or [...], "agent": 7 or null,
     "created_after": "2026-01-01T00:00:00Z", "created_before": "...",
     "metadata": {"topic": "billing", "priority": {"$gte": 2}, "tags": {"$in": ["a", "b"]},
                  "source": {"$exists": true}, "status": {"$ne": "done"}}}

Metadata keys are plain names (letters, digits, `_.-`); operators: $eq $ne $in $gt $gte $lt $lte $exists.
Anything else is refused with a message naming it.
"""

import re
from functools import reduce
from operator import or_

from django.core.exceptions import ValidationError
from django.db.models import CharField, Func, JSONField, Q
from django.db.models.fields.json import KeyTransform
from django.db.models.lookups import Exact
from django.utils.dateparse import parse_datetime

from memory.models import Memory

KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# A key named like a Django lookup ("contains", "has_key") or holding "__" would be read as one.
LOOKUP_NAMES = set(JSONField.get_lookups()) | set(KeyTransform.get_lookups())
TOP_LEVEL = {"kind", "namespace", "agent", "created_after", "created_before", "metadata"}
COMPARISONS = {"$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}
MAX_IN = 100


def _refuse(message: str):
    raise ValidationError({"filters": message})


def _one_or_many(name: str, value, allowed=None) -> Q:
    values = value if isinstance(value, list) else [value]
    if not values or len(values) > MAX_IN or not all(isinstance(v, str) for v in values):
        _refuse(f"{name!r} takes a string or a list of 1 to {MAX_IN} strings.")
    if allowed and set(values) - set(allowed):
        _refuse(f"{name!r} must be among {', '.join(allowed)}.")
    return Q(**{f"{name}__in": values})


def _created(name: str, value) -> Q:
    moment = parse_datetime(value) if isinstance(value, str) else None
    if moment is None:
        _refuse(f"{name!r} takes an ISO 8601 date and time, e.g. 2026-01-31T00:00:00Z.")
    return Q(created_at__gt=moment) if name == "created_after" else Q(created_at__lt=moment)


def _scalar(value) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None


def _metadata(conditions) -> Q:
    if not isinstance(conditions, dict) or not conditions:
        _refuse("'metadata' takes an object of key conditions.")
    compiled = Q()
    for key, condition in conditions.items():
        if not KEY.match(key) or "__" in key or key in LOOKUP_NAMES:
            _refuse(f"Metadata key {key!r} is not allowed (letters, digits and _ . - only; not a lookup name).")
        field = f"metadata__{key}"
        if not isinstance(condition, dict):
            if not _scalar(condition):
                _refuse(f"Metadata {key!r}: compare with a string, number, boolean or null.")
            condition = {"$eq": condition}
        if len(condition) != 1:
            _refuse(f"Metadata {key!r}: one operator per key.")
        [(operator, operand)] = condition.items()
        if operator == "$eq" and _scalar(operand):
            compiled &= Q(metadata__contains={key: operand})  # @>: the metadata GIN index serves it
        elif operator == "$ne" and _scalar(operand):
            compiled &= ~Q(**{field: operand}) | ~Q(metadata__has_key=key)
        elif (
            operator == "$in"
            and isinstance(operand, list)
            and 0 < len(operand) <= MAX_IN
            and all(map(_scalar, operand))
        ):
            compiled &= reduce(or_, (Q(metadata__contains={key: value}) for value in operand))
        elif operator in COMPARISONS and isinstance(operand, (int, float)) and not isinstance(operand, bool):
            # JSONB orders across types (a boolean is above every number): compare numbers only.
            value_type = Func(KeyTransform(key, "metadata"), function="jsonb_typeof", output_field=CharField())
            compiled &= Q(Exact(value_type, "number")) & Q(**{f"{field}__{COMPARISONS[operator]}": operand})
        elif operator == "$exists" and isinstance(operand, bool):
            compiled &= Q(metadata__has_key=key) if operand else ~Q(metadata__has_key=key)
        else:
            _refuse(f"Metadata {key!r}: {operator!r} with {operand!r} is not a valid condition.")
    return compiled


def compile_filters(filters) -> Q:
    if filters in (None, {}):
        return Q()
    if not isinstance(filters, dict):
        _refuse("Filters are an object.")
    unknown = set(filters) - TOP_LEVEL
    if unknown:
        _refuse(f"Unknown filters: {', '.join(sorted(unknown))}. Known: {', '.join(sorted(TOP_LEVEL))}.")
    compiled = Q()
    for name, value in filters.items():
        if name == "kind":
            compiled &= _one_or_many("kind", value, Memory.Kind.values)
        elif name == "namespace":
            compiled &= _one_or_many("namespace", value)
        elif name == "agent":
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                _refuse("'agent' takes an agent id or null.")
            compiled &= Q(agent_id__isnull=True) if value is None else Q(agent_id=value)
        elif name in ("created_after", "created_before"):
            compiled &= _created(name, value)
        else:
            compiled &= _metadata(value)
    return compiled
