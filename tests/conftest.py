"""Shared fixtures: real PostgreSQL, Redis and Celery processes; nothing of ours is mocked."""

import pytest

from platform_site import embedded
from tests.processes import CeleryProcess


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


def pytest_sessionfinish(session, exitstatus):
    embedded.stop_started()


WORKER_STARTED = []


@pytest.fixture(autouse=True)
def background_work_settles(request):
    """After a transactional test, wait for the session workers to finish what the test started: a task,
    webhook attempt or workflow step writing while the test database is flushed deadlocks the flush."""
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
    while time.monotonic() < deadline:
        soon = timezone.now() + timezone.timedelta(seconds=5)
        busy = (
            TaskRecord.objects.filter(status__in=TaskRecord.UNFINISHED).exists()
            or WebhookDelivery.objects.filter(status="pending", next_attempt_at__lte=soon).exists()
            or StepRun.objects.filter(status__in=[StepRun.Status.QUEUED, StepRun.Status.RUNNING]).exists()
        )
        if not busy:
            return
        time.sleep(0.1)


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, tmp_path_factory):
    """One real worker for the session; it also runs the tasks in tests/worker_tasks.py."""
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
    worker.wait_for_log("ready.")
    WORKER_STARTED.append(worker)
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def agents_worker(celery_worker, tmp_path_factory):
    """The worker for agent calls, as the Procfile runs it: the `agents` queue, 64 calls at once in threads
    sharing one event loop."""
    worker = CeleryProcess(
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
    )
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
