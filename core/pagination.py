"""Pagination: pages of at most 200 items, and the newest-first cursor for lists that grow without bound.

A page request the list never gave (a forged cursor, an offset past any table) is a 400, not a database
error.
"""

import binascii
from base64 import b64decode
from urllib import parse

from django.utils.dateparse import parse_datetime
from rest_framework import pagination
from rest_framework.exceptions import ValidationError

MAX_OFFSET = 10**9


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """Pages of at most 200 items, however many are asked for; a limit or offset that is not a whole number
    in range is a 400 (DRF would quietly use its default)."""

    max_limit = 200

    def get_limit(self, request):
        if self.limit_query_param not in request.query_params:
            return self.default_limit
        return min(_whole_number(request, self.limit_query_param, low=1, high=MAX_OFFSET), self.max_limit)

    def get_offset(self, request):
        if self.offset_query_param not in request.query_params:
            return 0
        return _whole_number(request, self.offset_query_param, low=0, high=MAX_OFFSET)


def _whole_number(request, name: str, *, low: int, high: int) -> int:
    try:
        value = int(request.query_params[name])
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ValidationError({name: [f"A whole number from {low} to {high}."]})
    return value


class NewestFirst(pagination.CursorPagination):
    """Runs, tasks, events, deliveries: a stable cursor over (created_at, id), newest first."""

    ordering = ("-created_at", "-id")
    page_size = 50

    def decode_cursor(self, request):
        """DRF's cursor, read strictly: anything this list did not hand out is a 400 (DRF would start over
        on some and fail in the database on others)."""
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None:
            return None
        try:
            tokens = parse.parse_qs(
                b64decode(encoded.encode("ascii"), validate=True).decode("ascii"), strict_parsing=True
            )
            if not set(tokens) <= {"o", "r", "p"} or any(len(values) != 1 for values in tokens.values()):
                raise ValueError("unknown parts")
            position = tokens.get("p", [None])[0]
            if position is not None and parse_datetime(position) is None:
                raise ValueError("not a time")
            offset = int(tokens.get("o", ["0"])[0])
            if not 0 <= offset <= self.offset_cutoff:
                raise ValueError("offset out of range")
            return pagination.Cursor(offset=offset, reverse=bool(int(tokens.get("r", ["0"])[0])), position=position)
        except (ValueError, binascii.Error):
            raise ValidationError({self.cursor_query_param: ["This is not a cursor this list gave."]}) from None
