import os
import signal
import subprocess
import uuid

import pytest
from celery import current_app
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django_redis import get_redis_connection

from tasks.apps import check_visibility_timeout
from tasks.models import TaskRecord
from tasks.services.records import task_start
from tests.conftest import api_client
from tests.processes import CeleryProcess
from tests.tasks.conftest import wait_until

Status = TaskRecord.Status
pytestmark = pytest.mark.django_db(transaction=True)


def finished(record_id):
    record = TaskRecord.objects.get(pk=record_id)
    return record if record.is_finished else None


def start(kind, owner=None, **input):
    with transaction.atomic():
        record, _ = task_start(kind=kind, owner=owner, input=input)
    return record


def redis():
    return get_redis_connection("default")


def test_a_task_goes_from_queued_through_running_to_succeeded_with_progress_and_result(celery_worker, alice):
    key = f"effects:{uuid.uuid4().hex}"
    with transaction.atomic():
        record, _ = task_start(
            kind="tests.slow_append", owner=alice, input={"key": key, "steps": 3, "step_seconds": 0.4}
        )
        assert TaskRecord.objects.get(pk=record.pk).status == Status.QUEUED  # nothing sent before the commit

    running = wait_until(
        lambda: TaskRecord.objects.filter(pk=record.pk, status=Status.RUNNING, progress_percent__gt=0).first()
    )
    assert running.progress_message.startswith("step ")
    done = wait_until(lambda: finished(record.pk))

    assert (done.status, done.result, done.progress_percent, done.attempts) == (Status.SUCCEEDED, {"steps": 3}, 100, 1)
    assert done.started_at and done.finished_at and done.started_at <= done.finished_at
    assert redis().lrange(key, 0, -1) == [str(record.pk).encode()]


def test_a_transient_error_is_retried_with_backoff_until_it_succeeds(celery_worker):
    record = start("tests.flaky", counter=f"flaky:{uuid.uuid4().hex}", failures=2)

    done = wait_until(lambda: finished(record.pk))

    assert (done.status, done.attempts, done.result) == (Status.SUCCEEDED, 3, {"attempt": 3})


def test_retries_run_out_and_the_task_fails_with_the_last_error(celery_worker):
    record = start("tests.always_transient")

    done = wait_until(lambda: finished(record.pk))

    assert (done.status, done.attempts) == (Status.FAILED, 3)  # the first run and max_retries=2
    assert done.error == "TransientError: still down"


def test_a_permanent_error_fails_at_once_without_retries(celery_worker):
    record = start("tests.fail")

    done = wait_until(lambda: finished(record.pk))

    assert (done.status, done.attempts, done.error) == (Status.FAILED, 1, "ValueError: bad input")


def test_a_message_delivered_twice_has_its_effect_once(celery_worker):
    key = f"effects:{uuid.uuid4().hex}"
    record = start("tests.slow_append", key=key, steps=1, step_seconds=0)
    wait_until(lambda: finished(record.pk))

    # The broker hands the same message over again (as after a worker died between the work and the ack)
    current_app.tasks["tests.slow_append"].apply_async(kwargs=record.input, task_id=str(record.pk))
    marker = start("tests.slow_append", key=f"{key}:marker", steps=1, step_seconds=0)  # the solo worker is FIFO
    wait_until(lambda: finished(marker.pk))

    assert redis().lrange(key, 0, -1) == [str(record.pk).encode()]
    assert TaskRecord.objects.get(pk=record.pk).attempts == 1


def test_a_running_task_is_cancelled_at_its_next_progress_report(celery_worker, alice):
    key = f"effects:{uuid.uuid4().hex}"
    record = start("tests.slow_append", owner=alice, key=key, steps=30, step_seconds=0.1)
    wait_until(lambda: TaskRecord.objects.filter(pk=record.pk, status=Status.RUNNING).exists())

    response = api_client(alice).post(f"/api/v1/tasks/{record.pk}/cancel")

    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    marker = start("tests.slow_append", key=f"{key}:marker", steps=1, step_seconds=0)
    wait_until(lambda: finished(marker.pk))
    cancelled = TaskRecord.objects.get(pk=record.pk)
    assert cancelled.status == Status.CANCELLED and cancelled.cancelled_by == alice
    assert cancelled.progress_percent < 100
    assert redis().lrange(key, 0, -1) == [], "the cancelled task kept going to its effect"
    assert api_client(alice).post(f"/api/v1/tasks/{record.pk}/cancel").status_code == 409


def test_a_queued_task_that_is_cancelled_never_runs(celery_worker, alice):
    key = f"effects:{uuid.uuid4().hex}"
    blocker = start("tests.slow_append", key=f"{key}:blocker", steps=5, step_seconds=0.2)
    queued = start("tests.slow_append", owner=alice, key=key, steps=1, step_seconds=0)

    assert api_client(alice).post(f"/api/v1/tasks/{queued.pk}/cancel").status_code == 200
    wait_until(lambda: finished(blocker.pk))
    marker = start("tests.slow_append", key=f"{key}:marker", steps=1, step_seconds=0)
    wait_until(lambda: finished(marker.pk))

    record = TaskRecord.objects.get(pk=queued.pk)
    assert (record.status, record.attempts) == (Status.CANCELLED, 0)
    assert redis().lrange(key, 0, -1) == []


@pytest.fixture(scope="module")
def prefork_worker(django_db_setup, tmp_path_factory):
    """A worker with a process pool (needed to kill a task's process and for time limits), on its own queue."""
    worker = CeleryProcess(
        "worker",
        tmp_path_factory.mktemp("prefork") / "worker.log",
        "--pool",
        "prefork",
        "--concurrency",
        "1",
        "--queues",
        "kill-test",
        "--include",
        "tests.worker_tasks",
        "--without-mingle",
        "--without-gossip",
    )
    worker.wait_for_log("ready.")
    yield worker
    worker.stop()


def test_a_task_whose_worker_process_is_killed_is_delivered_again_and_completes_once(prefork_worker):
    key = f"effects:{uuid.uuid4().hex}"
    record = start("tests.slow_append_killable", key=key, steps=6, step_seconds=0.3)
    wait_until(lambda: TaskRecord.objects.filter(pk=record.pk, status=Status.RUNNING, progress_percent__gt=0).exists())

    # When the process running it dies mid-task
    [child] = subprocess.check_output(["pgrep", "-P", str(prefork_worker.process.pid)]).split()
    os.kill(int(child), signal.SIGKILL)

    # Then the message is requeued, runs again in a fresh process and has its effect once
    done = wait_until(lambda: finished(record.pk), timeout=60)
    assert "WorkerLostError" in prefork_worker.log_text() or "exited prematurely" in prefork_worker.log_text()
    assert (done.status, done.attempts) == (Status.SUCCEEDED, 2)
    assert redis().lrange(key, 0, -1) == [str(record.pk).encode()]


def test_a_task_past_its_soft_time_limit_fails_as_timed_out(prefork_worker):
    record = start("tests.overrun")

    done = wait_until(lambda: finished(record.pk), timeout=30)

    assert (done.status, done.error, done.result) == (Status.FAILED, "Timed out.", None)


def test_tasks_are_listed_and_shown_to_their_owner_only(alice, charlie):
    record = start("tests.fail", owner=alice)
    start("tests.fail", owner=charlie)

    listed = api_client(alice).get("/api/v1/tasks").json()["results"]

    assert [item["id"] for item in listed] == [str(record.pk)]
    assert api_client(charlie).get(f"/api/v1/tasks/{record.pk}").status_code == 404
    assert api_client(alice).get("/api/v1/tasks/not-a-uuid").status_code == 404


def test_the_broker_visibility_timeout_must_outlast_the_longest_task(settings):
    settings.CELERY_BROKER_URL = "redis://localhost:6379/1"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    check_visibility_timeout()  # the defaults pass

    settings.TASK_POLICIES = {"memory.reindex": {"time_limit": 7200}}
    with pytest.raises(ImproperlyConfigured, match="BROKER_VISIBILITY_TIMEOUT"):
        check_visibility_timeout()

    settings.CELERY_BROKER_URL = "amqp://guest:guest@localhost:5672//"
    check_visibility_timeout()  # RabbitMQ has no visibility timeout


def test_operators_see_queue_depth_and_tasks_per_status_and_retry_a_failed_task(client, celery_worker):
    from kombu import Queue

    from tasks.selectors import queue_depth
    from tests.conftest import make_user

    failed = start("tests.fail")
    wait_until(lambda: finished(failed.pk))
    with current_app.connection_for_write() as connection:  # a message nobody consumes: queue depth 1
        name = f"depth-test-{uuid.uuid4().hex}"
        queue = Queue(name, routing_key=name)
        connection.Producer().publish({"x": 1}, routing_key=name, declare=[queue])
        try:
            assert queue_depth(name) == 1
        finally:
            queue(connection.default_channel).delete()
    assert queue_depth("no-such-queue") == 0
    client.force_login(make_user("olga", role="operator"))

    page = client.get("/admin/tasks/taskrecord/").content.decode()
    retried = client.post("/admin/tasks/taskrecord/", {"action": "retry_failed", "_selected_action": [failed.pk]})

    assert "Queue depth: <strong>" in page and "failed: <strong>1</strong>" in page
    assert retried.status_code == 302
    again = wait_until(lambda: finished(failed.pk))
    assert (again.status, again.attempts) == (Status.FAILED, 2)


def test_a_soft_time_limit_above_the_hard_one_stops_start_up(settings):
    from tasks.apps import check_task_settings

    settings.TASK_POLICIES = {"x.slow": {"time_limit": 60}}  # inherits the default soft limit of 540 s

    with pytest.raises(ImproperlyConfigured, match="soft_time_limit"):
        check_task_settings()
