"""Long operations: 202 Accepted with where to poll, and the Idempotency-Key header that makes a repeated
request return the first answer instead of starting the work twice."""

from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, status
from rest_framework.response import Response

IDEMPOTENCY_KEY_MAX_LENGTH = 200

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    location=OpenApiParameter.HEADER,
    required=False,
    description="Repeat a request with the same key to get the first answer back instead of a second task.",
)


def idempotency_key(request) -> str:
    """The request's Idempotency-Key header, or "" (400 when it is too long)."""
    key = request.headers.get("Idempotency-Key", "")
    if len(key) > IDEMPOTENCY_KEY_MAX_LENGTH:
        raise exceptions.ValidationError({"Idempotency-Key": [f"At most {IDEMPOTENCY_KEY_MAX_LENGTH} characters."]})
    return key


def accepted(request, *, body: dict, location: str) -> Response:
    """202 with the work's representation and, in `Location`, the absolute URL to poll it at."""
    return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": request.build_absolute_uri(location)})
