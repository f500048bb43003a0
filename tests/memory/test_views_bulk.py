"""Many memories changed at once from the Memories page: ticked, then archived, brought back, moved to a
namespace or deleted; only the user's own, and only as their role allows."""

import pytest

from memory.forms import BULK_MAX
from memory.services import memory_create, namespace_share
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def bulk(client, memories, action, **fields):
    return client.post(
        "/memories/bulk/", {"selected": [memory.pk for memory in memories], "action": action, **fields}, follow=True
    )


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_ticked_memories_are_archived_brought_back_moved_and_deleted_at_once(client, alice):
    memories = [memory_create(owner=alice, content=f"note {n}") for n in range(4)]
    client.force_login(alice)

    archived = bulk(client, memories[:3], "archive")
    assert messages_of(archived) == ["3 memories archived."]
    assert sorted(alice.memories.filter(archived=True).values_list("pk", flat=True)) == [m.pk for m in memories[:3]]

    assert messages_of(bulk(client, memories[:2], "unarchive")) == ["2 memories unarchived."]
    assert alice.memories.filter(archived=True).count() == 1

    assert messages_of(bulk(client, memories[:2], "move", namespace="travel")) == ["2 memories moved to travel."]
    assert sorted(alice.memories.values_list("namespace", flat=True)) == ["default", "default", "travel", "travel"]

    assert messages_of(bulk(client, memories[1:], "delete")) == ["3 memories deleted."]
    assert list(alice.memories.values_list("pk", flat=True)) == [memories[0].pk]


def test_a_bulk_change_touches_only_the_users_own_memories(client, alice, bob):
    mine = memory_create(owner=alice, content="mine")
    shared = memory_create(owner=bob, content="bob's shared note", namespace="team")
    private = memory_create(owner=bob, content="bob's private note")
    namespace_share(owner=bob, name="team", user=alice, level="use")
    client.force_login(alice)

    response = bulk(client, [mine, shared, private], "delete")

    assert messages_of(response) == ["1 memory deleted."]
    assert list(bob.memories.order_by("pk").values_list("pk", flat=True)) == [shared.pk, private.pk]


@pytest.mark.parametrize(
    "fields, error",
    [
        ({"action": "archive"}, "Tick the memories to change first."),
        ({"selected": ["1"], "action": "move"}, "Name the namespace to move them to."),
        ({"selected": ["1"], "action": "move", "namespace": "no spaces"}, "Enter a valid “slug”"),
        ({"selected": ["1"], "action": "shred"}, "Select a valid choice. shred is not one of the available choices."),
        ({"selected": ["1", "x"], "action": "archive"}, "Those are not memories of yours."),
        ({"selected": ["9" * 30], "action": "archive"}, "Those are not memories of yours."),
        ({"selected": [str(n) for n in range(BULK_MAX + 1)], "action": "archive"}, "At most 500 memories at once."),
    ],
)
def test_a_bulk_change_that_cannot_be_made_says_why_and_changes_nothing(client, alice, fields, error):
    memory = memory_create(owner=alice, content="untouched")
    client.force_login(alice)

    response = client.post("/memories/bulk/", fields, follow=True)

    assert response.status_code == 200 and any(error in message for message in messages_of(response))
    memory.refresh_from_db()
    assert (memory.archived, memory.namespace) == (False, "default")


def test_after_a_bulk_change_the_page_comes_back_as_it_was_and_never_leaves_the_site(client, alice):
    memory = memory_create(owner=alice, content="note", namespace="work")
    client.force_login(alice)
    fields = {"selected": [memory.pk], "action": "archive"}

    back = client.post("/memories/bulk/", {**fields, "next": "/memories/?namespace=work&page=1"})
    elsewhere = client.post("/memories/bulk/", {**fields, "action": "unarchive", "next": "https://evil.example/"})

    assert back["Location"] == "/memories/?namespace=work&page=1"
    assert elsewhere["Location"] == "/memories/"


def test_a_viewer_can_make_no_bulk_change_and_sees_no_way_to(client):
    viewer = make_user("vera", role="viewer")
    memory = memory_create(owner=viewer, content="read only")
    client.force_login(viewer)

    page = client.get("/memories/").content.decode()
    refused = client.post("/memories/bulk/", {"selected": [memory.pk], "action": "delete"})

    assert 'name="selected"' not in page and "Apply" not in page
    assert refused.status_code == 403 and viewer.memories.count() == 1
