"""The response cache in Redis.

The key is a SHA-256 of the canonical input: agent type, agent id and version, model, messages, the
parameters that change the answer, the memories put in the prompt, the owner unless the agent type's
scope is `shared`, and three namespace versions (all, agent type, agent). Invalidation bumps a version:
O(1) whatever the number of entries; the old entries simply expire. The versions are kept in each process
(core.local_cache, dropped everywhere on invalidation), so a lookup is one GET, which the pipeline sends in
the same round trip as its quota admission.

An entry lives for the agent type's TTL plus RESPONSE_CACHE_STALE_SECONDS: past its TTL it is no longer a
hit, but it may still be served, marked STALE, when the provider is down. Concurrent identical misses
elect one leader through a short lock; the others wait for its entry (single flight). Any Redis failure
is logged and the request goes to the provider: the cache never fails a request.

Keys: entries `sb:rc:e:<digest>` and locks `sb:rc:l:<digest>` are single-key operations; the versions share
one hash tag (`sb:rc:{v}:...`) so that reading them is one MGET on Redis Cluster too.
"""

import asyncio
import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django_redis import get_redis_connection

from core import aredis, local_cache

logger = logging.getLogger("switchboard.cache")

PREFIX = "sb:rc"


@dataclass
class Entry:
    text: str
    input_tokens: int
    output_tokens: int
    fresh: bool
    tool_calls: list = field(default_factory=list)
    finish_reason: str = "stop"


def entry_name(key: str) -> str:
    return f"{PREFIX}:e:{key}"


def lock_name(key: str) -> str:
    return f"{PREFIX}:l:{key}"


def stats_name(agent_type_slug: str) -> str:
    return f"{PREFIX}:stats:{agent_type_slug}"


def _version_names(agent) -> list[str]:
    return [f"{PREFIX}:{{v}}:all", f"{PREFIX}:{{v}}:type:{agent.agent_type_id}", f"{PREFIX}:{{v}}:agent:{agent.pk}"]


def _versions(agent) -> list[int]:
    return [int(value or 0) for value in get_redis_connection("default").mget(_version_names(agent))]


async def entry_key(
    *, agent, user, model_name: str, messages: list[dict], options: dict, temperature: float, max_tokens: int, memories
) -> str:
    """The cache key of one request (raises on a Redis failure: callers treat that as an outage)."""
    versions = await local_cache.aget("rcversions", f"{agent.agent_type_id}:{agent.pk}", load=lambda: _versions(agent))
    canonical = {
        "agent_type": agent.agent_type.slug,
        "agent": agent.pk,
        "agent_version": agent.version,
        "model": model_name,
        "messages": messages,
        "options": options,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "memories": memories,
        "owner": None if agent.agent_type.cache_scope == "shared" else user.pk,
        "namespaces": versions,
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def decode(raw) -> Entry | None:
    if raw is None:
        return None
    data = json.loads(raw)
    return Entry(
        data["text"],
        data["input_tokens"],
        data["output_tokens"],
        fresh=time.time() < data["fresh_until"],
        tool_calls=data.get("tool_calls", []),
        finish_reason=data.get("finish_reason", "stop"),
    )


def encode(completion, *, ttl: int) -> tuple[str, int]:
    """The stored value of a completion and how long Redis keeps it (the TTL, plus the time it may be
    served stale)."""
    data = {
        "text": completion.text,
        "input_tokens": completion.input_tokens,
        "output_tokens": completion.output_tokens,
        "tool_calls": completion.tool_calls,
        "finish_reason": completion.finish_reason,
        "fresh_until": time.time() + ttl,
    }
    return json.dumps(data), ttl + settings.RESPONSE_CACHE_STALE_SECONDS


# Delete the lock only if it is still ours (a leader that overran must not free its successor's lock).
RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


async def acquire(key: str, seconds: float) -> tuple[str | None, Entry | None]:
    """Try to become the one request that calls the provider for this key: the lock's token (or None), and
    the entry as it is now, read in the same round trip (a leader that finished since the lookup stored it)."""
    token = uuid.uuid4().hex
    commands = aredis.client().pipeline(transaction=False)
    commands.set(lock_name(key), token, nx=True, px=int(seconds * 1000))
    commands.get(entry_name(key))
    acquired, raw = await commands.execute()
    return (token if acquired else None), decode(raw)


async def release(key: str, token: str) -> None:
    await aredis.client().eval(RELEASE_SCRIPT, 1, lock_name(key), token)


async def wait_for(key: str, seconds: float) -> Entry | None:
    """Wait for the leader's fresh entry; None if it gave up (then the caller tries to lead itself)."""
    deadline = time.monotonic() + seconds
    redis = aredis.client()
    while time.monotonic() < deadline:
        entry = decode(await redis.get(entry_name(key)))
        if entry is not None and entry.fresh:
            return entry
        if not await redis.exists(lock_name(key)):
            entry = decode(await redis.get(entry_name(key)))
            return entry if entry is not None and entry.fresh else None
        await asyncio.sleep(0.02)
    return None


def stats(agent_type_slug: str) -> dict[str, int]:
    try:
        raw = get_redis_connection("default").hgetall(stats_name(agent_type_slug))
    except Exception:
        return {}
    return {name.decode(): int(value) for name, value in raw.items()}


# --- invalidation: each one INCR (or DEL), then every process drops the versions it keeps ----------------


def invalidate_entry(key: str) -> None:
    get_redis_connection("default").delete(entry_name(key))


def invalidate_agent(agent_id: int) -> None:
    get_redis_connection("default").incr(f"{PREFIX}:{{v}}:agent:{agent_id}")
    local_cache.invalidate("rcversions")


def invalidate_agent_type(agent_type_id: int) -> None:
    get_redis_connection("default").incr(f"{PREFIX}:{{v}}:type:{agent_type_id}")
    local_cache.invalidate("rcversions")


def invalidate_all() -> None:
    get_redis_connection("default").incr(f"{PREFIX}:{{v}}:all")
    local_cache.invalidate("rcversions")
