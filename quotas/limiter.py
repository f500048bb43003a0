"""The limiter: every applicable limit of a request checked and counted in one atomic Redis script.

All or nothing: the script first compares each counter plus the request's amount with its limit and
only if all fit does it add the amounts, so a request refused by one limit consumes nothing from the
others, and concurrent requests across processes can never together pass a limit. Windows are fixed
(minute, hour, UTC day, calendar month); a counter's key names its window, so it expires with it.

When Redis is unreachable, `LocalLimiter` applies the same rules inside the process (approximate across
processes; see quotas.services.admission for when that is allowed).

Every key a request touches carries the user's hash tag (`sb:q:{u42}:...`): on Redis Cluster a script's keys
must live in one slot, and all of a user's counters (their keys' too) and their generation do.
"""

import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from django_redis import get_redis_connection

# The last two keys are the generation and the user's holds. The generation is a random value set once:
# Redis losing its data (a restart without persistence, a failover) loses it too, so a reservation made
# before cannot be given back to counters that no longer hold it. A hold records what a request reserved
# from its budgets (tokens, cost) until it settles: a process that dies first (SIGKILL, a lost host) never
# settles, and RELEASE_SCRIPT gives the reservation back once its deadline has passed.
ADMIT_SCRIPT = """
local n = #KEYS - 2
local generation = redis.call('GET', KEYS[n + 1])
if not generation then
  generation = ARGV[n * 4 + 1]
  redis.call('SET', KEYS[n + 1], generation)
end
for i = 1, n do
  local limit = tonumber(ARGV[(i - 1) * 4 + 1])
  local amount = tonumber(ARGV[(i - 1) * 4 + 2])
  local current = tonumber(redis.call('GET', KEYS[i]) or '0')
  if current + amount > limit then
    return {i, current, redis.call('TTL', KEYS[i])}
  end
end
local result = {0, generation}
local held = {ARGV[n * 4 + 3]}
for i = 1, n do
  local limit = tonumber(ARGV[(i - 1) * 4 + 1])
  local amount = tonumber(ARGV[(i - 1) * 4 + 2])
  local value = redis.call('INCRBY', KEYS[i], amount)
  if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ARGV[(i - 1) * 4 + 3]) end
  result[i + 2] = limit - value
  if ARGV[(i - 1) * 4 + 4] == '1' then
    held[#held + 1] = KEYS[i]
    held[#held + 1] = amount
  end
end
if #held > 1 then
  redis.call('HSET', KEYS[n + 2], ARGV[n * 4 + 2], table.concat(held, ' '))
  redis.call('EXPIRE', KEYS[n + 2], 172800)
end
return result
"""

# Only within the generation the reservation was made in; never below zero. A hold already released
# (its deadline passed before the request settled) gave the reservation back: what was used is added.
ADJUST_SCRIPT = """
local n = #KEYS - 2
if redis.call('GET', KEYS[n + 1]) ~= ARGV[n * 2 + 1] then return -1 end
local held = redis.call('HDEL', KEYS[n + 2], ARGV[n * 2 + 2])
for i = 1, n do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local delta = tonumber(ARGV[(i - 1) * 2 + 1])
    if held == 0 then delta = delta + tonumber(ARGV[(i - 1) * 2 + 2]) end
    if delta ~= 0 and redis.call('INCRBY', KEYS[i], delta) < 0 then redis.call('SET', KEYS[i], 0, 'KEEPTTL') end
  end
end
return n
"""

# A hold past its deadline: give back what it reserved. The counters it names are the user's own (the same
# hash tag, so the same cluster slot as the holds key).
RELEASE_SCRIPT = """
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return 0 end
local parts = {}
for part in string.gmatch(value, '%S+') do parts[#parts + 1] = part end
if tonumber(parts[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
for i = 2, #parts - 1, 2 do
  if redis.call('EXISTS', parts[i]) == 1 then
    if redis.call('DECRBY', parts[i], tonumber(parts[i + 1])) < 0 then redis.call('SET', parts[i], 0, 'KEEPTTL') end
  end
end
return 1
"""


def user_tag(user_id: int) -> str:
    return f"sb:q:{{u{user_id}}}"


def generation_key(user_id: int) -> str:
    return f"{user_tag(user_id)}:generation"


def holds_key(user_id: int) -> str:
    return f"{user_tag(user_id)}:holds"


HOLDS_PATTERN = "sb:q:{u*}:holds"


WINDOW_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass
class Counter:
    """One limit applied to one request: where it is counted, its limit and what this request adds."""

    key: str
    limit: int
    amount: int
    ttl: int
    policy: str
    field: str
    window_seconds: int
    refundable: bool = False  # a budget (tokens, cost): reserved at admission, given back in part at settling


@dataclass
class Refusal:
    counter: Counter
    current: int
    reset_seconds: int


def window(name: str, now: float | None = None) -> tuple[str, int, int]:
    """(window id, seconds until it ends, its length) for a window name."""
    now = time.time() if now is None else now
    if name == "month":
        moment = datetime.fromtimestamp(now, UTC)
        following = datetime(moment.year + (moment.month == 12), moment.month % 12 + 1, 1, tzinfo=UTC)
        start = datetime(moment.year, moment.month, 1, tzinfo=UTC)
        return f"{moment:%Y%m}", int(following.timestamp() - now) + 1, int((following - start).total_seconds())
    length = WINDOW_SECONDS[name]
    return str(int(now // length)), length - int(now % length), length


def admit_call(user_id: int, counters: list[Counter], hold: str = "", deadline: float = 0) -> tuple[list[str], list]:
    """The keys and arguments of ADMIT_SCRIPT for these counters; the budgets' reservation is held under
    `hold` until `deadline` (a Unix time) if the request never settles."""
    args = [value for c in counters for value in (c.limit, c.amount, c.ttl, int(c.refundable))]
    args += [uuid.uuid4().hex, hold or uuid.uuid4().hex, int(deadline)]
    return [c.key for c in counters] + [generation_key(user_id), holds_key(user_id)], args


def admit_result(counters: list[Counter], result) -> tuple[Refusal | None, list[int], str]:
    """(refusal, remaining per counter, generation); nothing is counted when there is a refusal."""
    if result[0]:
        counter = counters[result[0] - 1]
        ttl = int(result[2])  # -2: no counter yet
        return Refusal(counter, int(result[1]), ttl if ttl > 0 else counter.ttl), [], ""
    generation = result[1].decode() if isinstance(result[1], bytes) else result[1]
    return None, [int(value) for value in result[2:]], generation


def adjust_call(
    user_id: int, deltas: list[tuple[str, int, int]], generation: str, hold: str
) -> tuple[list[str], list] | None:
    """The keys and arguments of ADJUST_SCRIPT for (counter key, delta, reserved amount) of each budget, or
    None when the request reserved from no budget."""
    if not deltas:
        return None
    keys = [key for key, _, _ in deltas] + [generation_key(user_id), holds_key(user_id)]
    return keys, [value for _, delta, reserved in deltas for value in (delta, reserved)] + [generation, hold]


class RedisLimiter:
    """The scripts run from sync code, one round trip each (async code puts them in its own pipelines). On
    the platform's Redis unless given another client (tests/quotas/test_cluster.py gives a cluster's)."""

    def __init__(self, redis=None):
        self.redis = redis if redis is not None else get_redis_connection("default")
        self._admit = self.redis.register_script(ADMIT_SCRIPT)
        self._adjust = self.redis.register_script(ADJUST_SCRIPT)
        self._release = self.redis.register_script(RELEASE_SCRIPT)

    def admit(
        self, user_id: int, counters: list[Counter], hold: str = "", deadline: float = 0
    ) -> tuple[Refusal | None, list[int], str]:
        if not counters:
            return None, [], ""
        keys, args = admit_call(user_id, counters, hold, deadline)
        return admit_result(counters, self._admit(keys=keys, args=args))

    def adjust(self, user_id: int, deltas: list[tuple[str, int, int]], generation: str, hold: str = "") -> None:
        call = adjust_call(user_id, deltas, generation, hold)
        if call is not None:
            self._adjust(keys=call[0], args=call[1])

    def release_expired(self, now: float) -> int:
        """Give back the reservations of requests that never settled, once their deadline has passed."""
        released = 0
        for key in self.redis.scan_iter(match=HOLDS_PATTERN, count=500):
            for hold, value in self.redis.hgetall(key).items():
                if float(value.split(maxsplit=1)[0]) < now:
                    released += self._release(keys=[key], args=[hold, int(now)])
        return released


class LocalLimiter:
    """The same rules within one process, for when Redis is down (each process counts on its own)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.values: dict[str, tuple[int, float]] = {}

    def admit(self, user_id: int, counters: list[Counter]) -> tuple[Refusal | None, list[int], str]:
        now = time.monotonic()
        with self.lock:
            current = {}
            for counter in counters:
                value, expires = self.values.get(counter.key, (0, 0))
                current[counter.key] = value if expires > now else 0
                if current[counter.key] + counter.amount > counter.limit:
                    return Refusal(counter, current[counter.key], counter.ttl), [], ""
            remaining = []
            for counter in counters:
                value = current[counter.key] + counter.amount
                expires = self.values.get(counter.key, (0, now + counter.ttl))[1]
                self.values[counter.key] = (value, expires if expires > now else now + counter.ttl)
                remaining.append(counter.limit - value)
            return None, remaining, ""

    def adjust(self, user_id: int, deltas: list[tuple[str, int, int]], generation: str = "", hold: str = "") -> None:
        with self.lock:
            for key, delta, _ in deltas:
                if key in self.values:
                    value, expires = self.values[key]
                    self.values[key] = (max(value + delta, 0), expires)


local_limiter = LocalLimiter()
