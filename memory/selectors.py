"""Reads of memories and namespaces, always scoped to their owner and the namespaces others shared with the
reader. The vector search is in memory.search."""

import json
from collections import defaultdict

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404

from accounts.selectors import object_shares, owned_or_shared
from memory.filters import compile_filters
from memory.models import Memory, MemoryNamespace, partition_of


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


def memory_browse(*, user, filters=None, include_archived: bool = False) -> QuerySet[Memory]:
    """memory_list narrowed by the search's filter language (memory.filters), newest first: the Memories page
    without a query. Bad filters raise ValidationError, as a search's do."""
    return memory_list(user=user, include_archived=include_archived).filter(compile_filters(filters))


def memories_owned(*, user, pks) -> QuerySet[Memory]:
    """The user's own memories among `pks` (others' ids match nothing): what a bulk change may touch."""
    return Memory.objects.filter(owner=user, partition=partition_of(user.pk), pk__in=pks)


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


def memory_export(*, user):
    """The user's own memories as JSON lines (without embeddings: they are rebuilt on import), every field
    memory_import reads, so an export imports back unchanged."""
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
                    "expires_at": memory.expires_at.isoformat() if memory.expires_at else None,
                    "created_at": memory.created_at.isoformat(),
                }
            )
            + "\n"
        )
