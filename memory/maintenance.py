"""Upkeep of the memory store, each step batched, resumable (it works from what is left to do) and safe
to run while searches go on: prune, archive, restore, reindex, re-embed, stats. Beat runs them through memory.tasks;
`manage.py memory_maintenance` runs them by hand, with a progress line and --dry-run.
"""

from collections.abc import Callable
from datetime import timedelta
from math import ceil

from django.conf import settings
from django.db import connection, models
from django.db.models import Q
from django.utils import timezone

from accounts.models import Preferences
from memory.embeddings import embedder
from memory.indexes import INDEX_NAME, index_options, index_sql, partition_indexes, record_build
from memory.models import Memory
from memory.search import search_plan, search_settings

Progress = Callable[[int, str], None]
REINDEX_LOCK = 7_415_001  # advisory lock id: one reindex at a time (a second would drop the first's build)


def _id_batches(queryset):
    """The queryset's ids in batches of MEMORY_MAINTENANCE_BATCH, walking the primary key once: each batch
    starts after the last id (no rescan of what was done, no sort by the model's default order)."""
    last = 0
    while ids := list(
        queryset.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[: settings.MEMORY_MAINTENANCE_BATCH]
    ):
        yield ids
        last = ids[-1]


def _batched_delete(queryset, *, dry_run: bool, progress: Progress | None, label: str) -> int:
    """Delete in batches, so no lock is held for long."""
    total = queryset.count()
    if dry_run or not total:
        return total
    done = 0
    for ids in _id_batches(queryset):
        done += Memory.objects.filter(pk__in=ids).delete()[0]
        if progress:
            progress(min(100, 100 * done // total), f"{label}: {done} of {total}")
    return done


def prune(*, dry_run: bool = False, progress: Progress | None = None) -> dict[str, int]:
    """Remove expired memories, those past their owner's retention, those whose importance has decayed
    below MEMORY_PRUNE_IMPORTANCE (importance halves every MEMORY_IMPORTANCE_HALF_LIFE_DAYS without
    access), near duplicates of recent memories, and what exceeds each owner's cap."""
    now = timezone.now()
    counts = {
        "expired": _batched_delete(
            Memory.objects.filter(expires_at__lte=now), dry_run=dry_run, progress=progress, label="expired"
        )
    }
    retained = 0
    for user_id, days in Preferences.objects.filter(memory_retention_days__isnull=False).values_list(
        "user_id", "memory_retention_days"
    ):
        old = Memory.objects.filter(owner_id=user_id, created_at__lt=now - timedelta(days=days))
        retained += _batched_delete(old, dry_run=dry_run, progress=progress, label="past retention")
    counts["past_retention"] = retained
    half_life_seconds = settings.MEMORY_IMPORTANCE_HALF_LIFE_DAYS * 86400
    faded = Memory.objects.extra(  # parameterised: importance * 0.5 ** (idle seconds / half-life) < threshold
        where=[
            "importance * power(0.5, extract(epoch from (now() - coalesce(last_accessed_at, created_at))) / %s) < %s"
        ],
        params=[half_life_seconds, settings.MEMORY_PRUNE_IMPORTANCE],
    )
    counts["faded"] = _batched_delete(faded, dry_run=dry_run, progress=progress, label="faded")
    duplicates = near_duplicates(since=now - timedelta(hours=settings.MEMORY_DUPLICATE_WINDOW_HOURS))
    counts["duplicates"] = _batched_delete(
        Memory.objects.filter(pk__in=duplicates), dry_run=dry_run, progress=progress, label="duplicates"
    )
    counts["over_cap"] = _prune_over_caps(dry_run=dry_run, progress=progress)
    return counts


def near_duplicates(*, since) -> list[int]:
    """Memories made since `since` that are near duplicates (cosine distance under
    MEMORY_DUPLICATE_DISTANCE) of another live memory of the same owner, namespace and agent: of each pair
    the less important goes, or the newer when they weigh the same. Each is looked up like a search (its
    owner's partition, exact or through the partial index), so this costs a search per recent memory."""
    losers = set()
    recent = Memory.objects.live().filter(created_at__gte=since).order_by("pk")
    last = 0
    while batch := list(
        recent.filter(pk__gt=last).only("pk", "owner_id", "namespace", "agent_id", "importance", "embedding")[
            : settings.MEMORY_MAINTENANCE_BATCH
        ]
    ):
        for memory in batch:
            if memory.pk in losers:
                continue
            plan = search_plan(owner_id=memory.owner_id, vector=memory.embedding, k=4, namespaces=[memory.namespace])
            with search_settings(plan.settings):
                nearest = list(plan.ranked.only("pk", "agent_id", "importance"))
            for other in nearest:
                if other.pk == memory.pk or other.agent_id != memory.agent_id or other.pk in losers:
                    continue
                if other.distance >= settings.MEMORY_DUPLICATE_DISTANCE:
                    break
                keep_other = (other.importance, -other.pk) > (memory.importance, -memory.pk)
                losers.add(memory.pk if keep_other else other.pk)
                if keep_other:
                    break
        last = batch[-1].pk
    return sorted(losers)


def _prune_over_caps(*, dry_run: bool, progress: Progress | None) -> int:
    """Each owner keeps at most their `memory_max_items` preference (else MEMORY_DEFAULT_MAX_ITEMS, 0 = no cap)
    memories: the least important, then the least recently used, go first."""
    caps = dict(Preferences.objects.filter(memory_max_items__isnull=False).values_list("user_id", "memory_max_items"))
    default = settings.MEMORY_DEFAULT_MAX_ITEMS
    if not caps and not default:
        return 0
    removed = 0
    for owner_id, total in Memory.objects.order_by().values_list("owner_id").annotate(models.Count("pk")):
        cap = caps.get(owner_id, default)
        excess = total - cap if cap else 0
        if excess <= 0:
            continue
        if dry_run:
            removed += excess
            continue
        least = Memory.objects.filter(owner_id=owner_id).order_by(
            "importance", models.F("last_accessed_at").asc(nulls_first=True), "created_at", "pk"
        )
        while excess > 0:
            ids = list(least.values_list("pk", flat=True)[: min(excess, settings.MEMORY_MAINTENANCE_BATCH)])
            deleted = Memory.objects.filter(pk__in=ids).delete()[0]
            excess -= len(ids)
            removed += deleted
        if progress:
            progress(100, f"over cap: {removed} removed")
    return removed


def archive(*, dry_run: bool = False, progress: Progress | None = None) -> int:
    """Move memories unused for MEMORY_ARCHIVE_AFTER_DAYS out of the live indexes (they stay searchable with
    include_archived, by an exact scan)."""
    cutoff = timezone.now() - timedelta(days=settings.MEMORY_ARCHIVE_AFTER_DAYS)
    stale = Memory.objects.filter(archived=False).filter(
        Q(last_accessed_at__lt=cutoff) | Q(last_accessed_at__isnull=True, created_at__lt=cutoff)
    )
    total = stale.count()
    if dry_run:
        return total
    done = 0
    for ids in _id_batches(stale):
        done += Memory.objects.filter(pk__in=ids).update(archived=True)
        if progress:
            progress(min(100, 100 * done // max(total, 1)), f"archived {done} of {total}")
    return done


def restore(*, user, ids: list[int]) -> int:
    """Bring a user's archived memories back into the live index."""
    return Memory.objects.filter(owner=user, pk__in=ids, archived=True).update(archived=False)


def reindex(*, dry_run: bool = False, force: bool = False, progress: Progress | None = None) -> list[str]:
    """Bring the partition indexes in line with the settings and rebuild those that need it, concurrently,
    so searches go on: rows whose partition changed (MEMORY_PARTITIONS) are moved in batches, missing
    indexes created, those of partitions that no longer exist dropped, and an index rebuilt when it is
    invalid (a concurrent build that failed), was built with other MEMORY_HNSW_* options, or has bloated:
    its bytes per live row reached MEMORY_REINDEX_BLOAT times what they were after its build (deleted and
    archived rows leave their space behind). `force` rebuilds all. Runs outside any transaction."""
    partitions = settings.MEMORY_PARTITIONS
    present = partition_indexes()
    moved = Memory.objects.extra(where=["partition <> owner_id %% %s"], params=[partitions])
    live_rows = _live_rows_per_partition()
    actions = [f"repartition {moved.count()} rows"] if moved.exists() else []
    actions += [f"create {INDEX_NAME.format(partition=p)}" for p in range(partitions) if p not in present]
    actions += [f"drop {INDEX_NAME.format(partition=p)}" for p in sorted(present) if p >= partitions]
    for p in range(partitions):
        index = present.get(p)
        if index is None:
            continue
        bloat = index.bloat(live_rows.get(p, 0))
        if not index.valid:
            reason = "invalid"
        elif index.options != index_options():
            reason = "settings changed"
        elif bloat is not None and bloat >= settings.MEMORY_REINDEX_BLOAT:
            reason = f"bloat x{bloat:.1f}"
        elif force:
            reason = "forced"
        else:
            continue
        actions.append(f"rebuild {INDEX_NAME.format(partition=p)} ({reason})")
    if dry_run:
        return actions
    if connection.in_atomic_block:
        raise RuntimeError("reindex builds indexes concurrently and cannot run inside a transaction")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [REINDEX_LOCK])
        if not cursor.fetchone()[0]:
            raise RuntimeError("another reindex is running")
        try:
            _apply(cursor, actions, moved, live_rows, progress)
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [REINDEX_LOCK])
    return actions


def _apply(cursor, actions: list[str], moved, live_rows: dict[int, int], progress: Progress | None) -> None:
    for ids in _id_batches(moved):
        cursor.execute(
            "UPDATE memory_memory SET partition = owner_id %% %s WHERE id = ANY(%s)", [settings.MEMORY_PARTITIONS, ids]
        )
    if any(action.startswith("repartition") for action in actions):
        live_rows = _live_rows_per_partition()
    for done, action in enumerate(actions, start=1):
        verb, name = action.split(" ")[:2]
        if verb == "drop":
            cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        elif verb in ("create", "rebuild"):
            partition = int(name.removeprefix("memory_hnsw_p"))
            _build(cursor, partition, live_rows.get(partition, 0), replace=verb == "rebuild")
        if progress:
            progress(100 * done // len(actions), action)
    for partition, index in partition_indexes().items():
        rows = live_rows.get(partition, 0)
        if index.bloat(rows) is None and rows >= 100:  # no reference yet (built empty, or long ago)
            record_build(cursor, partition, rows)


def _live_rows_per_partition() -> dict[int, int]:
    """Rows each partial index holds (expired ones too, until prune deletes them)."""
    return dict(Memory.objects.filter(archived=False).order_by().values_list("partition").annotate(models.Count("pk")))


def _build(cursor, partition: int, rows: int, *, replace: bool) -> None:
    """Build a partition's index concurrently (a replacement is built beside the old one, which searches
    use until it is swapped in), with memory enough for its graph, and note its figures."""
    name = INDEX_NAME.format(partition=partition)
    # About the vectors and the graph of each row, in MB; pgvector allocates it all up front for a build.
    needed = ceil(rows * (settings.MEMORY_EMBEDDING_DIMENSIONS * 4 + 400) * 1.3 / 2**20)
    cursor.execute(
        "SELECT set_config('maintenance_work_mem', %s, false)",
        [f"{max(64, min(needed, settings.MEMORY_INDEX_BUILD_MEMORY_MB))}MB"],
    )
    try:
        cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}_new")  # left by a build that failed
        if not replace:
            cursor.execute(index_sql(partition, concurrently=True))
        else:
            cursor.execute(index_sql(partition, concurrently=True, name=f"{name}_new"))
            cursor.execute(f"DROP INDEX CONCURRENTLY {name}")
            cursor.execute(f"ALTER INDEX {name}_new RENAME TO {name}")
    finally:
        cursor.execute("RESET maintenance_work_mem")
    record_build(cursor, partition, rows)


def reembed(*, dry_run: bool = False, progress: Progress | None = None) -> int:
    """Embed again, in batches, every memory made with another model than the configured embedder's (after
    MEMORY_EMBEDDER or its model changed). Resumable: each batch is what is still left."""
    model = embedder()
    stale = Memory.objects.exclude(embedding_model=model.name)
    total = stale.count()
    if dry_run or not total:
        return total
    done = 0
    while batch := list(stale.order_by("pk").only("pk", "content")[: settings.MEMORY_MAINTENANCE_BATCH // 10 or 1]):
        vectors = model.embed([memory.content for memory in batch])
        for memory, vector in zip(batch, vectors, strict=True):
            Memory.objects.filter(pk=memory.pk).update(embedding=vector, embedding_model=model.name)
        done += len(batch)
        if progress:
            progress(min(100, 100 * done // total), f"re-embedded {done} of {total}")
    return done


def stats() -> list[dict]:
    """Per partition: live and archived rows, index size, dead tuples of the table."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT partition, count(*) FILTER (WHERE NOT archived), count(*) FILTER (WHERE archived) "
            "FROM memory_memory GROUP BY partition ORDER BY partition"
        )
        rows = {p: {"partition": p, "live": live, "archived": archived} for p, live, archived in cursor.fetchall()}
        for partition, index in partition_indexes().items():
            row = rows.setdefault(partition, {"partition": partition, "live": 0, "archived": 0})
            row["index_bytes"] = index.bytes
            row["index_bloat"] = index.bloat(row["live"])
        cursor.execute("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'memory_memory'")
        dead = (cursor.fetchone() or [0])[0]
    return [{**row, "table_dead_tuples": dead} for _, row in sorted(rows.items())]
