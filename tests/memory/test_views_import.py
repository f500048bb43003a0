"""Importing a file from the browser: the form starts the import task and its page follows it to the end."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from memory.services import memory_create
from tasks.models import TaskRecord
from tests.conftest import make_user
from tests.tasks.conftest import wait_until


def upload(text: str | bytes, name: str = "memories.jsonl"):
    return SimpleUploadedFile(name, text.encode() if isinstance(text, str) else text)


@pytest.mark.django_db(transaction=True)
def test_an_uploaded_export_is_imported_and_its_page_follows_it_to_the_count(celery_worker, client, alice, bob):
    memory_create(owner=alice, content="The spare key is under the blue pot", metadata={"room": "porch"})
    client.force_login(alice)
    export = b"".join(client.get("/memories/export/").streaming_content)
    client.force_login(bob)

    started = client.post("/memories/import/", {"file": upload(export), "idempotency_key": "form-1"})

    record = TaskRecord.objects.get(owner=bob, kind="memory.import")
    assert started["Location"] == f"/memories/import/{record.pk}/"
    page = client.get(started["Location"]).content.decode()
    assert f'data-poll-url="/api/v1/tasks/{record.pk}"' in page and "<progress" in page
    wait_until(lambda: TaskRecord.objects.filter(pk=record.pk, status="succeeded").exists())
    page = client.get(started["Location"]).content.decode()
    assert "1 memory imported." in page and "Check again" not in page
    assert "Succeeded" in client.get("/memories/import/").content.decode()
    assert bob.memories.get().metadata == {"room": "porch"}


@pytest.mark.django_db
def test_the_same_form_sent_twice_starts_one_import(client, alice):
    client.force_login(alice)

    first = client.post("/memories/import/", {"file": upload('{"content": "a"}\n'), "idempotency_key": "k1"})
    second = client.post("/memories/import/", {"file": upload('{"content": "a"}\n'), "idempotency_key": "k1"})

    assert first["Location"] == second["Location"]
    assert TaskRecord.objects.filter(owner=alice, kind="memory.import").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content, error",
    [
        ("", "The submitted file is empty."),
        ("\n\n", "There are no JSON lines to import"),
        ("caf\xe9".encode("latin-1"), "The JSON lines are not UTF-8 text (byte 4)."),
    ],
)
def test_a_file_that_is_not_json_lines_text_is_refused_on_the_form_before_any_task(client, alice, content, error):
    client.force_login(alice)

    response = client.post("/memories/import/", {"file": upload(content)})

    assert response.status_code == 200 and error in response.content.decode()
    assert not TaskRecord.objects.exists()


@pytest.mark.django_db
def test_a_viewer_sees_the_import_page_but_cannot_import(client):
    viewer = make_user("vera", role="viewer")
    client.force_login(viewer)

    assert client.get("/memories/import/").status_code == 200
    assert client.post("/memories/import/", {"file": upload('{"content": "a"}')}).status_code == 403
    assert not TaskRecord.objects.exists()
