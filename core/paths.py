"""Path ids: one that is not even well formed names nothing, so it is a 404 like an id that does not exist."""

import uuid

from rest_framework.exceptions import NotFound


def int_or_404(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise NotFound() from None


def uuid_or_404(value) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound() from None
