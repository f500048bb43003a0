"""ProviderError, and the SDKs' errors translated to the status the caller gets."""

import sys

from agents.models import Provider
from core.exceptions import UpstreamError


class ProviderError(UpstreamError):
    """The provider failed; `status` is what the caller gets (502 bad answer, 503 down, 504 timeout)."""

    def __init__(self, message: str, status: int = 502, retry_after: int | None = None, provider_fault: bool = True):
        super().__init__(message, status=status, retry_after=retry_after)
        # Whether it counts against the provider's breaker: an outage does, a rate limit or a bad request not.
        self.provider_fault = provider_fault


def translate(error: Exception, provider: Provider) -> ProviderError:
    """SDK errors of both vendors to the status the caller gets."""
    name = provider.name
    if isinstance(error, _sdk_classes("APITimeoutError")) and _timed_out(error):
        return ProviderError(f"The model provider {name!r} timed out.", status=504)
    if isinstance(error, _sdk_classes("APITimeoutError")):
        return ProviderError(f"The model provider {name!r} cannot be reached.", status=503, retry_after=30)
    if isinstance(error, _sdk_classes("APIConnectionError")):
        return ProviderError(f"The model provider {name!r} cannot be reached.", status=503, retry_after=30)
    if isinstance(error, _sdk_classes("RateLimitError")):
        return ProviderError(
            f"The model provider {name!r} is rate limiting us.", status=503, retry_after=30, provider_fault=False
        )
    if isinstance(error, _sdk_classes("BadRequestError")):
        return ProviderError(
            f"The model provider {name!r} refused the request as invalid.", status=400, provider_fault=False
        )
    if isinstance(error, _sdk_classes("APIStatusError")) and error.status_code >= 500:
        return ProviderError(f"The model provider {name!r} failed.", status=502)
    return ProviderError(f"The model provider {name!r} answered with an error.", status=502)


def _timed_out(error: Exception) -> bool:
    """Whether an SDK timeout is one: under the aiohttp transport a refused or dropped connection is
    reported as a connect timeout too, with aiohttp's own error as its cause."""
    import aiohttp

    cause = error.__cause__
    while cause is not None:
        if isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(cause, TimeoutError):
            return False
        cause = cause.__cause__
    return True


def sdk_errors() -> tuple:
    """The base error of each SDK imported (an empty tuple catches nothing)."""
    return _sdk_classes("OpenAIError") + _sdk_classes("AnthropicError")


def _sdk_classes(name: str) -> tuple[type, ...]:
    """The class `name` of each SDK this process has imported (both name their errors alike). An SDK is imported
    where a call is made (clients.py), so an error can only come from one already imported: looking it up
    does not import the other, seconds spent while a call waits."""
    imported = (sys.modules.get("openai"), sys.modules.get("anthropic"))
    return tuple(getattr(sdk, name) for sdk in imported if hasattr(sdk, name))


def cut_off(provider: Provider) -> ProviderError:
    return ProviderError(f"The model provider {provider.name!r} cut the answer off.", status=502)
