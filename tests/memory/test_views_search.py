"""Searching and listing memories on the Memories page: nearest first with the distance of each hit, and
narrowed by namespace, kind, metadata key=value, created range and archived state."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from memory.models import Memory
from memory.search import memory_search
from memory.services import memory_create, memory_update

pytestmark = pytest.mark.django_db


@pytest.fixture
def memories(alice):
    invoice = memory_create(
        owner=alice,
        content="The invoice for March is due on Friday",
        namespace="work",
        metadata={"topic": "billing", "priority": 2},
    )
    template = memory_create(
        owner=alice,
        content="The invoice template lives in the shared drive",
        namespace="work",
        metadata={"topic": "docs"},
    )
    cat = memory_create(owner=alice, content="My cat is called Miso", namespace="pets", kind="summary")
    Memory.objects.filter(pk=template.pk).update(created_at=timezone.now() - timedelta(days=10))
    return {"invoice": invoice, "template": template, "cat": cat}


def listed(client, **query) -> list[str]:
    """The contents the page lists, in its order."""
    html = client.get("/memories/", query).content.decode()
    return [content.strip() for content in re.findall(r'<td class="pick">.*?</td>\s*<td>([^<\n]+)', html)]


def distances(client, **query) -> list[str]:
    return re.findall(r'<td class="distance">([^<]+)</td>', client.get("/memories/", query).content.decode())


def test_a_search_lists_the_nearest_first_with_each_hits_distance(client, alice, memories):
    client.force_login(alice)

    shown = distances(client, query="when is the invoice due")

    hits, _ = memory_search(user=alice, query="when is the invoice due", k=20)
    assert shown == [f"{hit.distance:.3f}" for hit in hits] and len(shown) == 3
    assert listed(client, query="when is the invoice due")[0] == "The invoice for March is due on Friday"
    assert shown == sorted(shown)


@pytest.mark.parametrize(
    "filters, expected",
    [
        ({"metadata": "topic=billing"}, ["The invoice for March is due on Friday"]),
        ({"metadata": "topic=billing, priority=2"}, ["The invoice for March is due on Friday"]),
        ({"metadata": 'priority="2"'}, []),  # quoted: the text "2", not the number
        ({"namespace": "pets"}, ["My cat is called Miso"]),
        ({"kind": "summary"}, ["My cat is called Miso"]),
        ({"created_before": "{ten_days_ago}"}, ["The invoice template lives in the shared drive"]),
        ({"created_after": "{today}", "namespace": "work"}, ["The invoice for March is due on Friday"]),
    ],
)
def test_filters_narrow_both_a_search_and_the_list(client, alice, memories, filters, expected):
    days = {"today": timezone.now().date(), "ten_days_ago": (timezone.now() - timedelta(days=10)).date()}
    filters = {name: value.format(**days) for name, value in filters.items()}
    client.force_login(alice)

    assert listed(client, **filters) == expected
    assert sorted(listed(client, query="invoice cat drive", **filters)) == sorted(expected)


def test_archived_memories_are_listed_and_found_only_when_asked_for(client, alice, memories):
    memory_update(memory=memories["cat"], archived=True)
    client.force_login(alice)

    assert "My cat is called Miso" not in listed(client)
    assert "My cat is called Miso" not in listed(client, query="cat Miso")
    assert "My cat is called Miso" in listed(client, archived="on")
    assert listed(client, query="cat Miso", archived="on")[0] == "My cat is called Miso"


@pytest.mark.parametrize(
    "filters, error",
    [
        ({"metadata": "topic"}, "Write key=value, such as topic=billing (not “topic”)."),
        ({"metadata": "has_key=1"}, "Metadata key &#x27;has_key&#x27; is not allowed"),
        ({"created_after": "2026-05-02", "created_before": "2026-05-01"}, "This day is before the first one."),
        ({"created_after": "soon"}, "Enter a valid date."),
    ],
)
def test_a_filter_that_cannot_be_applied_is_explained_on_the_form_and_lists_nothing(
    client, alice, memories, filters, error
):
    client.force_login(alice)

    html = client.get("/memories/", {"query": "invoice", **filters}).content.decode()

    assert error in html and "Fix the search above to see memories." in html
    assert 'class="distance"' not in html
