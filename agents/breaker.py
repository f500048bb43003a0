"""A circuit breaker per provider, in Redis so that every process sees the same state.

BREAKER_FAILURES failures within BREAKER_WINDOW_SECONDS open it: calls then fail at once with a 503 for
BREAKER_OPEN_SECONDS. After that the next call is a trial: success closes the breaker, failure opens it
again at once. With Redis unreachable the breaker stands aside (calls go through) and says so in the log.
"""

import logging

from django.conf import settings
from django_redis import get_redis_connection

from agents.providers import ProviderError

logger = logging.getLogger("switchboard.providers")


class CircuitOpen(ProviderError):
    def __init__(self, provider_name: str, retry_after: int):
        super().__init__(
            f"The model provider {provider_name!r} is failing; calls are paused for a while.",
            status=503,
            retry_after=retry_after,
        )


def _keys(name: str) -> tuple[str, str, str]:
    return f"sb:cb:{name}:fails", f"sb:cb:{name}:open", f"sb:cb:{name}:tripped"


def _redis():
    return get_redis_connection("default")


def check(name: str) -> None:
    """Raise CircuitOpen while the provider's breaker is open; after the pause, let one trial call through."""
    _, open_key, tripped = _keys(name)
    try:
        redis = _redis()
        remaining_ms = redis.pttl(open_key)
        if remaining_ms and remaining_ms > 0:
            raise CircuitOpen(name, retry_after=max(1, -(-remaining_ms // 1000)))
        if redis.exists(tripped) and not redis.set(f"sb:cb:{name}:trial", 1, nx=True, ex=settings.BREAKER_OPEN_SECONDS):
            raise CircuitOpen(name, retry_after=1)  # another request is making the trial call
    except CircuitOpen:
        raise
    except Exception as error:
        logger.warning("circuit breaker unavailable (%s); calling %s anyway", error.__class__.__name__, name)


def record_success(name: str) -> None:
    fails, _, tripped = _keys(name)
    try:
        _redis().delete(fails, tripped, f"sb:cb:{name}:trial")
    except Exception:
        pass


def record_failure(name: str) -> None:
    fails, open_key, tripped = _keys(name)
    try:
        redis = _redis()
        pipe = redis.pipeline()
        pipe.incr(fails)
        pipe.exists(tripped)
        count, was_tripped = pipe.execute()
        if count == 1:
            redis.expire(fails, settings.BREAKER_WINDOW_SECONDS)
        if count >= settings.BREAKER_FAILURES or was_tripped:
            pipe = redis.pipeline()
            pipe.set(open_key, 1, ex=settings.BREAKER_OPEN_SECONDS)
            pipe.set(tripped, 1, ex=settings.BREAKER_OPEN_SECONDS * 10)  # the next failure reopens at once
            pipe.delete(fails, f"sb:cb:{name}:trial")
            pipe.execute()
            logger.error("circuit breaker for %s opened after %s failures", name, count)
    except Exception as error:
        logger.warning("circuit breaker unavailable (%s)", error.__class__.__name__)
