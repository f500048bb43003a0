"""Reads of memories, always scoped to their owner and the namespaces others shared with the reader, and
the filtered vector search.

The search narrows to the owner's partition and the filters in SQL first. A small slice (at most
MEMORY_EXACT_SEARCH_MAX_ROWS rows) is scanned exactly; a larger one goes through the partition's partial
HNSW index (over live rows) with pgvector's iterative index scans (`relaxed_order`), so a selective filter
still returns k rows. The planner settings are set for the query and put back after it (statements
are not prepared, see settings, so they apply).
"""

import json
import math
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404
from pgvector.django import CosineDistance

from accounts.selectors import object_shares, owned_or_shared
from memory.embeddings import embedder, unit_vector
from memory.filters import compile_filters
from memory.models import Memory, MemoryNamespace, partition_of

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
    """Planner settings for the queries inside, in a transaction of their own (or a savepoint). At the
    outermost level one statement sets them and the commit drops them; nested, they are put back after,
    as SET LOCAL alone would outlive the savepoint (RELEASE keeps it)."""
    outermost = not connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        if not outermost:
            cursor.execute("SELECT " + ", ".join(["current_setting(%s)"] * len(values)), list(values))
            previous = dict(zip(values, cursor.fetchone(), strict=True))
        _set_local(cursor, values)
        yield
        if not outermost:  # on an error the savepoint's rollback undoes them
            _set_local(cursor, previous)


def _set_local(cursor, values: dict[str, str]) -> None:
    cursor.execute(
        "SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(values)),
        [part for pair in values.items() for part in pair],
    )


@dataclass
class Hit:
    memory: Memory
    distance: float


def shared_scopes(*, user, level: str = "view") -> dict[int, list[str]]:
    """Other users' namespaces shared with this user at `level` (or above): owner id -> namespace names."""
    namespaces = owned_or_shared(user=user, queryset=MemoryNamespace.objects.all(), level=level).exclude(owner=user)
    scopes = defaultdict(list)
    for owner_id, name in namespaces.order_by("owner_id", "name").values_list("owner_id", "name"):
        scopes[owner_id].append(name)
    return dict(scopes)


def _readable(user) -> Q:
    """The user's memories and those of namespaces shared with them."""
    readable = Q(owner=user)
    for owner_id, names in shared_scopes(user=user).items():
        readable |= Q(owner_id=owner_id, namespace__in=names)
    return readable


def memory_list(*, user, include_archived: bool = False) -> QuerySet[Memory]:
    memories = Memory.objects.filter(_readable(user)).select_related("owner").unexpired()
    return memories if include_archived else memories.filter(archived=False)


def memory_get(*, user, pk) -> Memory:
    """A memory the user may read: theirs (looked up first, the common case) or in a namespace shared with them."""
    memory = Memory.objects.filter(owner=user, pk=pk).first() or Memory.objects.filter(_readable(user), pk=pk).first()
    if memory is None:
        raise Http404("No such memory.")
    return memory


def memory_get_owned(*, user, pk) -> Memory:
    """A memory the user may change or delete: only their own; to anyone else it does not exist."""
    memory = Memory.objects.filter(owner=user, pk=pk).first()
    if memory is None:
        raise Http404("No such memory.")
    return memory


def namespace_list(*, user) -> QuerySet[MemoryNamespace]:
    """The user's described or shared namespaces and those shared with them, each with its count of live
    memories (`memories`, one subquery rather than a count per row)."""
    live = (
        Memory.objects.live()
        .filter(owner_id=OuterRef("owner_id"), namespace=OuterRef("name"))
        .order_by()
        .values("owner_id")
        .annotate(count=Count("pk"))
        .values("count")
    )
    namespaces = MemoryNamespace.objects.select_related("owner").annotate(memories=Coalesce(Subquery(live), 0))
    return owned_or_shared(user=user, queryset=namespaces)


def namespace_get(*, user, pk) -> MemoryNamespace:
    namespace = namespace_list(user=user).filter(pk=pk).first()
    if namespace is None:
        raise Http404("No such memory namespace.")
    return namespace


def namespace_sharing(*, user) -> tuple[list, list]:
    """For the Memories page: the user's namespaces with whom each is shared (user, level), and the
    namespaces others share with them with the level they hold."""
    own = [(namespace, object_shares(obj=namespace)) for namespace in MemoryNamespace.objects.filter(owner=user)]
    usable = shared_scopes(user=user, level="use")
    shared = [
        (namespace, "use" if namespace.name in usable.get(namespace.owner_id, []) else "view")
        for namespace in namespace_list(user=user).exclude(owner=user)
    ]
    return own, shared


@dataclass
class SearchPlan:
    """One owner's slice of a search: the ranked query and the planner settings it must run under."""

    ranked: QuerySet[Memory]
    settings: dict[str, str]
    plan: str  # exact | hnsw


def search_plan(
    *,
    owner_id: int,
    vector,
    filters=None,
    k: int = 10,
    include_archived: bool = False,
    for_agent: int | None = None,
    namespaces: list[str] | None = None,
) -> SearchPlan:
    """The query for the k nearest memories of one owner that pass the filters: in the owner's partition,
    exact when the filtered slice is small (counting stops past the threshold), else through the
    partition's HNSW index. `namespaces`: only these (what is shared of someone else's memory)."""
    candidates = Memory.objects.filter(owner_id=owner_id, partition=partition_of(owner_id))
    candidates = candidates.filter(compile_filters(filters))
    if namespaces is not None:
        candidates = candidates.filter(namespace__in=namespaces)
    if for_agent is not None:
        candidates = candidates.filter(Q(agent_id__isnull=True) | Q(agent_id=for_agent))
    candidates = candidates.unexpired() if include_archived else candidates.live()
    threshold = settings.MEMORY_EXACT_SEARCH_MAX_ROWS
    # Unordered, so counting stops at the threshold (the model's default order would sort the whole slice).
    exact = include_archived or candidates.order_by().values("pk")[: threshold + 1].count() <= threshold
    ranked = candidates.defer("embedding").annotate(distance=CosineDistance("embedding", vector))
    return SearchPlan(
        ranked.order_by("distance")[:k], EXACT_SETTINGS if exact else hnsw_settings(), "exact" if exact else "hnsw"
    )


def memory_search(
    *,
    user,
    query: str = "",
    vector=None,
    filters=None,
    k: int = 10,
    include_archived: bool = False,
    for_agent: int | None = None,
    shared: str | None = "view",
) -> tuple[list[Hit], str]:
    """The k nearest memories the user may read that pass the filters, and which plan served them (exact /
    hnsw; the user's own slice decides). Namespaces shared with the user at `shared` level are searched too,
    each in its owner's partition, up to MEMORY_SEARCH_SHARED_OWNERS owners; `shared=None`: own only.

    `for_agent`: only memories of that agent or of no agent (what an agent may remember). A query that
    embeds to nothing (no words) finds nothing: plan "none".
    """
    vector = unit_vector(embedder().embed([query])[0] if vector is None else vector)
    if vector is None:
        return [], "none"
    scopes = [(user.pk, None)]
    if shared:
        scopes += list(shared_scopes(user=user, level=shared).items())[: settings.MEMORY_SEARCH_SHARED_OWNERS]
    options = {
        "vector": vector,
        "filters": filters,
        "k": k,
        "include_archived": include_archived,
        "for_agent": for_agent,
    }
    hits, plans = [], []
    for owner_id, namespaces in scopes:
        plan = search_plan(owner_id=owner_id, namespaces=namespaces, **options)
        with search_settings(plan.settings):
            # A memory stored before empty embeddings were refused has no direction: NaN, never a match.
            hits += [Hit(memory, memory.distance) for memory in plan.ranked if math.isfinite(memory.distance)]
        plans.append(plan.plan)
    hits = sorted(hits, key=lambda hit: hit.distance)[:k]  # relaxed order is nearly sorted: sort what was found
    return hits, plans[0]


def memory_export(*, user):
    """The user's own memories as JSON lines (without embeddings: they are rebuilt on import)."""
    for memory in Memory.objects.filter(owner=user).order_by("id").iterator(chunk_size=500):
        yield (
            json.dumps(
                {
                    "content": memory.content,
                    "namespace": memory.namespace,
                    "kind": memory.kind,
                    "metadata": memory.metadata,
                    "importance": memory.importance,
                    "agent_id": memory.agent_id,
                    "archived": memory.archived,
                }
            )
            + "\n"
        )
