"""A circuit breaker per provider, in Redis so that every process sees the same state.

BREAKER_FAILURES failures within BREAKER_WINDOW_SECONDS open it: calls then fail at once with a 503 for
BREAKER_OPEN_SECONDS. After that the next call is a trial: success closes the breaker, failure opens it
again at once. With Redis unreachable the breaker stands aside (calls go through) and says so in the log.

A provider's keys share its hash tag (`sb:cb:{name}:...`), so the scripts work on Redis Cluster. A success
is recorded in the caller's closing pipeline (`success_keys`), not in a round trip of its own.
"""

import logging

from django.conf import settings

from agents.providers import ProviderError
from core import aredis

logger = logging.getLogger("switchboard.providers")

# Open: the seconds left. Tripped (it was open, the pause is over): one caller wins the trial call.
CHECK_SCRIPT = """
local remaining = redis.call('PTTL', KEYS[1])
if remaining > 0 then return {1, remaining} end
if redis.call('EXISTS', KEYS[2]) == 1 then
  if redis.call('SET', KEYS[3], 1, 'NX', 'EX', ARGV[1]) then return {0, 0} end
  return {2, 0}
end
return {0, 0}
"""

FAILURE_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if count >= tonumber(ARGV[2]) or redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('SET', KEYS[2], 1, 'EX', ARGV[3])
  redis.call('SET', KEYS[3], 1, 'EX', ARGV[3] * 10)
  redis.call('DEL', KEYS[1], KEYS[4])
  return count
end
return 0
"""


class CircuitOpen(ProviderError):
    def __init__(self, provider_name: str, retry_after: int):
        super().__init__(
            f"The model provider {provider_name!r} is failing; calls are paused for a while.",
            status=503,
            retry_after=retry_after,
        )


def _keys(name: str) -> tuple[str, str, str, str]:
    tag = f"sb:cb:{{{name}}}"
    return f"{tag}:fails", f"{tag}:open", f"{tag}:tripped", f"{tag}:trial"


def success_keys(name: str) -> list[str]:
    """What a success deletes: the failure count, the trip and the trial (in the caller's pipeline)."""
    fails, _, tripped, trial = _keys(name)
    return [fails, tripped, trial]


def look(commands, name: str) -> None:
    """Read the breaker's state into the caller's pipeline (two results: ms it stays open, tripped): with
    them, `check` of a closed breaker, the usual case, needs no round trip of its own."""
    _, open_key, tripped, _ = _keys(name)
    commands.pttl(open_key)
    commands.exists(tripped)


async def check(name: str, seen: tuple[int, int] | None = None) -> None:
    """Raise CircuitOpen while the provider's breaker is open; after the pause, let one trial call through.
    `seen` is the state `look` read a moment ago, if it did."""
    if seen is not None:
        open_ms, was_tripped = seen
        if open_ms > 0:
            raise CircuitOpen(name, retry_after=max(1, -(-int(open_ms) // 1000)))
        if not was_tripped:
            return
    _, open_key, tripped, trial = _keys(name)
    try:
        state, remaining_ms = await aredis.client().eval(
            CHECK_SCRIPT, 3, open_key, tripped, trial, settings.BREAKER_OPEN_SECONDS
        )
    except Exception as error:
        logger.warning("circuit breaker unavailable (%s); calling %s anyway", error.__class__.__name__, name)
        return
    if state == 1:
        raise CircuitOpen(name, retry_after=max(1, -(-int(remaining_ms) // 1000)))
    if state == 2:
        raise CircuitOpen(name, retry_after=1)  # another request is making the trial call


CLOSED, OPEN, HALF_OPEN = 0, 1, 2


def states(names) -> dict[str, int]:
    """Each provider's breaker now (CLOSED, OPEN, HALF_OPEN: the pause is over and the next call is a trial), in
    one round trip, for the metrics; empty when Redis cannot say."""
    from django_redis import get_redis_connection

    names = list(names)
    try:
        commands = get_redis_connection("default").pipeline(transaction=False)
        for name in names:
            look(commands, name)
        results = commands.execute()
    except Exception as error:
        logger.warning("circuit breakers unreadable (%s)", error.__class__.__name__)
        return {}
    return {
        name: OPEN if open_ms > 0 else HALF_OPEN if tripped else CLOSED
        for name, open_ms, tripped in zip(names, results[::2], results[1::2], strict=True)
    }


async def record_failure(name: str) -> None:
    try:
        count = await aredis.client().eval(
            FAILURE_SCRIPT,
            4,
            *_keys(name),
            settings.BREAKER_WINDOW_SECONDS,
            settings.BREAKER_FAILURES,
            settings.BREAKER_OPEN_SECONDS,
        )
    except Exception as error:
        logger.warning("circuit breaker unavailable (%s)", error.__class__.__name__)
        return
    if count:
        logger.error("circuit breaker for %s opened after %s failures", name, count)
