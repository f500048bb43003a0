"""The Memories pages: who sees what (owner, the user a namespace is shared with, anyone else), adding and
editing a memory with its metadata, expiry and archived state, the errors a form shows, and escaping."""

import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from memory.models import Memory
from memory.services import memory_create, namespace_share
from tasks.models import TaskRecord

pytestmark = pytest.mark.django_db


def page_of(client, user, url, **kwargs):
    client.force_login(user)
    return client.get(url, **kwargs)


@pytest.fixture
def shared(alice, bob):
    """alice's memory in a namespace she shares with bob (at view); charlie has no access."""
    memory = memory_create(owner=alice, content="The deploy runbook is in the wiki", namespace="work")
    namespace_share(owner=alice, name="work", user=bob, level="view")
    return memory


def test_a_memory_page_is_an_edit_form_to_its_owner_read_only_to_a_shared_reader_and_404_to_anyone_else(
    client, alice, bob, charlie, shared
):
    url = f"/memories/{shared.pk}/"

    owner, reader, outsider = (page_of(client, user, url) for user in (alice, bob, charlie))

    assert owner.status_code == 200 and 'name="metadata"' in owner.content.decode()
    assert reader.status_code == 200 and "Shared with you by alice" in reader.content.decode()
    assert 'name="content"' not in reader.content.decode() and "Delete" not in reader.content.decode()
    assert outsider.status_code == 404


def test_neither_a_shared_reader_nor_an_outsider_can_change_or_delete_a_memory(client, alice, bob, charlie, shared):
    for user in (bob, charlie):
        client.force_login(user)
        edited = client.post(f"/memories/{shared.pk}/", {"content": "changed", "namespace": "work", "kind": "fact"})
        deleted = client.post(f"/memories/{shared.pk}/delete/")
        bulk = client.post("/memories/bulk/", {"selected": [shared.pk], "action": "delete"})
        assert (edited.status_code, deleted.status_code, bulk.status_code) == (404, 404, 302)
    shared.refresh_from_db()
    assert shared.content == "The deploy runbook is in the wiki"


def test_the_list_shows_a_shared_reader_the_shared_memory_and_an_outsider_nothing_of_it(
    client, alice, bob, charlie, shared
):
    assert "deploy runbook" in page_of(client, alice, "/memories/").content.decode()
    assert "deploy runbook" in page_of(client, bob, "/memories/").content.decode()
    assert "deploy runbook" not in page_of(client, charlie, "/memories/").content.decode()


def test_an_import_page_is_its_owners_only(client, alice, bob, charlie, shared):
    record = TaskRecord.objects.create(id=uuid.uuid4(), kind="memory.import", owner=alice, status="running")
    other_kind = TaskRecord.objects.create(id=uuid.uuid4(), kind="webhooks.ping", owner=alice)

    assert page_of(client, alice, f"/memories/import/{record.pk}/").status_code == 200
    assert page_of(client, alice, f"/memories/import/{other_kind.pk}/").status_code == 404
    for user in (bob, charlie):
        assert page_of(client, user, f"/memories/import/{record.pk}/").status_code == 404
        assert str(record.pk) not in page_of(client, user, "/memories/import/").content.decode()


def test_a_memory_is_added_with_metadata_and_expiry_and_edited_into_the_archive(client, alice):
    client.force_login(alice)
    expiry = (timezone.now() + timedelta(days=7)).replace(second=0, microsecond=0)

    added = client.post(
        "/memories/",
        {
            "content": "Invoices go to billing@example.com",
            "namespace": "work",
            "kind": "fact",
            "importance": "0.7",
            "metadata": '{"topic": "billing", "priority": 2}',
            "expires_at": expiry.strftime("%Y-%m-%dT%H:%M"),
        },
    )

    assert added.status_code == 302
    memory = alice.memories.get()
    assert memory.metadata == {"topic": "billing", "priority": 2} and memory.expires_at == expiry
    form = client.get(f"/memories/{memory.pk}/").content.decode()
    assert "{\n  &quot;topic&quot;: &quot;billing&quot;,\n  &quot;priority&quot;: 2\n}" in form  # pretty-printed
    assert f'value="{expiry.strftime("%Y-%m-%dT%H:%M")}"' in form

    edited = client.post(
        f"/memories/{memory.pk}/",
        {
            "content": "Invoices go to billing@example.com",
            "namespace": "work",
            "kind": "fact",
            "importance": "0.7",
            "metadata": "",
            "expires_at": "",
            "archived": "on",
        },
    )

    assert edited.status_code == 302
    memory.refresh_from_db()
    assert (memory.archived, memory.metadata, memory.expires_at) == (True, {}, None)


@pytest.mark.parametrize(
    "field, value, error",
    [
        ("metadata", "[1, 2]", "Metadata is a JSON object"),
        ("metadata", "{topic: billing}", "Enter valid JSON"),
        ("metadata", '{"n": NaN}', "Enter valid JSON"),
        ("metadata", json.dumps({"long": "x" * 10_001}), "At most 10,000 characters of metadata."),
        ("expires_at", "next tuesday", "Enter a valid date/time."),
        ("content", "?!? ...", "nothing the embedder can use"),
        ("namespace", "not a slug", "Enter a valid “slug”"),
    ],
)
def test_a_bad_field_is_refused_on_the_form_with_the_reason_and_nothing_is_saved(client, alice, field, value, error):
    client.force_login(alice)
    fields = {"content": "fine", "namespace": "default", "kind": "fact", "importance": "0.5", "metadata": "{}"}

    response = client.post("/memories/", {**fields, field: value})

    assert response.status_code == 200
    assert error in response.content.decode().replace("&quot;", '"').replace("&#x27;", "'")
    assert not Memory.objects.exists()


def test_an_edit_that_leaves_nothing_to_embed_is_refused_on_the_form(client, alice):
    memory = memory_create(owner=alice, content="kept as it is")
    client.force_login(alice)

    response = client.post(
        f"/memories/{memory.pk}/", {"content": "???", "namespace": "default", "kind": "fact", "importance": "0.5"}
    )

    assert response.status_code == 200 and "nothing the embedder can use" in response.content.decode()
    memory.refresh_from_db()
    assert memory.content == "kept as it is"


def test_what_users_write_is_escaped_on_every_page(client, alice, bob, shared):
    memory = memory_create(
        owner=alice,
        content="<script>alert('content')</script>",
        namespace="work",
        metadata={"<img src=x onerror=alert(1)>": "</pre><script>alert('metadata')</script>"},
    )
    pages = [
        page_of(client, alice, "/memories/"),
        page_of(client, alice, "/memories/", data={"query": "alert content"}),
        page_of(client, alice, f"/memories/{memory.pk}/"),
        page_of(client, bob, "/memories/"),
        page_of(client, bob, f"/memories/{memory.pk}/"),
    ]

    for response in pages:
        html = response.content.decode()
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(" in html


def test_the_list_pages_fifty_at_a_time_newest_first(client, alice):
    for n in range(55):
        memory_create(owner=alice, content=f"numbered memory {n}")
    client.force_login(alice)

    first = client.get("/memories/").content.decode()
    second = client.get("/memories/", {"page": 2}).content.decode()

    assert first.count('name="selected"') == 50 and "numbered memory 54" in first and "?page=2" in first
    assert second.count('name="selected"') == 5 and "numbered memory 0\n" in second and "Newer" in second
    assert client.get("/memories/", {"page": "9" * 20}).status_code == 200  # read as the first page


def test_the_memories_page_makes_as_many_queries_for_fifty_memories_as_for_five(
    client, alice, bob, django_assert_max_num_queries
):
    namespace_share(owner=alice, name="default", user=bob, level="view")
    for n in range(5):
        memory_create(owner=alice, content=f"fact {n}", metadata={"n": n})
    client.force_login(alice)
    with django_assert_max_num_queries(20) as few:
        client.get("/memories/")

    for n in range(45):
        memory_create(owner=alice, content=f"more {n}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get("/memories/").status_code == 200
