"""Upkeep of the memory store, each step batched, resumable (it works from what is left to do) and safe
to run while searches go on: prune, archive, restore, reindex, re-embed, stats. Beat runs them through memory.tasks;
`manage.py memory_maintenance` runs them by hand, with a progress line and --dry-run.
"""

from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from accounts.models import Preferences
from memory.embeddings import embedder
from memory.indexes import existing_partition_indexes, index_sql
from memory.models import Memory

Progress = Callable[[int, str], None]


def _batched_delete(queryset, *, dry_run: bool, progress: Progress | None, label: str) -> int:
    """Delete in batches of MEMORY_MAINTENANCE_BATCH ids, so no lock is held for long."""
    total = queryset.count()
    if dry_run or not total:
        return total
    done = 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[: settings.MEMORY_MAINTENANCE_BATCH])
        if not ids:
            return done
        done += Memory.objects.filter(pk__in=ids).delete()[0]
        if progress:
            progress(min(100, 100 * done // total), f"{label}: {done} of {total}")


def prune(*, dry_run: bool = False, progress: Progress | None = None) -> dict[str, int]:
    """Remove expired memories, those past their owner's retention, and those whose importance has
    decayed below MEMORY_PRUNE_IMPORTANCE (importance halves every MEMORY_IMPORTANCE_HALF_LIFE_DAYS
    without access)."""
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
    return counts


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
    while ids := list(stale.values_list("pk", flat=True)[: settings.MEMORY_MAINTENANCE_BATCH]):
        done += Memory.objects.filter(pk__in=ids).update(archived=True)
        if progress:
            progress(min(100, 100 * done // max(total, 1)), f"archived {done} of {total}")
    return done


def restore(*, user, ids: list[int]) -> int:
    """Bring a user's archived memories back into the live index."""
    return Memory.objects.filter(owner=user, pk__in=ids, archived=True).update(archived=False)


def reindex(*, dry_run: bool = False, progress: Progress | None = None) -> list[str]:
    """Bring the partitions in line with MEMORY_PARTITIONS and rebuild their indexes, concurrently, so
    searches go on: rows whose partition changed are moved (batched), missing indexes are created, indexes
    of partitions that no longer exist are dropped, and the others rebuilt. Runs outside any transaction."""
    partitions = settings.MEMORY_PARTITIONS
    present = existing_partition_indexes()
    moved = Memory.objects.extra(where=["partition <> owner_id %% %s"], params=[partitions])
    actions = [f"repartition {moved.count()} rows"] if moved.exists() else []
    actions += [f"create memory_hnsw_p{p}" for p in range(partitions) if p not in present]
    actions += [f"drop memory_hnsw_p{p}" for p in sorted(present) if p >= partitions]
    actions += [f"reindex memory_hnsw_p{p}" for p in range(partitions) if p in present]
    if dry_run:
        return actions
    if connection.in_atomic_block:
        raise RuntimeError("reindex builds indexes concurrently and cannot run inside a transaction")
    with connection.cursor() as cursor:
        while ids := list(moved.values_list("pk", flat=True)[: settings.MEMORY_MAINTENANCE_BATCH]):
            cursor.execute("UPDATE memory_memory SET partition = owner_id %% %s WHERE id = ANY(%s)", [partitions, ids])
        for done, action in enumerate(actions, start=1):
            verb, name = action.split(" ", 1)
            if verb == "create":
                cursor.execute(index_sql(int(name.removeprefix("memory_hnsw_p")), concurrently=True))
            elif verb == "drop":
                cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            elif verb == "reindex":
                cursor.execute(f"REINDEX INDEX CONCURRENTLY {name}")
            if progress:
                progress(100 * done // len(actions), action)
    return actions


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
        cursor.execute(
            "SELECT indexrelname, pg_relation_size(indexrelid) FROM pg_stat_user_indexes "
            "WHERE relname = 'memory_memory' AND indexrelname LIKE 'memory_hnsw_p%%'"
        )
        for name, size in cursor.fetchall():
            partition = int(name.removeprefix("memory_hnsw_p"))
            rows.setdefault(partition, {"partition": partition, "live": 0, "archived": 0})["index_bytes"] = size
        cursor.execute("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'memory_memory'")
        dead = (cursor.fetchone() or [0])[0]
    return [{**row, "table_dead_tuples": dead} for _, row in sorted(rows.items())]
