"""Tracked tasks in /metrics: each attempt that ends, by kind and outcome, with its duration, counted by the
worker process that ran it and read by the web process."""

import uuid

import pytest
from django.db import transaction

from tasks.models import TaskRecord
from tasks.services.records import task_start
from tests.conftest import api_client
from tests.metrics import value
from tests.tasks.conftest import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def metrics() -> str:
    response = api_client().get("/metrics", REMOTE_ADDR="127.0.0.1")  # loopback reads them in development
    assert response.status_code == 200
    return response.content.decode()


def test_a_retried_task_shows_one_retried_and_one_succeeded_attempt(celery_worker):
    flaky = {"kind": "tests.flaky"}
    before = metrics()

    # When a task fails once with a transient error, then succeeds
    with transaction.atomic():
        record, _ = task_start(kind="tests.flaky", input={"counter": f"flaky:{uuid.uuid4().hex}", "failures": 1})
    wait_until(lambda: TaskRecord.objects.get(pk=record.pk).status == TaskRecord.Status.SUCCEEDED)

    # Then the worker's counts are in /metrics: one attempt retried, one succeeded, both timed
    def counted(outcome: str) -> float:
        return value(metrics(), "switchboard_tasks_total", outcome=outcome, **flaky) - value(
            before, "switchboard_tasks_total", outcome=outcome, **flaky
        )

    wait_until(lambda: counted("succeeded") == 1)  # the record is written just before the count
    assert counted("retried") == 1
    after = metrics()
    durations = value(after, "switchboard_task_duration_seconds_count", **flaky)
    assert durations - value(before, "switchboard_task_duration_seconds_count", **flaky) == 2
