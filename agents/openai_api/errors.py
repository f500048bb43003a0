"""Errors in OpenAI's shape. The one exception handler (core.api_errors) decides the status and headers
(Retry-After, RateLimit) as for every other view; this only rewrites the body as OpenAI's SDKs read it."""

import json

from django.http import Http404
from drf_standardized_errors.handler import exception_handler
from rest_framework.exceptions import NotFound

from agents.openai_api.schema import OpenAISchema
from agents.openai_api.shapes import error_body

# OpenAI's `code` for what it has a word for; otherwise the platform's own code.
CODES = {401: "invalid_api_key", 404: "model_not_found", 422: "content_filter", 429: "rate_limit_exceeded"}


class OpenAIErrors:
    """A view mixin: the view's errors in OpenAI's shape, answered and in the schema."""

    schema = OpenAISchema()

    def get_exception_handler(self):
        return openai_exception_handler


def openai_exception_handler(exc, context):
    if isinstance(exc, Http404):  # its message says which model is missing
        exc = NotFound(str(exc) or None)
    place = getattr(exc, "place", None)  # a content guard's block: where it was (the message names the detector)
    response = exception_handler(exc, context)
    if response is not None:
        [first, *_] = response.data["errors"]
        code = CODES.get(response.status_code, first["code"])
        if response.status_code == 404 and "model" not in str(first["detail"]):
            code = "not_found"
        param = place or first["attr"]
        response.data = error_body(response.status_code, str(first["detail"]), param=param, code=code)
    return response


def stream_error(error) -> str:
    """The event that cuts a stream: the SDKs raise it as an APIError. A guard's block is a `content_filter`
    naming the detector in its message and where in `param`, as the same request unstreamed is answered."""
    status = getattr(error, "status", 500)
    code = CODES.get(status, getattr(error, "code", None))
    body = error_body(status, str(error), param=getattr(error, "place", None), code=code)
    return f"data: {json.dumps(body)}\n\n"
