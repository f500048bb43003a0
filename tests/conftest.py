"""Shared fixtures: real PostgreSQL, Redis and Celery processes; nothing of ours is mocked."""

import time

import pytest

from platform_site import embedded
from tests import database_reset, processes
from tests.processes import CeleryProcess


@pytest.fixture(scope="session", autouse=True)
def quick_flushes():
    """A transactional test's database is emptied of what it wrote, and what post_migrate makes is copied
    back where the test changed it, instead of Django's whole flush (tests/database_reset.py)."""
    with database_reset.quick_flushes():
        yield


@pytest.fixture(autouse=True)
def empty_cache():
    """Every test starts with an empty Redis cache database: ids repeat from one run to the next, so a
    cached answer, counter or lock left by an earlier run must not leak into this one."""
    from django.core.cache import cache

    from core import local_cache
    from core.redis_outage import forget_outage

    forget_outage()
    cache.clear()
    local_cache.clear()


@pytest.fixture
def migrated_schedule(db):
    """The periodic jobs as the migrations leave them. A transactional test's flush empties the schedule, and
    `make test` runs the files in two workers in no set order, so a test reading the migrated jobs replays
    the migration steps that register (or drop) them, in migration order."""
    import re
    from inspect import getsource

    from django.apps import apps
    from django.db.migrations.loader import MigrationLoader
    from django.db.migrations.operations import RunPython
    from django_celery_beat.models import PeriodicTask

    PeriodicTask.objects.all().delete()
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    plan = dict.fromkeys(step for leaf in graph.leaf_nodes() for step in graph.forwards_plan(leaf))
    for key in plan:
        for operation in graph.nodes[key].operations:
            if isinstance(operation, RunPython) and re.search(r"PeriodicTask|periodic_task", getsource(operation.code)):
                operation.code(apps, None)


def pytest_sessionfinish(session, exitstatus):
    for left_running in processes.STARTED:
        if left_running.process.poll() is None:
            left_running.stop()
    embedded.stop_started()


WORKER_STARTED = []


@pytest.fixture(autouse=True)
def background_work_settles(request):
    """After a transactional test, wait for the session workers to finish what the test started: a task,
    webhook attempt or workflow step writing while the test database is flushed deadlocks the flush.
    Work still queued after a few seconds in which nothing ran is not theirs (it went to a broker of the
    test's own, or is kept for a resender that does not run here): it is not waited for."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None or not marker.kwargs.get("transaction"):
        yield
        return
    request.getfixturevalue("transactional_db")  # set up before, torn down (flushed) after this fixture
    yield
    if not WORKER_STARTED:
        return
    import time

    from django.utils import timezone

    from tasks.models import TaskRecord, WebhookDelivery
    from workflows.models import StepRun

    deadline = time.monotonic() + 20
    seen, still_since = None, time.monotonic()
    while time.monotonic() < deadline:
        soon = timezone.now() + timezone.timedelta(seconds=5)
        running = (
            TaskRecord.objects.filter(status__in=[TaskRecord.Status.RUNNING, TaskRecord.Status.RETRYING]).exists()
            or WebhookDelivery.objects.filter(status="pending", next_attempt_at__lte=soon).exists()
            # an attempt under way: its claim moved the delivery's next attempt a lease away
            or WebhookDelivery.objects.filter(
                status="pending", dispatched_at__isnull=True, next_attempt_at__gt=soon
            ).exists()
            or StepRun.objects.filter(status=StepRun.Status.RUNNING).exists()
        )
        queued = (
            set(TaskRecord.objects.filter(status=TaskRecord.Status.QUEUED).values_list("pk", flat=True)),
            set(StepRun.objects.filter(status=StepRun.Status.QUEUED).values_list("pk", flat=True)),
        )
        if not running and not any(queued):
            return
        if running or queued != seen:
            seen, still_since = queued, time.monotonic()
        elif time.monotonic() - still_since > IDLE_QUEUED_SECONDS:
            return
        time.sleep(0.05)


# Long enough for an idle session worker to take a message of its broker, even on a loaded machine.
IDLE_QUEUED_SECONDS = 3


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, tmp_path_factory, request):
    """One real worker for the session; it also runs the tasks in tests/worker_tasks.py. When the session
    also needs the agents worker, that one starts beside it (each takes seconds to start)."""
    from platform_site.celery import app

    app.control.purge()  # nothing left over from an earlier run
    worker = CeleryProcess(
        "worker",
        tmp_path_factory.mktemp("celery") / "worker.log",
        "--pool",
        "solo",
        "--queues",
        "celery,webhooks",
        "--include",
        "tests.worker_tasks",
        "--without-mingle",
        "--without-gossip",
    )
    if any("agents_worker" in getattr(item, "fixturenames", ()) for item in request.session.items):
        STARTING.append(_start_agents_worker(tmp_path_factory))
    worker.wait_for_log("ready.")
    WORKER_STARTED.append(worker)
    yield worker
    worker.stop()
    for unused in STARTING:
        unused.stop()


STARTING = []  # the agents worker, started early by celery_worker


def _start_agents_worker(tmp_path_factory) -> CeleryProcess:
    return CeleryProcess(
        "worker",
        tmp_path_factory.mktemp("celery") / "agents.log",
        "--pool",
        "threads",
        "--concurrency",
        "64",
        "--queues",
        "agents",
        "--hostname",
        "agents@%h",
        "--without-mingle",
        "--without-gossip",
        # 64 calls closing at the same moment on a machine loaded by the rest of the suite: a Redis answer
        # later than the production 0.5 s would mark Redis down and leave their reservations held, as it
        # should in an outage, which these tests are not about (tests/platform_site/test_redis_faults.py is)
        env={"REDIS_SOCKET_TIMEOUT": "5"},
    )


@pytest.fixture(scope="session")
def agents_worker(celery_worker, tmp_path_factory):
    """The worker for agent calls, as the Procfile runs it: the `agents` queue, 64 calls at once in threads
    sharing one event loop."""
    worker = STARTING.pop() if STARTING else _start_agents_worker(tmp_path_factory)
    worker.wait_for_log("ready.")
    WORKER_STARTED.append(worker)
    yield worker
    worker.stop()


# --- the cast: alice (owner), bob (shared with), charlie (no access), plus an operator and an admin -------

PASSWORD = "correct-horse-battery-staple"


def make_user(username: str, role: str = "member"):
    """A user made the way the platform makes them: registered, then given a role."""
    from accounts.services import user_register, user_set_role

    user = user_register(username=username, email=f"{username}@example.com", password=PASSWORD)
    if role != user.role:
        user_set_role(user=user, role=role, actor=None)
    return user


def make_key(user, scopes=("account:read", "keys:manage"), **kwargs) -> str:
    from accounts.services import apikey_create

    _, full_key = apikey_create(
        user=user, name=kwargs.pop("name", "test key"), scopes=list(scopes), actor=user, **kwargs
    )
    return full_key


def in_one_minute(seconds: float = 10) -> None:
    """Wait, if need be, for a minute with `seconds` still ahead: the limiter's windows are fixed, so requests
    meant to share a per-minute limit must not straddle the turn of a minute."""
    left = 60 - time.time() % 60
    if left < seconds:
        time.sleep(left + 0.05)


def api_client(user=None, key: str | None = None):
    """A DRF client: signed in as `user` (session) or sending `key` as a Bearer token."""
    from rest_framework.test import APIClient

    client = APIClient()
    if user is not None:
        client.force_login(user)
    if key is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def bob(db):
    return make_user("bob")


@pytest.fixture
def charlie(db):
    return make_user("charlie")


@pytest.fixture
def operator(db):
    return make_user("olga", role="operator")


@pytest.fixture
def admin_user(db):
    return make_user("ada", role="admin")
