"""What a read-only API key may do with tasks and webhooks."""

import pytest
from django.db import transaction

from tasks.services.records import task_start
from tests.conftest import api_client

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_read_only_key_cannot_cancel_tasks_or_see_webhooks(alice):
    from tests.conftest import make_key

    reader = api_client(key=make_key(alice, scopes=["tasks:read"]))
    with transaction.atomic():
        record, _ = task_start(kind="tests.slow_append", owner=alice, input={"key": "k", "steps": 1, "step_seconds": 0})

    assert reader.get(f"/api/v1/tasks/{record.pk}").status_code == 200
    assert reader.post(f"/api/v1/tasks/{record.pk}/cancel").status_code == 403
    assert reader.get("/api/v1/webhooks").status_code == 403
