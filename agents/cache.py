"""The response cache in Redis.

The key is a SHA-256 of the canonical input: agent type, agent id and version, model, messages, the
parameters that change the answer, the memories put in the prompt, the owner unless the agent type's
scope is `shared`, and three namespace versions (all, agent type, agent). Invalidation bumps a version:
O(1) whatever the number of entries; the old entries simply expire.

An entry lives for the agent type's TTL plus RESPONSE_CACHE_STALE_SECONDS: past its TTL it is no longer a
hit, but it may still be served, marked STALE, when the provider is down. Concurrent identical misses
elect one leader through a short lock; the others wait for its entry (single flight). Any Redis failure
is logged and the request goes to the provider: the cache never fails a request.
"""

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django_redis import get_redis_connection

logger = logging.getLogger("switchboard.cache")

PREFIX = "sb:rc"


@dataclass
class Entry:
    text: str
    input_tokens: int
    output_tokens: int
    fresh: bool


def _redis():
    return get_redis_connection("default")


def _version_keys(agent) -> list[str]:
    return [f"{PREFIX}:v:all", f"{PREFIX}:v:type:{agent.agent_type_id}", f"{PREFIX}:v:agent:{agent.pk}"]


def entry_key(
    *, agent, user, model_name: str, messages: list[dict], temperature: float, max_tokens: int, memories
) -> str:
    """The cache key of one request (raises on a Redis failure: callers treat that as an outage)."""
    versions = _redis().mget(_version_keys(agent))
    canonical = {
        "agent_type": agent.agent_type.slug,
        "agent": agent.pk,
        "agent_version": agent.version,
        "model": model_name,
        "messages": messages,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "memories": memories,
        "owner": None if agent.agent_type.cache_scope == "shared" else user.pk,
        "namespaces": [int(v or 0) for v in versions],
    }
    digest = hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return digest


def lookup(key: str) -> Entry | None:
    raw = _redis().get(f"{PREFIX}:e:{key}")
    if raw is None:
        return None
    data = json.loads(raw)
    return Entry(data["text"], data["input_tokens"], data["output_tokens"], fresh=time.time() < data["fresh_until"])


def store(key: str, *, text: str, input_tokens: int, output_tokens: int, ttl: int) -> None:
    data = {
        "text": text,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "fresh_until": time.time() + ttl,
    }
    _redis().set(f"{PREFIX}:e:{key}", json.dumps(data), ex=ttl + settings.RESPONSE_CACHE_STALE_SECONDS)


# Delete the lock only if it is still ours (a leader that overran must not free its successor's lock).
RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def acquire(key: str, seconds: float) -> str | None:
    """Become the one request that calls the provider for this key; returns the lock's token, or None."""
    token = uuid.uuid4().hex
    return token if _redis().set(f"{PREFIX}:l:{key}", token, nx=True, px=int(seconds * 1000)) else None


def release(key: str, token: str) -> None:
    _redis().eval(RELEASE_SCRIPT, 1, f"{PREFIX}:l:{key}", token)


def wait_for(key: str, seconds: float) -> Entry | None:
    """Wait for the leader's fresh entry; None if it gave up (then the caller tries to lead itself)."""
    deadline = time.monotonic() + seconds
    redis = _redis()
    while time.monotonic() < deadline:
        entry = lookup(key)
        if entry is not None and entry.fresh:
            return entry
        if not redis.exists(f"{PREFIX}:l:{key}"):
            return lookup(key) if entry is not None and entry.fresh else None
        time.sleep(0.02)
    return None


def count(agent_type_slug: str, outcome: str) -> None:
    try:
        _redis().hincrby(f"{PREFIX}:stats:{agent_type_slug}", outcome, 1)
    except Exception:
        pass


def stats(agent_type_slug: str) -> dict[str, int]:
    try:
        raw = _redis().hgetall(f"{PREFIX}:stats:{agent_type_slug}")
    except Exception:
        return {}
    return {name.decode(): int(value) for name, value in raw.items()}


# --- invalidation: each one INCR ---------------------------------------------------------------------------


def invalidate_entry(key: str) -> None:
    _redis().delete(f"{PREFIX}:e:{key}")


def invalidate_agent(agent_id: int) -> None:
    _redis().incr(f"{PREFIX}:v:agent:{agent_id}")


def invalidate_agent_type(agent_type_id: int) -> None:
    _redis().incr(f"{PREFIX}:v:type:{agent_type_id}")


def invalidate_all() -> None:
    _redis().incr(f"{PREFIX}:v:all")
