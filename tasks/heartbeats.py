"""Heartbeats: that a worker consumes each queue, and that beat ticks (read by /readyz, the status page and the
`silent` alert rule).

Beat sends `platform.heartbeat` to each of HEARTBEAT_QUEUES (a beat job per queue); the worker that runs it
records the queue's key. Beat's own key is written by the beat process on its ticks
(platform_site.health.HeartbeatScheduler), so a silent beat is told apart from a queue no worker takes.
"""

import socket
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

BEAT_KEY = "platform:beat"


def worker_key(queue_name: str) -> str:
    return f"platform:heartbeat:{queue_name}"


def _record(key: str, *, hostname: str, at: datetime | None = None) -> None:
    cache.set(key, {"at": (at or timezone.now()).isoformat(), "hostname": hostname}, timeout=None)


def record_worker_heartbeat(*, queue_name: str, hostname: str, at: datetime | None = None) -> None:
    """A worker took the heartbeat beat sent to `queue_name`: a worker consumes that queue."""
    _record(worker_key(queue_name), hostname=hostname, at=at)


def record_beat_heartbeat(*, at: datetime | None = None) -> None:
    _record(BEAT_KEY, hostname=socket.gethostname(), at=at)


def status(seen: dict | None, now: datetime) -> dict:
    """ok, or stale after three heartbeat intervals, or missing (never recorded)."""
    if not seen:
        return {"status": "missing"}
    age = max((now - datetime.fromisoformat(seen["at"])).total_seconds(), 0.0)
    stale = age > 3 * settings.HEARTBEAT_INTERVAL_SECONDS
    return {
        "status": "stale" if stale else "ok",
        "age_seconds": round(age, 1),
        "last": seen["at"],
        "hostname": seen.get("hostname", ""),
    }


def heartbeats(now: datetime | None = None) -> dict:
    """Every heartbeat in one Redis round trip: {"workers": {queue: status}, "beat": status}."""
    keys = {queue_name: worker_key(queue_name) for queue_name in settings.HEARTBEAT_QUEUES}
    found = cache.get_many([*keys.values(), BEAT_KEY])
    now = now or timezone.now()
    return {
        "workers": {queue_name: status(found.get(key), now) for queue_name, key in keys.items()},
        "beat": status(found.get(BEAT_KEY), now),
    }
