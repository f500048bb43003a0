"""When Redis stops answering, a process waits for it once, not on every call.

Every Redis connection of the platform gets `FailFast` as its retry policy: a call that fails with a
connection error or a timeout marks Redis down in this process for REDIS_RETRY_AFTER_SECONDS, and until
then every call fails at once with a ConnectionError. The callers' documented fallbacks (the cache
bypassed, request limits counted in the process, budgets refused) then take milliseconds instead of a
socket timeout each: a request with Redis hung costs one timeout, and the first call after the pause
finds out whether Redis is back.
"""

import logging
import time

from django.conf import settings
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, TimeoutError
from redis.retry import Retry

logger = logging.getLogger("switchboard.redis")

_down_until = 0.0


def forget_outage() -> None:
    """Ask Redis again at the next call (tests that stood for an outage leave none behind)."""
    global _down_until
    _down_until = 0.0


def redis_marked_down() -> bool:
    return time.monotonic() < _down_until


def _mark_down(error: Exception) -> None:
    global _down_until
    if not redis_marked_down():
        logger.warning(
            "Redis is not answering (%s); calls fail at once for %s s",
            error.__class__.__name__,
            settings.REDIS_RETRY_AFTER_SECONDS,
            extra={"metric": "redis_unavailable"},
        )
    _down_until = time.monotonic() + settings.REDIS_RETRY_AFTER_SECONDS


class FailFast(Retry):
    """No retries; a failure marks Redis down for the process, and calls while it is down fail at once."""

    def __init__(self):
        super().__init__(NoBackoff(), 0, supported_errors=(ConnectionError, TimeoutError, OSError))

    def call_with_retry(self, do, fail, is_retryable=None, with_failure_count=False):
        if redis_marked_down():
            raise ConnectionError("Redis did not answer a moment ago; not asking again yet.")
        try:
            return super().call_with_retry(do, fail, is_retryable, with_failure_count)
        except (ConnectionError, TimeoutError, OSError) as error:
            _mark_down(error)
            raise


class AsyncFailFast(AsyncRetry):
    """FailFast for redis.asyncio connections, sharing the same mark."""

    def __init__(self):
        super().__init__(NoBackoff(), 0, supported_errors=(ConnectionError, TimeoutError, OSError))

    async def call_with_retry(self, do, fail, is_retryable=None, with_failure_count=False):
        if redis_marked_down():
            raise ConnectionError("Redis did not answer a moment ago; not asking again yet.")
        try:
            return await super().call_with_retry(do, fail, is_retryable, with_failure_count)
        except (ConnectionError, TimeoutError, OSError) as error:
            _mark_down(error)
            raise
