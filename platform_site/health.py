"""Liveness and readiness.

`/healthz` answers as long as the process serves requests and touches nothing else. `/readyz` checks the
database, Redis and the Celery broker, each with its latency, and answers 503 naming what is down.

Each check runs in a thread of its own and has its own deadline (READINESS_TIMEOUT_SECONDS): one not done by
then is reported `Timeout`, so a hung dependency costs the probe that long, never more. A check runs once at
a time: a probe that finds one still running (hung since an earlier probe, or a concurrent probe's) waits
for that run until its deadline instead of starting another, so a hung dependency holds one thread however
often the probe comes. /readyz always checks afresh; the admin dashboard reuses the process's last answer
while it is a few seconds old (`readiness(max_age=...)`).

Also reported, informational (a web process serves while they are silent, and requests queue meanwhile):
- `workers`: for each of HEARTBEAT_QUEUES, the last heartbeat a worker took from that queue. Beat sends
  `platform.heartbeat` to each queue (a beat job per queue); the worker that runs it records the queue's key.
- `beat`: written by the beat process itself on its ticks (`HeartbeatScheduler`), so a silent beat (every
  queue stale, beat stale) is told apart from a queue no worker takes (that queue missing or stale, beat ok).
- `run_backlog`: runs answered but not yet written to PostgreSQL (`behind` past half of
  RUN_STREAM_MAX_BACKLOG; at the limit requests write their own runs).
"""

import copy
import logging
import os
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.signals import setting_changed
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_celery_beat.schedulers import DatabaseScheduler
from kombu import Connection
from kombu.exceptions import ChannelError

from tasks import heartbeats

logger = logging.getLogger(__name__)

DEPENDENCIES = ("database", "redis", "broker")
UNKNOWN = {"status": "unknown"}


@dataclass
class CheckResult:
    ok: bool
    latency_ms: float
    error: str | None = None
    value: object = None

    def as_dict(self) -> dict:
        body = {"ok": self.ok, "latency_ms": self.latency_ms}
        if self.error:
            body["error"] = self.error
        return body


def _timed(name: str, probe) -> CheckResult:
    started = time.perf_counter()
    try:
        value = probe()
    except Exception as exc:  # any failure of a dependency means "down", whatever its type
        latency = round((time.perf_counter() - started) * 1000, 2)
        logger.warning("readiness check %s failed: %s", name, exc, extra={"check": name})
        # The caller sees the kind of failure only; details (hosts, paths) stay in the log.
        return CheckResult(ok=False, latency_ms=latency, error=type(exc).__name__)
    return CheckResult(ok=True, latency_ms=round((time.perf_counter() - started) * 1000, 2), value=value)


class Check:
    """One probe, run in a daemon thread of its own, one run at a time (see the module's doc)."""

    def __init__(self, name: str, probe):
        self.name, self.probe = name, probe
        self._lock = threading.Lock()
        self._runs: queue.SimpleQueue | None = None
        self._thread: threading.Thread | None = None
        self._current: tuple[float, Future] | None = None

    def forget(self) -> None:
        """In a forked child: the parent's lock, thread and run are not this process's."""
        self._lock, self._thread, self._current = threading.Lock(), None, None

    def start(self) -> tuple[float, Future]:
        """The run under way, or a new one: (its start on the monotonic clock, its future result)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._runs, self._current = queue.SimpleQueue(), None
                self._thread = threading.Thread(
                    target=self._serve, args=(self._runs,), name=f"readiness-{self.name}", daemon=True
                )
                self._thread.start()
            if self._current is None or self._current[1].done():
                self._current = (time.monotonic(), Future())
                self._runs.put(self._current[1])
            return self._current

    def running(self) -> bool:
        """Whether a run is under way (a hung one included)."""
        with self._lock:
            return self._current is not None and not self._current[1].done()

    def _serve(self, runs: queue.SimpleQueue) -> None:
        while True:
            future = runs.get()
            future.set_result(_timed(self.name, self.probe))


def _probe_database() -> None:
    """A connection made and closed each time: it proves a new one can be had (max_connections), and the
    check's thread holds none between probes."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()


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


class HeartbeatScheduler(DatabaseScheduler):
    """django-celery-beat's scheduler (jobs in the database, edited in the admin) that also writes beat's own
    heartbeat on its ticks, at most once per HEARTBEAT_INTERVAL_SECONDS (a tick comes at least every 5 s)."""

    _beat_recorded: float | None = None

    def tick(self, *args, **kwargs):
        now = time.monotonic()
        if self._beat_recorded is None or now - self._beat_recorded >= settings.HEARTBEAT_INTERVAL_SECONDS:
            self._beat_recorded = now  # a failed write is tried again an interval later, not on every tick
            try:
                heartbeats.record_beat_heartbeat()
            except Exception as exc:  # Redis down: beat goes on scheduling, and /readyz will call it stale
                logger.warning("beat heartbeat not recorded: %s", type(exc).__name__)
        return super().tick(*args, **kwargs)


# --- the run recorder's backlog ----------------------------------------------------------------------------


def _probe_run_backlog() -> dict:
    from agents import recording

    waiting = recording.backlog()
    if waiting is None:
        return dict(UNKNOWN)
    limit = settings.RUN_STREAM_MAX_BACKLOG
    return {"status": "behind" if waiting > limit // 2 else "ok", "waiting": waiting, "limit": limit}


CHECKS = {
    "database": Check("database", _probe_database),
    "redis": Check("redis", _probe_redis),
    "broker": Check("broker", _probe_broker),
    "heartbeats": Check("heartbeats", heartbeats.heartbeats),
    "run_backlog": Check("run_backlog", _probe_run_backlog),
}


class LastAnswer:
    """This process's last readiness answer and when its checks started, for callers that may reuse a recent one
    (the admin dashboard). Forgotten in a forked child and when a setting changes (tests)."""

    def __init__(self):
        self._kept: tuple[float, dict] | None = None

    def keep(self, started: float, body: dict) -> None:
        self._kept = (started, copy.deepcopy(body))

    def younger_than(self, seconds: float) -> dict | None:
        kept = self._kept  # one read: another thread may replace it meanwhile
        if kept is None or time.monotonic() - kept[0] >= seconds:
            return None
        return copy.deepcopy(kept[1])

    def forget(self, **kwargs) -> None:
        self._kept = None


LAST_ANSWER = LastAnswer()


def _forget_in_child() -> None:
    for check in CHECKS.values():
        check.forget()
    LAST_ANSWER.forget()


os.register_at_fork(after_in_child=_forget_in_child)
setting_changed.connect(LAST_ANSWER.forget, weak=False)


def run_checks() -> dict[str, CheckResult]:
    """Every check at once, each answered by its deadline: its result, or `Timeout`."""
    deadline = settings.READINESS_TIMEOUT_SECONDS
    runs = {name: check.start() for name, check in CHECKS.items()}
    results = {}
    for name, (started, future) in runs.items():
        try:
            results[name] = future.result(timeout=max(started + deadline - time.monotonic(), 0))
        except TimeoutError:
            took = round((time.monotonic() - started) * 1000, 2)
            logger.warning("readiness check %s still running after %s ms", name, took, extra={"check": name})
            results[name] = CheckResult(ok=False, latency_ms=took, error="Timeout")
    return results


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


def _unknown(result: CheckResult) -> dict:
    return {**UNKNOWN, "error": result.error}


def readiness(*, max_age: float = 0) -> dict:
    """What /readyz answers and the Status page shows: each dependency, a worker per queue, beat, the run
    backlog. `heartbeat` is the default queue's worker, as before per-queue heartbeats.

    With `max_age`, this process's last answer (whoever asked for it, /readyz included) is reused while its
    checks started less than `max_age` seconds ago; /readyz and the Status page always check afresh."""
    if max_age > 0 and (recent := LAST_ANSWER.younger_than(max_age)) is not None:
        return recent
    started = time.monotonic()
    body = _answer(run_checks())
    LAST_ANSWER.keep(started, body)
    return body


def _answer(results: dict[str, CheckResult]) -> dict:
    down = sorted(name for name in DEPENDENCIES if not results[name].ok)
    beats = results["heartbeats"]
    if beats.ok:
        workers, beat = beats.value["workers"], beats.value["beat"]
    else:
        workers, beat = {name: _unknown(beats) for name in settings.HEARTBEAT_QUEUES}, _unknown(beats)
    backlog = results["run_backlog"]
    return {
        "status": "unavailable" if down else "ok",
        "down": down,
        "checks": {name: results[name].as_dict() for name in DEPENDENCIES},
        "workers": workers,
        "beat": beat,
        "heartbeat": workers.get("celery", dict(UNKNOWN)),
        "run_backlog": backlog.value if backlog.ok else _unknown(backlog),
    }


@never_cache
@require_GET
def readyz(request):
    body = readiness()
    return JsonResponse(body, status=503 if body["down"] else 200)
