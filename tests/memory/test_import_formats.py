"""The import takes the export's own format back, whichever way it comes (a JSON-lines body, a file upload, or
the JSON body it took before), and tells what is wrong with a file line by line, in words."""

import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from memory.imports import IMPORT_MAX_BYTES
from memory.models import Memory
from memory.services import ImportProblems, memory_create, memory_import, memory_update, namespace_share
from tasks.models import TaskRecord
from tests.conftest import api_client
from tests.tasks.conftest import wait_until

LINES = '{"content": "the boiler is serviced in May"}\n{"content": "the gate code is 4711", "namespace": "home"}\n'
FIELDS = ["content", "namespace", "kind", "metadata", "importance", "agent_id", "archived", "expires_at", "created_at"]


def started_lines(response) -> str:
    """The lines the import task was started with (what its worker will read)."""
    assert response.status_code == 202, response.content
    return TaskRecord.objects.get(pk=response.json()["id"]).input["lines"]


@pytest.mark.django_db
@pytest.mark.parametrize("content_type", ["application/x-ndjson", "application/jsonl", "text/plain; charset=utf-8"])
def test_a_json_lines_body_starts_an_import_of_those_lines(alice, content_type):
    response = api_client(alice).post("/api/v1/memories/import", LINES, content_type=content_type)

    assert started_lines(response) == LINES
    assert response["Location"].endswith(f"/api/v1/tasks/{response.json()['id']}")


@pytest.mark.django_db
def test_a_file_upload_starts_an_import_of_the_files_lines(alice):
    upload = SimpleUploadedFile("memories.jsonl", ("\ufeff" + LINES).encode(), content_type="application/x-ndjson")

    response = api_client(alice).post("/api/v1/memories/import", {"file": upload}, format="multipart")

    assert started_lines(response) == LINES  # the byte order mark some editors write is not part of line 1


@pytest.mark.django_db
def test_the_json_body_and_form_fields_of_before_still_start_an_import(alice):
    client = api_client(alice)

    as_json = client.post("/api/v1/memories/import", {"lines": LINES}, format="json")
    as_form = client.post("/api/v1/memories/import", {"lines": LINES}, format="multipart")

    assert started_lines(as_json) == LINES and started_lines(as_form) == LINES


@pytest.mark.django_db
def test_an_import_that_is_not_text_we_can_keep_is_refused_with_a_reason(alice):
    client = api_client(alice)

    empty = client.post("/api/v1/memories/import", "", content_type="application/x-ndjson")
    latin1 = client.post("/api/v1/memories/import", '{"content": "café"}'.encode("latin-1"), content_type="text/plain")
    nul = client.post("/api/v1/memories/import", '{"content": "a"}\n{"content": "b\x00"}', content_type="text/plain")
    no_file = client.post("/api/v1/memories/import", {"other": "x"}, format="multipart")
    binary = SimpleUploadedFile("photo.jpg", b"\xff\xd8\xff\xe0 not text", content_type="image/jpeg")
    not_text = client.post("/api/v1/memories/import", {"file": binary}, format="multipart")

    assert [r.status_code for r in (empty, latin1, nul, no_file, not_text)] == [400] * 5
    details = [r.json()["errors"][0]["detail"] for r in (empty, latin1, nul, no_file, not_text)]
    assert "no JSON lines" in details[0]
    assert "not UTF-8" in details[1] and "not UTF-8" in details[4]
    assert details[2] == "Line 2: contains a NUL character, which cannot be stored."
    assert "file named 'file'" in details[3]
    assert not TaskRecord.objects.exists()


@pytest.mark.django_db
def test_an_import_larger_than_the_bound_is_refused_with_413_without_a_task(alice):
    client = api_client(alice)
    too_large = b'{"content": "x"}\n' * (IMPORT_MAX_BYTES // 17 + 1)

    body = client.post("/api/v1/memories/import", too_large, content_type="application/x-ndjson")
    upload = client.post(
        "/api/v1/memories/import", {"file": SimpleUploadedFile("big.jsonl", too_large)}, format="multipart"
    )

    assert body.status_code == 413 and upload.status_code == 413
    assert "at most 20 MB" in body.json()["errors"][0]["detail"]
    assert not TaskRecord.objects.exists()


@pytest.mark.django_db
def test_each_line_at_fault_is_named_in_words_and_nothing_is_written(alice):
    lines = "\n".join(
        [
            '{"content": "fine"}',
            '{"namespace": "home"}',
            "{not json}",
            '{"content": "x", "colour": "red"}',
            '{"content": "x", "kind": "dream"}',
            '{"content": "x", "metadata": [1, 2]}',
            '{"content": "x", "importance": NaN}',
            '{"content": "x", "expires_at": "next tuesday"}',
            '{"content": "x", "created_at": 2026}',
        ]
    )

    with pytest.raises(ImportProblems) as refused:
        memory_import(owner=alice, lines=lines)

    assert str(refused.value).splitlines() == [
        "Line 2: content is required (a text that is not empty).",
        "Line 3: not JSON (Expecting property name enclosed in double quotes).",
        "Line 4: unknown fields colour.",
        "Line 5: kind: Value 'dream' is not a valid choice.",
        "Line 6: metadata must be a JSON object.",
        "Line 7: not JSON (NaN is not JSON).",
        "Line 8: expires_at: “next tuesday” value has an invalid format. It must be in YYYY-MM-DD HH:MM[:ss[.uuuuuu]][TZ] format.",
        "Line 9: created_at is a date and time in text, such as 2026-05-01T09:30:00+00:00.",
    ]
    assert not Memory.objects.exists()


@pytest.mark.django_db
def test_a_file_with_many_bad_lines_names_the_first_ten_and_says_it_stopped(alice):
    with pytest.raises(ImportProblems) as refused:
        memory_import(owner=alice, lines="[1]\n" * 50)

    problems = str(refused.value).splitlines()
    assert (
        len(problems) == 11
        and problems[9].startswith("Line 10: ")
        and problems[10] == "The import stopped looking there."
    )


def exported(client) -> list[dict]:
    response = client.get("/api/v1/memories/export")
    return [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]


@pytest.mark.django_db(transaction=True)
def test_an_export_imported_by_another_user_gives_the_same_memories_back(celery_worker, alice, bob):
    # Given alice's memories, with metadata, expiry, archived ones and several namespaces
    soon = timezone.now() + timedelta(days=30)
    memory_create(owner=alice, content="The quarterly report is due on Friday", metadata={"topic": "work", "n": 2})
    memory_create(owner=alice, content="Miso likes tuna", namespace="pets", kind="fact", importance=0.9)
    memory_create(
        owner=alice, content="Renew the passport", namespace="admin-stuff", expires_at=soon, metadata={"tags": ["a"]}
    )
    old = memory_create(owner=alice, content="The old office was on Elm Street", kind="summary")
    memory_update(memory=old, archived=True)
    memory_create(owner=alice, content="Ünïcode & <b>markup</b> stay as they are", metadata={"quote": 'say "hi"'})
    alices = exported(api_client(alice))

    # When bob imports alice's export, as the file it downloads as
    upload = SimpleUploadedFile("memories.jsonl", "".join(json.dumps(row) + "\n" for row in alices).encode())
    response = api_client(bob).post("/api/v1/memories/import", {"file": upload}, format="multipart")
    task = wait_until(lambda: TaskRecord.objects.filter(pk=response.json()["id"], status="succeeded").first())

    # Then bob's export is alice's, field for field, and his memories are found as hers are
    assert task.result == {"imported": 5}
    bobs = exported(api_client(bob))
    assert [[row[field] for field in FIELDS] for row in bobs] == [[row[field] for field in FIELDS] for row in alices]
    assert {memory.embedding_model for memory in bob.memories.all()} == {"hashing-v1"}
    found = api_client(bob).post("/api/v1/memories/search", {"query": "what does Miso like"}, format="json").json()
    assert found["results"][0]["memory"]["content"] == "Miso likes tuna"


@pytest.mark.django_db(transaction=True)
def test_a_failed_import_tells_its_lines_in_words_in_the_task_and_on_its_page(celery_worker, alice, bob, client):
    namespace_share(owner=alice, name="default", user=bob, level="view")
    lines = '{"content": "fine"}\n{"content": ""}\n{"content": "x", "kind": "dream"}\n'
    response = api_client(alice).post("/api/v1/memories/import", lines, content_type="application/x-ndjson")

    task = wait_until(lambda: TaskRecord.objects.filter(pk=response.json()["id"], status="failed").first())

    assert task.error == (
        "Line 2: content is required (a text that is not empty).\nLine 3: kind: Value 'dream' is not a valid choice."
    )
    client.force_login(alice)
    page = client.get(f"/memories/import/{task.pk}/").content.decode()
    assert "<li>Line 2: content is required (a text that is not empty).</li>" in page
    assert "<li>Line 3: kind: Value &#x27;dream&#x27; is not a valid choice.</li>" in page
    assert "ImportProblems" not in page and "{&#x27;lines&#x27;" not in page and "Nothing was imported" in page
    assert not alice.memories.exists()
    client.force_login(bob)  # he reads her default namespace, not her tasks
    assert client.get(f"/memories/import/{task.pk}/").status_code == 404
