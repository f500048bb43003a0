"""Liveness and readiness.

`/healthz` answers as long as the process serves requests and touches nothing else. `/readyz` checks the
database, Redis and the Celery broker, each with its latency, and answers 503 naming what is down. It
also reports the age of the last Celery beat heartbeat (informational: a stopped beat does not make the
web process unready), and the run recorder's backlog: runs answered but not yet written to PostgreSQL
(`behind` past half of RUN_STREAM_MAX_BACKLOG; at the limit requests write their own runs, so it is
informational too).
"""

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from kombu import Connection
from kombu.exceptions import ChannelError

logger = logging.getLogger(__name__)

HEARTBEAT_KEY = "platform:heartbeat"


@dataclass
class CheckResult:
    ok: bool
    latency_ms: float
    error: str | None = None

    def as_dict(self) -> dict:
        body = {"ok": self.ok, "latency_ms": self.latency_ms}
        if self.error:
            body["error"] = self.error
        return body


def _timed(name: str, probe) -> CheckResult:
    started = time.perf_counter()
    try:
        probe()
    except Exception as exc:  # any failure of a dependency means "down", whatever its type
        latency = round((time.perf_counter() - started) * 1000, 2)
        logger.warning("readiness check %s failed: %s", name, exc, extra={"check": name})
        # The caller sees the kind of failure only; details (hosts, paths) stay in the log.
        return CheckResult(ok=False, latency_ms=latency, error=type(exc).__name__)
    return CheckResult(ok=True, latency_ms=round((time.perf_counter() - started) * 1000, 2))


def _probe_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _probe_redis() -> None:
    cache.client.get_client(write=True).ping()


def _probe_broker() -> None:
    """One round trip to the broker (a passive look at the default queue), bounded by its socket timeouts."""
    with Connection(
        settings.CELERY_BROKER_URL,
        connect_timeout=settings.BROKER_SOCKET_TIMEOUT,
        transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
    ) as conn:
        conn.ensure_connection(max_retries=0, timeout=settings.BROKER_SOCKET_TIMEOUT)
        try:
            conn.default_channel.queue_declare(queue="celery", passive=True)
        except ChannelError:  # no such queue yet (Redis drops an empty one): the broker answered
            pass


def run_checks() -> dict[str, CheckResult]:
    return {
        "database": _timed("database", _probe_database),
        "redis": _timed("redis", _probe_redis),
        "broker": _timed("broker", _probe_broker),
    }


def record_heartbeat() -> None:
    cache.set(HEARTBEAT_KEY, timezone.now().isoformat(), timeout=None)


def heartbeat_status() -> dict:
    try:
        last = cache.get(HEARTBEAT_KEY)
    except Exception:
        return {"status": "unknown"}
    if last is None:
        return {"status": "missing"}
    age = (timezone.now() - datetime.fromisoformat(last)).total_seconds()
    stale = age > 3 * settings.HEARTBEAT_INTERVAL_SECONDS
    return {"status": "stale" if stale else "ok", "last": last, "age_seconds": round(age, 1)}


def run_backlog_status() -> dict:
    from agents import recording

    waiting = recording.backlog()
    if waiting is None:
        return {"status": "unknown"}
    limit = settings.RUN_STREAM_MAX_BACKLOG
    return {"status": "behind" if waiting > limit // 2 else "ok", "waiting": waiting, "limit": limit}


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


def readiness() -> dict:
    """What /readyz answers and the Status page shows: each dependency, the beat heartbeat, the run backlog."""
    checks = run_checks()
    down = sorted(name for name, result in checks.items() if not result.ok)
    return {
        "status": "unavailable" if down else "ok",
        "down": down,
        "checks": {name: result.as_dict() for name, result in checks.items()},
        "heartbeat": heartbeat_status() if "redis" not in down else {"status": "unknown"},
        "run_backlog": run_backlog_status() if "redis" not in down else {"status": "unknown"},
    }


@never_cache
@require_GET
def readyz(request):
    body = readiness()
    return JsonResponse(body, status=503 if body["down"] else 200)
