"""Texts and vectors that cannot be searched by: refused with a 400, and never able to break a search."""

import pytest
from django.conf import settings

from memory.models import Memory
from memory.services import memory_create, namespace_share
from tests.conftest import api_client

DIMENSIONS = settings.MEMORY_EMBEDDING_DIMENSIONS


def search(client, **body):
    return client.post("/api/v1/memories/search", body, format="json")


@pytest.mark.django_db
@pytest.mark.parametrize("content", ["!!! ??? ...", "   --- +++ ***"])
def test_a_text_with_nothing_to_embed_is_refused(alice, content):
    client = api_client(alice)

    created = client.post("/api/v1/memories", {"content": content}, format="json")
    imported = client.post(
        "/api/v1/memories/import", {"lines": '{"content": "fine"}\n{"content": "?!"}'}, format="json"
    )

    assert created.status_code == 400 and created.json()["errors"][0]["attr"] == "content"
    assert imported.status_code == 202  # the import fails in the background, naming the line
    assert not Memory.objects.filter(content=content).exists()


@pytest.mark.django_db
def test_a_memory_stored_with_an_empty_embedding_breaks_no_search_of_anyone(alice, bob):
    # Given a memory stored before such texts were refused, in a namespace alice shares with bob
    kept = memory_create(owner=alice, content="the garden gate is green", namespace="home")
    empty = memory_create(owner=alice, content="placeholder", namespace="home")
    Memory.objects.filter(pk=empty.pk).update(content="???", embedding=[0.0] * DIMENSIONS)
    namespace_share(owner=alice, name="home", user=bob, level="view")

    for client in (api_client(alice), api_client(bob)):
        found = search(client, query="garden gate", k=10)

        assert found.status_code == 200
        assert [hit["memory"]["id"] for hit in found.json()["results"]] == [kept.pk]


@pytest.mark.django_db
def test_a_query_with_no_words_finds_nothing(alice):
    memory_create(owner=alice, content="anything at all")

    found = search(api_client(alice), query="?!?!")

    assert found.status_code == 200 and found.json() == {"plan": "none", "results": []}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "vector",
    [
        [0.0] * DIMENSIONS,  # no direction
        [1e39] * DIMENSIONS,  # past single precision
        [1.0] * (DIMENSIONS - 1),  # the wrong length
        ["nan"] * DIMENSIONS,
        ["inf"] + [1.0] * (DIMENSIONS - 1),
    ],
)
def test_a_vector_that_cannot_be_searched_by_is_a_400(alice, vector):
    response = search(api_client(alice), vector=vector)

    assert response.status_code == 400 and response.json()["errors"][0]["attr"].startswith("vector")


@pytest.mark.django_db
def test_a_vector_of_very_large_numbers_searches_like_its_direction(alice):
    memory = memory_create(owner=alice, content="large numbers are fine")
    direction = list(memory.embedding)

    found = search(api_client(alice), vector=[value * 1e37 for value in direction], k=1).json()

    assert found["results"][0]["memory"]["id"] == memory.pk
    assert found["results"][0]["distance"] == pytest.approx(0, abs=1e-5)
