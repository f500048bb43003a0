"""Importing memories from JSON lines, in bulk as a task, and exporting them back."""

import pytest

from memory.models import Memory
from tests.conftest import api_client


@pytest.mark.django_db
def test_an_import_with_a_malformed_line_names_it_and_writes_nothing(alice):
    from django.core.exceptions import ValidationError

    from memory.services import memory_import

    lines = '{"content": "first"}\n{"content": "second", "kind": "fact"}\n{not json}\n'

    with pytest.raises(ValidationError, match="Line 3"):
        memory_import(owner=alice, lines=lines)
    with pytest.raises(ValidationError, match="Line 2: kind"):
        memory_import(owner=alice, lines='{"content": "a"}\n{"content": "b", "kind": "dream"}')
    assert not Memory.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_bulk_import_runs_as_a_task_and_export_gives_the_memories_back(celery_worker, alice):
    from tasks.models import TaskRecord
    from tests.tasks.conftest import wait_until

    client = api_client(alice)
    lines = "\n".join(f'{{"content": "fact number {n}", "metadata": {{"n": {n}}}}}' for n in range(120))

    response = client.post("/api/v1/memories/import", {"lines": lines}, format="json")

    assert response.status_code == 202
    task = wait_until(lambda: TaskRecord.objects.filter(pk=response.json()["id"], status="succeeded").first())
    assert task.result == {"imported": 120} and task.progress_percent == 100
    exported = b"".join(client.get("/api/v1/memories/export").streaming_content).decode().splitlines()
    assert len(exported) == 120 and '"content": "fact number 0"' in exported[0]

    bad = client.post("/api/v1/memories/import", {"lines": '{"content": "ok"}\n[1, 2]'}, format="json")
    failed = wait_until(lambda: TaskRecord.objects.filter(pk=bad.json()["id"], status="failed").first())
    assert "Line 2" in failed.error
    assert Memory.objects.count() == 120
