"""Memories over the API: created and embedded, searched by text or vector, narrowed by filters."""

from datetime import timedelta

import pytest
from django.utils import timezone

from memory.models import Memory
from memory.search import memory_search
from memory.services import memory_create
from tests.conftest import api_client


@pytest.mark.django_db
def test_memories_are_created_embedded_searched_by_text_and_kept_to_their_owner(alice, charlie):
    client = api_client(alice)
    created = client.post(
        "/api/v1/memories", {"content": "My cat is called Miso", "metadata": {"topic": "pets"}}, format="json"
    )
    client.post("/api/v1/memories", {"content": "The invoice is due on Friday"}, format="json")

    assert created.status_code == 201 and created.json()["embedding_model"] == "hashing-v1"
    found = client.post("/api/v1/memories/search", {"query": "what is my cat called", "k": 1}, format="json").json()
    assert found["plan"] == "exact" and found["results"][0]["memory"]["content"] == "My cat is called Miso"
    assert api_client(charlie).post("/api/v1/memories/search", {"query": "cat"}, format="json").json()["results"] == []


@pytest.mark.django_db
def test_changing_the_content_embeds_it_again(alice):
    memory = memory_create(owner=alice, content="apples and pears")
    before = list(memory.embedding)

    api_client(alice).patch(f"/api/v1/memories/{memory.pk}", {"content": "rockets and moons"}, format="json")

    memory.refresh_from_db()
    assert list(memory.embedding) != before


@pytest.mark.django_db
def test_every_filter_operator_narrows_the_search(alice):
    now = timezone.now()
    rows = [
        ("fact", "work", None, {"topic": "billing", "priority": 1, "tags": "a"}),
        ("summary", "work", 7, {"topic": "billing", "priority": 3}),
        ("fact", "home", None, {"topic": "garden", "priority": 5, "source": "chat"}),
    ]
    for n, (kind, namespace, agent_id, metadata) in enumerate(rows):
        memory = memory_create(
            owner=alice, content=f"note {n}", kind=kind, namespace=namespace, agent_id=agent_id, metadata=metadata
        )
        Memory.objects.filter(pk=memory.pk).update(created_at=now - timedelta(days=10 - n))

    def contents(filters):
        hits, _ = memory_search(user=alice, query="note", filters=filters, k=10)
        return sorted(hit.memory.content for hit in hits)

    assert contents({"kind": "summary"}) == ["note 1"]
    assert contents({"namespace": ["home"]}) == ["note 2"]
    assert contents({"agent": 7}) == ["note 1"]
    assert contents({"agent": None}) == ["note 0", "note 2"]
    assert contents({"created_after": (now - timedelta(days=9, hours=12)).isoformat()}) == ["note 1", "note 2"]
    assert contents({"created_before": (now - timedelta(days=9, hours=12)).isoformat()}) == ["note 0"]
    assert contents({"metadata": {"topic": "billing"}}) == ["note 0", "note 1"]
    assert contents({"metadata": {"topic": {"$ne": "billing"}}}) == ["note 2"]
    assert contents({"metadata": {"topic": {"$in": ["garden", "none"]}}}) == ["note 2"]
    assert contents({"metadata": {"priority": {"$gt": 1}}}) == ["note 1", "note 2"]
    assert contents({"metadata": {"priority": {"$gte": 3}}}) == ["note 1", "note 2"]
    assert contents({"metadata": {"priority": {"$lt": 3}}}) == ["note 0"]
    assert contents({"metadata": {"priority": {"$lte": 3}}}) == ["note 0", "note 1"]
    assert contents({"metadata": {"source": {"$exists": True}}}) == ["note 2"]
    assert contents({"metadata": {"source": {"$exists": False}}, "kind": "fact"}) == ["note 0"]


@pytest.mark.django_db
def test_range_filters_compare_numbers_only(alice):
    """JSONB orders values of different types (true is above every number, "9" below): not what $gt means."""
    for n, priority in enumerate([5, True, "9", None, [7], 0.5]):
        memory_create(owner=alice, content=f"note {n}", metadata={"priority": priority})

    def contents(condition):
        hits, _ = memory_search(user=alice, query="note", filters={"metadata": {"priority": condition}})
        return sorted(hit.memory.content for hit in hits)

    assert contents({"$gt": 1}) == ["note 0"]
    assert contents({"$lt": 100}) == ["note 0", "note 5"]
    assert contents({"$gte": 0.5}) == ["note 0", "note 5"]
    assert contents({"$lte": 0}) == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "filters, message",
    [
        ({"colour": "red"}, "Unknown filters"),
        ({"kind": "dream"}, "must be among"),
        ({"metadata": {"a'b": 1}}, "not allowed"),
        ({"metadata": {"contains": "x"}}, "not allowed"),
        ({"metadata": {"a__b": 1}}, "not allowed"),
        ({"metadata": {"p": {"$regex": ".*"}}}, "not a valid condition"),
        ({"metadata": {"p": {"$gt": "high"}}}, "not a valid condition"),
        ({"created_after": "yesterday"}, "ISO 8601"),
        ({"agent": "seven"}, "agent id"),
        ({"metadata": {"p": {"$in": []}}}, "not a valid condition"),
    ],
)
def test_bad_filters_get_a_clear_400(alice, filters, message):
    response = api_client(alice).post("/api/v1/memories/search", {"query": "x", "filters": filters}, format="json")

    assert response.status_code == 400
    assert message in response.json()["errors"][0]["detail"]


@pytest.mark.django_db
def test_a_vector_of_the_wrong_size_is_a_400(alice):
    response = api_client(alice).post("/api/v1/memories/search", {"vector": [0.1, 0.2]}, format="json")

    assert response.status_code == 400 and response.json()["errors"][0]["attr"] == "vector"
