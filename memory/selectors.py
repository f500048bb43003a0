"""Reads of memories, always scoped to their owner, and the filtered vector search.

The search narrows to the owner's partition and the filters in SQL first. A small slice (at most
MEMORY_EXACT_SEARCH_MAX_ROWS rows) is scanned exactly; a larger one goes through the partition's partial
HNSW index (over live rows) with pgvector's iterative index scans (`relaxed_order`), so a selective filter
still returns k rows. The planner settings are set for the query and put back after it (statements
are not prepared, see settings, so they apply).
"""

from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q, QuerySet
from django.http import Http404
from django.utils import timezone
from pgvector.django import CosineDistance

from memory.embeddings import embedder
from memory.filters import compile_filters
from memory.models import Memory, partition_of

EXACT_SETTINGS = {"enable_indexscan": "off"}


def hnsw_settings() -> dict[str, str]:
    """The slice is large: walk the partition's graph; with sorts and sequential scans off, only the HNSW
    index can give rows in distance order."""
    return {
        "enable_seqscan": "off",
        "enable_sort": "off",
        "hnsw.iterative_scan": "relaxed_order",
        "hnsw.ef_search": str(settings.MEMORY_HNSW_EF_SEARCH),
    }


@contextmanager
def search_settings(values: dict[str, str]):
    """Planner settings for one query, put back afterwards: SET LOCAL alone would outlive the query when the
    search runs inside a larger transaction (a savepoint does not undo it)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(["current_setting(%s)"] * len(values)), list(values))
        previous = dict(zip(values, cursor.fetchone(), strict=True))
        for name, value in values.items():
            cursor.execute("SELECT set_config(%s, %s, true)", [name, value])
    try:
        yield
    except DatabaseError:
        raise  # the failed transaction (or savepoint) is rolled back, and the settings with it
    else:
        with connection.cursor() as cursor:
            for name, value in previous.items():
                cursor.execute("SELECT set_config(%s, %s, true)", [name, value])


@dataclass
class Hit:
    memory: Memory
    distance: float


def memory_list(*, user, include_archived: bool = False) -> QuerySet[Memory]:
    memories = Memory.objects.filter(owner=user).unexpired()
    return memories if include_archived else memories.filter(archived=False)


def memory_get(*, user, pk) -> Memory:
    memory = Memory.objects.filter(owner=user, pk=pk).first()
    if memory is None:
        raise Http404("No such memory.")
    return memory


def memory_search(
    *,
    user,
    query: str = "",
    vector=None,
    filters=None,
    k: int = 10,
    include_archived: bool = False,
    for_agent: int | None = None,
    touch: bool = True,
) -> tuple[list[Hit], str]:
    """The k nearest memories of the user that pass the filters, and which plan served them (exact / hnsw).

    `for_agent`: only memories of that agent or of no agent (what an agent may remember).
    """
    if vector is None:
        vector = embedder().embed([query])[0]
    candidates = Memory.objects.filter(owner=user, partition=partition_of(user.pk)).filter(compile_filters(filters))
    if for_agent is not None:
        candidates = candidates.filter(Q(agent_id__isnull=True) | Q(agent_id=for_agent))
    candidates = candidates.unexpired() if include_archived else candidates.live()
    exact = include_archived or candidates.count() <= settings.MEMORY_EXACT_SEARCH_MAX_ROWS
    with transaction.atomic(), search_settings(EXACT_SETTINGS if exact else hnsw_settings()):
        ranked = candidates.annotate(distance=CosineDistance("embedding", vector))
        hits = [Hit(memory, memory.distance) for memory in ranked.order_by("distance")[:k]]
    if not exact:  # relaxed order: nearly sorted; sort the k found
        hits.sort(key=lambda hit: hit.distance)
    if touch and hits:
        Memory.objects.filter(pk__in=[hit.memory.pk for hit in hits]).update(
            access_count=F("access_count") + 1, last_accessed_at=timezone.now()
        )
    return hits, "exact" if exact else "hnsw"
