"""Shared fixtures: real PostgreSQL, Redis and Celery processes; nothing of ours is mocked."""

import os

import pytest

from platform_site import embedded
from tests.processes import CeleryProcess

# Playwright's sync API runs an event loop in the test thread; Django's ORM must still be usable there.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def pytest_sessionfinish(session, exitstatus):
    embedded.stop_started()


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, tmp_path_factory):
    """One real worker for the session; it also runs the tasks in tests/worker_tasks.py."""
    from platform_site.celery import app

    app.control.purge()  # nothing left over from an earlier run
    worker = CeleryProcess(
        "worker",
        tmp_path_factory.mktemp("celery") / "worker.log",
        "--pool", "solo",
        "--include", "tests.worker_tasks",
        "--without-mingle",
        "--without-gossip",
    )
    worker.wait_for_log("ready.")
    yield worker
    worker.stop()
