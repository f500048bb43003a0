"""core.returning.update_returning: the rows an UPDATE changed, read back in the same statement."""

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from core.returning import update_returning
from tasks.models import TaskRecord

pytestmark = pytest.mark.django_db

Status = TaskRecord.Status


def test_the_rows_come_back_as_they_are_after_the_update_in_one_statement():
    record = TaskRecord.objects.create(kind="webhooks.ping", attempts=2, input={"n": 1})
    TaskRecord.objects.create(kind="webhooks.ping", status=Status.SUCCEEDED)

    with CaptureQueriesContext(connection) as queries:
        changed = update_returning(
            TaskRecord.objects.filter(pk=record.pk, status__in=TaskRecord.UNFINISHED),
            status=Status.RUNNING,
            attempts=F("attempts") + 1,
            result={"answer": [1, "two"]},
        )

    assert len(queries) == 1
    assert [(row.pk, row.status, row.attempts, row.result, row.input) for row in changed] == [
        (record.pk, Status.RUNNING, 3, {"answer": [1, "two"]}, {"n": 1})
    ]
    assert TaskRecord.objects.get(pk=record.pk).attempts == 3


def test_nothing_matched_is_an_empty_list_and_changes_nothing():
    done = TaskRecord.objects.create(kind="webhooks.ping", status=Status.SUCCEEDED)

    assert update_returning(TaskRecord.objects.filter(pk=done.pk, status__in=TaskRecord.UNFINISHED), attempts=9) == []
    assert TaskRecord.objects.get(pk=done.pk).attempts == 0
