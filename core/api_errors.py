"""The API's one exception handler and its one error shape: drf-standardized-errors' body plus the request id.

    {"type": "validation_error", "errors": [{"code": ..., "detail": ..., "attr": ...}], "request_id": "..."}

The handler maps every domain exception (`core.exceptions`) and Django's ValidationError to their status,
with the headers and body additions they carry (Retry-After, RateLimit, the quota that refused); views
and tasks never translate one by hand. The schema hook declares `request_id` on every error component,
so the OpenAPI schema documents what clients receive.
"""

import logging

import redis
from django import db
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import JsonResponse
from drf_standardized_errors.formatter import ExceptionFormatter as StandardExceptionFormatter
from drf_standardized_errors.handler import ExceptionHandler as StandardExceptionHandler
from rest_framework import exceptions
from rest_framework.serializers import as_serializer_error

from core.correlation import current_request_id
from core.exceptions import DomainError, Unavailable
from core.parsers import RequestTooLarge

logger = logging.getLogger("switchboard.api")

# The database or Redis down, where no step of the request had a fallback: a 503, never a 500.
DEPENDENCY_ERRORS = (db.OperationalError, db.InterfaceError, redis.ConnectionError, redis.TimeoutError)


class BodyTooLarge(RequestDataTooBig):
    """A body over REQUEST_BODY_CEILING_BYTES, which the server did not read: a 413 wherever it is read."""


class DomainAPIException(exceptions.APIException):
    """A domain exception as DRF sees it: its status, code, Retry-After, headers and body additions."""

    def __init__(self, error: DomainError):
        super().__init__(detail=str(error) or None, code=error.code)
        self.status_code = error.status
        self.wait = error.retry_after
        self.headers = error.headers
        self.extra_body = error.extra_body


class ExceptionHandler(StandardExceptionHandler):
    def convert_known_exceptions(self, exc):
        if isinstance(exc, DomainError):
            return DomainAPIException(exc)
        if isinstance(exc, DjangoValidationError):
            return exceptions.ValidationError(as_serializer_error(exc))
        if isinstance(exc, PermissionDenied):  # keep the service's reason
            return exceptions.PermissionDenied(str(exc) or None)
        if isinstance(exc, BodyTooLarge):  # a body not read at all (core.middleware.RequestBodyLimit)
            too_large = exceptions.APIException(str(exc), code=RequestTooLarge.default_code)
            too_large.status_code = RequestTooLarge.status_code
            return too_large
        if isinstance(exc, RequestDataTooBig):  # Django's own bound on a body read whole
            return RequestTooLarge()
        if isinstance(exc, DEPENDENCY_ERRORS):  # a service down that no step had a fallback for
            logger.error("a dependency failed: %r", exc, extra={"metric": "dependency_unavailable"})
            return DomainAPIException(Unavailable())
        return super().convert_known_exceptions(exc)

    def get_headers(self, exc):
        return {**super().get_headers(exc), **getattr(exc, "headers", {})}


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


def error_response(*, status: int, code: str, detail: str) -> JsonResponse:
    """The error body, for answers made outside DRF (middleware, the 404 and 500 handlers of /api/)."""
    body = {
        "type": "client_error" if status < 500 else "server_error",
        "errors": [{"code": code, "detail": detail, "attr": None}],
        "request_id": current_request_id(),
    }
    return JsonResponse(body, status=status)
