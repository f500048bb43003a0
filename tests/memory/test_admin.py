"""Memories and namespaces in the admin: operators read, search and filter them and archive through the
service; the embeddings stay out of the pages and the list's queries stay bounded."""

import pytest
from django.contrib.admin.views.main import ChangeList

from memory import admin as memory_admin
from memory.services import memory_create, memory_update, namespace_share
from tests.memory.helpers import bulk_memories, clustered_vectors

pytestmark = pytest.mark.django_db
LIST = "/admin/memory/memory/"


@pytest.fixture
def memories(alice, bob):
    made = {
        "invoice": memory_create(owner=alice, content="The invoice is due on Friday", metadata={"topic": "billing"}),
        "cat": memory_create(owner=alice, content="My cat is called Miso", namespace="pets"),
        "bobs": memory_create(owner=bob, content="Bob's invoice archive", namespace="work"),
    }
    memory_update(memory=made["bobs"], archived=True)
    return made


def shown(response) -> list[str]:
    return [memory.content for memory in response.context["cl"].result_list]


def test_an_operator_lists_memories_without_their_embeddings(client, operator, memories):
    client.force_login(operator)

    response = client.get(LIST)
    change = client.get(f"{LIST}{memories['invoice'].pk}/change/")

    assert response.status_code == 200 and len(shown(response)) == 3
    assert all("embedding" in memory.get_deferred_fields() for memory in response.context["cl"].result_list)
    assert change.status_code == 200
    html = change.content.decode()
    assert "<pre>{\n  &quot;topic&quot;: &quot;billing&quot;\n}</pre>" in html and "Embedding:" not in html
    assert "[0." not in html  # no vector printed anywhere


def test_the_admin_searches_by_owner_and_by_content(client, operator, memories):
    client.force_login(operator)

    assert sorted(shown(client.get(LIST, {"q": "alice"}))) == ["My cat is called Miso", "The invoice is due on Friday"]
    assert sorted(shown(client.get(LIST, {"q": "invoice"}))) == [
        "Bob's invoice archive",
        "The invoice is due on Friday",
    ]
    assert shown(client.get(LIST, {"q": "bob invoice"})) == ["Bob's invoice archive"]
    assert shown(client.get(LIST, {"q": "nobody-matches-this"})) == []


def test_the_admin_filters_by_namespace_archived_kind_and_embedding_model(client, operator, memories, alice):
    from memory.models import Memory

    Memory.objects.filter(pk=memories["cat"].pk).update(embedding_model="an-older-model")
    client.force_login(operator)

    assert shown(client.get(LIST, {"namespace": "pets"})) == ["My cat is called Miso"]
    assert shown(client.get(LIST, {"archived__exact": "1"})) == ["Bob's invoice archive"]
    assert shown(client.get(LIST, {"embedding": "other"})) == ["My cat is called Miso"]
    assert len(shown(client.get(LIST, {"embedding": "current"}))) == 2
    assert len(shown(client.get(LIST, {"kind__exact": "fact"}))) == 3


def test_the_archive_action_archives_through_the_service_and_can_bring_them_back(client, operator, memories):
    client.force_login(operator)
    selected = [memories["invoice"].pk, memories["cat"].pk]

    archived = client.post(LIST, {"action": "archive", "_selected_action": selected}, follow=True)
    assert "2 memories archived." in archived.content.decode()
    memories["invoice"].refresh_from_db()
    assert memories["invoice"].archived

    back = client.post(LIST, {"action": "unarchive", "_selected_action": selected}, follow=True)
    assert "2 memories brought back." in back.content.decode()


def test_a_member_cannot_open_the_memory_admin(client, alice, memories):
    client.force_login(alice)

    assert client.get(LIST).status_code == 302  # to the admin's login: members are not staff


def test_namespaces_are_listed_with_a_link_to_their_memories(client, operator, memories, alice, bob):
    namespace_share(owner=alice, name="pets", user=bob, level="view")
    client.force_login(operator)

    html = client.get("/admin/memory/memorynamespace/", {"q": "alice"}).content.decode()

    assert "pets" in html and f'href="{LIST}?namespace=pets&amp;q=alice"' in html
    assert shown(client.get(LIST, {"namespace": "pets", "q": "alice"})) == ["My cat is called Miso"]


def test_the_memory_list_makes_as_many_queries_for_two_hundred_memories_as_for_three(
    client, operator, memories, alice, django_assert_max_num_queries
):
    client.force_login(operator)
    with django_assert_max_num_queries(20) as few:
        client.get(LIST, {"q": "alice invoice"})

    bulk_memories(alice, clustered_vectors(200), metadata={"n": 1})
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get(LIST, {"q": "alice invoice"}).status_code == 200
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get(LIST).status_code == 200


def test_the_lists_count_stops_at_its_bound(client, operator, alice, monkeypatch):
    # (smaller than 10,000 memories and 100 a page, the same proportions)
    monkeypatch.setattr(memory_admin, "COUNT_LIMIT", 50)
    monkeypatch.setattr(memory_admin.MemoryAdmin, "list_per_page", 20)
    monkeypatch.setattr(memory_admin.MemoryAdmin, "list_max_show_all", 20)
    bulk_memories(alice, clustered_vectors(120))
    client.force_login(operator)

    cl: ChangeList = client.get(LIST).context["cl"]

    assert cl.result_count == 51 and cl.paginator.num_pages == 3 and len(cl.result_list) == 20


def test_without_an_owner_named_the_list_holds_the_newest_memories_and_naming_one_reaches_all_theirs(
    client, operator, alice, bob, monkeypatch
):
    monkeypatch.setattr(memory_admin, "RECENT_ROWS", 20)  # (100,000 in use)
    old = memory_create(owner=alice, content="an old invoice from long ago")
    bulk_memories(bob, clustered_vectors(30))
    client.force_login(operator)

    assert "an old invoice from long ago" not in shown(client.get(LIST, {"q": "invoice"}))
    assert len(shown(client.get(LIST))) == 20
    assert shown(client.get(LIST, {"q": "alice invoice"})) == [old.content]
