"""A round of alert evaluation even when beat or the workers are down.

Rounds are started by beat and run by a worker (`monitoring.evaluate`), so a dead beat or a dead default
queue's worker would stop the very alerts that report them. Every web process and worker also runs this
watchdog: a daemon thread that looks every ALERT_WATCHDOG_SECONDS at when the last round ran (one Redis GET)
and, when none ran for twice that long, runs one itself. The round's advisory lock keeps it to one at a time.
ALERT_WATCHDOG_SECONDS=0 turns it off (the test settings do).
"""

import logging
import os
import random
import threading
import time

from django.conf import settings
from django.core.cache import cache
from django.db import connection

logger = logging.getLogger("switchboard.monitoring")

LAST_ROUND = "monitoring:last-round"
_started_in: int | None = None


def round_done(at: float) -> None:
    try:
        cache.set(LAST_ROUND, at, timeout=None)
    except Exception:  # Redis down: the watchdogs will run a round, which the lock keeps to one
        pass


def overdue(now: float | None = None) -> bool:
    last = cache.get(LAST_ROUND)
    now = time.time() if now is None else now
    return last is None or now - float(last) > 2 * settings.ALERT_WATCHDOG_SECONDS


def check() -> bool:
    """Run a round if none ran lately; whether it ran one."""
    from monitoring.services import alerts_evaluate

    if not overdue():
        return False
    logger.warning(
        "no alert round for %s s (beat or the default workers are down): running one here",
        2 * settings.ALERT_WATCHDOG_SECONDS,
    )
    alerts_evaluate()
    return True


def start() -> None:
    """Start this process's watchdog (once per process, forks included)."""
    global _started_in
    if not settings.ALERT_WATCHDOG_SECONDS or _started_in == os.getpid():
        return
    _started_in = os.getpid()
    threading.Thread(target=_watch, name="alert-watchdog", daemon=True).start()


def _watch() -> None:
    while True:
        time.sleep(settings.ALERT_WATCHDOG_SECONDS * random.uniform(0.8, 1.2))  # processes spread out
        try:
            check()
        except Exception as error:
            logger.warning("alert watchdog: %s", type(error).__name__)
        finally:
            connection.close()
