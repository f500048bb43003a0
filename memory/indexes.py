"""One partial HNSW index per partition, over its live (not archived) rows.

A search in one owner's partition walks only that partition's graph. The count of partitions is
MEMORY_PARTITIONS, kept in the tens to low hundreds: every index is a relation the planner and the lock
table must deal with. Each index carries, as its comment, the rows and bytes it had when it was built:
reindex compares the bytes per live row now with that to see bloat.
"""

import json
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

INDEX_NAME = "memory_hnsw_p{partition}"


def index_options() -> dict[str, int]:
    return {"m": settings.MEMORY_HNSW_M, "ef_construction": settings.MEMORY_HNSW_EF_CONSTRUCTION}


def index_sql(partition: int, *, concurrently: bool = False, name: str | None = None) -> str:
    options = ", ".join(f"{key} = {int(value)}" for key, value in index_options().items())
    return (
        f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}IF NOT EXISTS "
        f"{name or INDEX_NAME.format(partition=partition)} "
        f"ON memory_memory USING hnsw (embedding vector_cosine_ops) WITH ({options}) "
        f"WHERE partition = {int(partition)} AND NOT archived"
    )


def create_partition_indexes(execute, partitions: int | None = None, *, concurrently: bool = False) -> None:
    for partition in range(partitions if partitions is not None else settings.MEMORY_PARTITIONS):
        execute(index_sql(partition, concurrently=concurrently))


@dataclass
class PartitionIndex:
    partition: int
    valid: bool
    bytes: int
    options: dict[str, int]
    built: dict | None  # {"rows": ..., "bytes": ...} when it was built, from its comment

    def bloat(self, live_rows: int) -> float | None:
        """Bytes per live row now against right after the build; None when either side is too small to say."""
        if not self.built or self.built["rows"] < 100 or live_rows < 100:
            return None
        return (self.bytes / live_rows) / (self.built["bytes"] / self.built["rows"])


def partition_indexes() -> dict[int, PartitionIndex]:
    """The partition indexes that exist, with their size, build options and the figures of their build."""
    defaults = {"m": 16, "ef_construction": 64}  # pgvector's, for an index created without options
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, i.indisvalid, pg_relation_size(c.oid), c.reloptions, obj_description(c.oid, 'pg_class') "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid "
            "WHERE t.relname = 'memory_memory' AND c.relname ~ '^memory_hnsw_p[0-9]+$'"
        )
        rows = cursor.fetchall()
    found = {}
    for name, valid, size, reloptions, comment in rows:
        options = {**defaults, **{k: int(v) for k, v in (option.split("=") for option in reloptions or [])}}
        try:
            built = json.loads(comment) if comment else None
        except ValueError:
            built = None
        partition = int(name.removeprefix("memory_hnsw_p"))
        found[partition] = PartitionIndex(partition, valid, size, options, built)
    return found


def record_build(cursor, partition: int, rows: int) -> None:
    """Note on the index the rows and bytes it has now, the reference for its bloat later."""
    name = INDEX_NAME.format(partition=partition)
    cursor.execute("SELECT pg_relation_size(%s::regclass)", [name])
    figures = json.dumps({"rows": rows, "bytes": cursor.fetchone()[0]})
    cursor.execute(f"COMMENT ON INDEX {name} IS %s", [figures])
