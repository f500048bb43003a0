"""Sharing a memory namespace: `view` to read and search it, `use` for the user's agents too; never to change it."""

import pytest

from memory.services import memory_create
from tests.agents.conftest import ask
from tests.conftest import api_client


def share(owner, name, user, level):
    client = api_client(owner)
    namespace = client.post("/api/v1/memory-namespaces", {"name": name, "description": "shared notes"}, format="json")
    assert namespace.status_code == 201, namespace.json()
    response = client.post(
        f"/api/v1/memory-namespaces/{namespace.json()['id']}/shares",
        {"user": user.username, "level": level},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return namespace.json()["id"]


def contents(response) -> list[str]:
    body = response.json()
    items = body["results"] if "results" in body else body
    return sorted(item["memory"]["content"] if "memory" in item else item["content"] for item in items)


@pytest.mark.django_db
def test_a_shared_namespace_is_read_and_searched_by_the_user_it_is_shared_with_and_no_one_else(alice, bob, charlie):
    work = memory_create(owner=alice, content="The deploy runbook lives in the wiki", namespace="work")
    memory_create(owner=alice, content="The release train leaves on Thursdays", namespace="work")
    private = memory_create(owner=alice, content="My bank PIN hint is a cat name")
    memory_create(owner=bob, content="Bob's own note about deploys")
    namespace_id = share(alice, "work", bob, "view")
    bob_client = api_client(bob)

    assert contents(bob_client.get("/api/v1/memories")) == [
        "Bob's own note about deploys",
        "The deploy runbook lives in the wiki",
        "The release train leaves on Thursdays",
    ]
    found = bob_client.post("/api/v1/memories/search", {"query": "deploy runbook wiki", "k": 2}, format="json")
    assert contents(found) == ["Bob's own note about deploys", "The deploy runbook lives in the wiki"]
    assert found.json()["results"][0]["memory"]["owner"] == alice.pk
    assert bob_client.get(f"/api/v1/memories/{private.pk}").status_code == 404
    assert "PIN" not in str(bob_client.post("/api/v1/memories/search", {"query": "bank PIN"}, format="json").json())
    assert "runbook" not in bob_client.get("/api/v1/memories/export").getvalue().decode()  # export: own only
    assert api_client(charlie).get(f"/api/v1/memories/{work.pk}").status_code == 404
    assert bob_client.patch(f"/api/v1/memories/{work.pk}", {"content": "x"}, format="json").status_code == 404
    # Bob sees the namespace but cannot share it further; Alice stops sharing and it is gone for him.
    assert [(n["owner"], n["name"]) for n in bob_client.get("/api/v1/memory-namespaces").json()["results"]] == [
        ("alice", "work")
    ]
    again = bob_client.post(f"/api/v1/memory-namespaces/{namespace_id}/shares", {"user": "charlie", "level": "view"})
    assert again.status_code == 404
    assert api_client(alice).delete(f"/api/v1/memory-namespaces/{namespace_id}/shares/bob").status_code == 204
    assert contents(bob_client.get("/api/v1/memories")) == ["Bob's own note about deploys"]
    assert bob_client.get(f"/api/v1/memories/{work.pk}").status_code == 404


@pytest.mark.django_db
def test_only_a_use_share_puts_the_namespace_in_the_prompts_of_the_users_agents(alice, bob, agent, fake_llm):
    agent.owner, agent.use_memory = bob, True
    agent.save()
    memory_create(owner=alice, content="The office wifi password is on the fridge", namespace="office")
    bob_client = api_client(bob)

    share(alice, "office", bob, "view")
    ask(bob_client, agent, "where is the wifi password")
    assert "fridge" not in fake_llm.requests[-1]["body"]["messages"][0]["content"]

    share_id = api_client(alice).get("/api/v1/memory-namespaces").json()["results"][0]["id"]
    api_client(alice).post(f"/api/v1/memory-namespaces/{share_id}/shares", {"user": "bob", "level": "use"})
    ask(bob_client, agent, "where is the wifi password, again")
    assert "wifi password is on the fridge" in fake_llm.requests[-1]["body"]["messages"][0]["content"]


@pytest.mark.django_db
def test_namespaces_are_named_once_per_owner_and_keep_their_memories_when_deleted(alice, bob, charlie):
    client = api_client(alice)
    memory_create(owner=alice, content="kept", namespace="notes")
    created = client.post("/api/v1/memory-namespaces", {"name": "notes"}, format="json")

    assert created.status_code == 201 and created.json()["memories"] == 1
    assert [(n["name"], n["memories"]) for n in client.get("/api/v1/memory-namespaces").json()["results"]] == [
        ("notes", 1)
    ]
    assert client.post("/api/v1/memory-namespaces", {"name": "notes"}, format="json").status_code == 400
    assert client.post("/api/v1/memory-namespaces", {"name": "no spaces"}, format="json").status_code == 400
    assert api_client(bob).post("/api/v1/memory-namespaces", {"name": "notes"}, format="json").status_code == 201
    renamed = client.patch(f"/api/v1/memory-namespaces/{created.json()['id']}", {"name": "other"}, format="json")
    assert renamed.status_code == 400
    assert client.delete(f"/api/v1/memory-namespaces/{created.json()['id']}").status_code == 204
    assert contents(client.get("/api/v1/memories")) == ["kept"]


@pytest.mark.django_db
def test_sharing_from_the_memories_page(alice, bob, client):
    memory_create(owner=alice, content="Grandma's soup recipe", namespace="recipes")
    client.force_login(alice)

    client.post("/memories/share/", {"share-namespace": "recipes", "share-username": "bob", "share-level": "view"})
    page = client.get("/memories/").content.decode()
    assert "bob (view)" in page

    client.force_login(bob)
    page = client.get("/memories/").content.decode()
    assert "Grandma&#x27;s soup recipe" in page and "shared by alice" in page and "alice/recipes (view)" in page
    her_row = page.split("Grandma")[1].split("</tr>")[0]
    assert ">View<" in her_row and ">Edit<" not in her_row and "Delete" not in her_row  # hers: read only

    client.force_login(alice)
    refused = client.post(
        "/memories/share/",
        {"share-namespace": "recipes", "share-username": "nobody", "share-level": "view"},
        follow=True,
    )
    assert "No such user" in refused.content.decode()
    namespace_id = alice.memory_namespaces.get(name="recipes").pk
    client.post(f"/memories/namespaces/{namespace_id}/unshare/bob/")
    client.force_login(bob)
    assert "Grandma" not in client.get("/memories/").content.decode()


@pytest.mark.django_db
def test_a_viewer_reads_memories_in_the_browser_but_cannot_write_or_share(client):
    from tests.conftest import make_user

    viewer = make_user("vera", role="viewer")
    memory = memory_create(owner=viewer, content="Vera's note")
    client.force_login(viewer)

    assert "Vera&#x27;s note" in client.get("/memories/").content.decode()
    assert (
        client.post(
            "/memories/", {"content": "new", "namespace": "default", "kind": "fact", "importance": 0.5}
        ).status_code
        == 403
    )
    assert client.post(f"/memories/{memory.pk}/", {"content": "changed"}).status_code == 403
    assert client.post(f"/memories/{memory.pk}/delete/").status_code == 403
    assert client.post("/memories/share/", {"share-namespace": "default", "share-username": "vera"}).status_code == 403
    memory.refresh_from_db()
    assert memory.content == "Vera's note" and viewer.memories.count() == 1
