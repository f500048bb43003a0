"""The domain exceptions: what a service raises when a request cannot be done as asked.

Services raise these (and Django's ValidationError, Http404 and PermissionDenied), never an HTTP or DRF
exception; the one API exception handler (`core.api_errors`) answers for them all:

    ValidationError 400   PermissionDenied 403   Http404 404   Conflict 409   Refused 422
    RateLimited 429 (Retry-After, the limit's headers and body)   Unavailable 503 (Retry-After)
    UpstreamError: the status it carries, 502 / 503 / 504 (Retry-After where known)

Apps subclass them (quotas.QuotaExceeded is a RateLimited, agents' ProviderError an UpstreamError).
Tracked tasks retry the transient ones (tasks.tracked).
"""


class DomainError(Exception):
    """An expected failure a caller can act on. `status` and `code` are what the API answers with."""

    status = 400
    code = "invalid"
    transient = False  # worth trying again later: tracked tasks retry it

    def __init__(self, message: str = "", *, retry_after: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.headers: dict[str, str] = {}  # added to the response, e.g. RateLimit
        self.extra_body: dict = {}  # added to the error body, e.g. {"quota": {...}}


class Conflict(DomainError):
    """The request is valid but clashes with the current state."""

    status = 409
    code = "conflict"


class Refused(DomainError):
    """A policy refused the content (the content guard); never cached."""

    status = 422
    code = "refused"


class RateLimited(DomainError):
    """A limit is reached; `retry_after` says when it resets."""

    status = 429
    code = "throttled"
    transient = True


class Unavailable(DomainError):
    """A service the request needs (Redis, the broker, a budget store) is down."""

    status = 503
    code = "service_unavailable"
    transient = True

    def __init__(self, message: str = "A service this request needs is unavailable; try again shortly.", **kwargs):
        super().__init__(message, **kwargs)


class UpstreamError(DomainError):
    """A service we call on the caller's behalf (a model provider) failed: 502 bad answer, 503 down,
    504 timed out, or 400 when it refused the request as invalid."""

    code = "provider_error"

    def __init__(self, message: str, *, status: int = 502, retry_after: int | None = None):
        super().__init__(message, retry_after=retry_after)
        self.status = status

    @property
    def transient(self) -> bool:
        return self.status in (503, 504)
