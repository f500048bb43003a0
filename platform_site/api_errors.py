"""The API's one error shape: drf-standardized-errors' body plus the request id.

    {"type": "validation_error", "errors": [{"code": ..., "detail": ..., "attr": ...}], "request_id": "..."}

The formatter adds `request_id` to every error body and the schema hook declares it on every error
component, so the OpenAPI schema documents what clients receive.
"""

import uuid

from drf_standardized_errors.formatter import ExceptionFormatter as StandardExceptionFormatter
from drf_standardized_errors.handler import ExceptionHandler as StandardExceptionHandler
from rest_framework import pagination
from rest_framework.exceptions import APIException, NotFound

from platform_site.correlation import current_request_id


class ExceptionFormatter(StandardExceptionFormatter):
    def format_error_response(self, error_response):
        body = super().format_error_response(error_response)
        body.update(getattr(self.exc, "extra_body", {}))  # e.g. the quota that refused the request
        body["request_id"] = current_request_id()
        return body


def add_request_id_to_error_schemas(result, generator, request, public):
    """drf-spectacular postprocessing hook: error components (type + errors) also carry request_id."""
    for schema in result.get("components", {}).get("schemas", {}).values():
        properties = schema.get("properties", {})
        if {"type", "errors"} <= properties.keys() and "request_id" not in properties:
            properties["request_id"] = {
                "type": "string",
                "description": "The request's correlation id, also in the X-Request-ID header.",
            }
            schema.setdefault("required", []).append("request_id")
    return result


class DependencyUnavailable(APIException):
    """A service the request needs (database, Redis, a provider) is down: 503, with the detail logged."""

    status_code = 503
    default_detail = "A service this request needs is unavailable; try again shortly."
    default_code = "service_unavailable"


class ExceptionHandler(StandardExceptionHandler):
    """drf-standardized-errors' handler, passing on headers an exception carries (e.g. RateLimit)."""

    def get_headers(self, exc):
        return {**super().get_headers(exc), **getattr(exc, "headers", {})}


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """Pages of at most 200 items, however many are asked for."""

    max_limit = 200


def int_or_404(value) -> int:
    """A path id that is not a whole number names nothing: 404, like an id that does not exist."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise NotFound() from None


def uuid_or_404(value) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound() from None
