"""Tasks that exist only for the tests; the test worker imports this module with `-I tests.worker_tasks`."""

import logging

from celery import shared_task

from core.correlation import current_request_id

logger = logging.getLogger(__name__)


@shared_task(name="tests.report_request_id")
def report_request_id_task():
    logger.info("reporting the request id")
    return current_request_id()


# --- tracked tasks for tests/tasks ----------------------------------------------------------------------

import time  # noqa: E402

from django_redis import get_redis_connection  # noqa: E402

from tasks.tracked import TransientError, tracked_task  # noqa: E402


@tracked_task("tests.flaky")
def flaky_task(self, *, counter: str, failures: int):
    """Fails with a transient error `failures` times, then succeeds."""
    attempt = get_redis_connection("default").incr(counter)
    if attempt <= failures:
        raise TransientError(f"attempt {attempt} failed")
    return {"attempt": attempt}


@tracked_task("tests.always_transient")
def always_transient_task(self):
    raise TransientError("still down")


@tracked_task("tests.fail")
def failing_task(self):
    raise ValueError("bad input")


def _slow_append(task, key, steps, step_seconds):
    """Works in steps, reporting progress, then appends its id to a Redis list: the effect to count."""
    for step in range(steps):
        task.progress(100 * step // steps, f"step {step + 1} of {steps}")
        time.sleep(step_seconds)
    get_redis_connection("default").rpush(key, task.request.id)
    return {"steps": steps}


@tracked_task("tests.slow_append")
def slow_append_task(self, *, key: str, steps: int, step_seconds: float):
    return _slow_append(self, key, steps, step_seconds)


@tracked_task("tests.slow_append_killable")
def slow_append_killable_task(self, *, key: str, steps: int, step_seconds: float):
    """The same, routed to its own queue so that a test can kill the worker process running it."""
    return _slow_append(self, key, steps, step_seconds)


@tracked_task("tests.overrun", soft_time_limit=1, time_limit=5)
def overrun_task(self):
    """Runs past its soft time limit (routed to the prefork worker: time limits need a process pool)."""
    time.sleep(3)
    return "finished anyway"
