"""Pagination: pages of at most 200 items, and the newest-first cursor for lists that grow without bound."""

from rest_framework import pagination


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """Pages of at most 200 items, however many are asked for."""

    max_limit = 200


class NewestFirst(pagination.CursorPagination):
    """Runs, tasks, events, deliveries: a stable cursor over (created_at, id), newest first."""

    ordering = ("-created_at", "-id")
    page_size = 50
