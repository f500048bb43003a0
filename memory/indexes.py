"""One partial HNSW index per partition, over its live (not archived) rows.

A search in one owner's partition walks only that partition's graph. The count of partitions is
MEMORY_PARTITIONS, kept in the tens to low hundreds: every index is a relation the planner and the lock
table must deal with.
"""

from django.conf import settings
from django.db import connection

INDEX_NAME = "memory_hnsw_p{partition}"


def index_sql(partition: int, *, concurrently: bool = False) -> str:
    return (
        f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}IF NOT EXISTS {INDEX_NAME.format(partition=partition)} "
        "ON memory_memory USING hnsw (embedding vector_cosine_ops) "
        f"WHERE partition = {int(partition)} AND NOT archived"
    )


def existing_partition_indexes() -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'memory_memory' AND indexname LIKE 'memory_hnsw_p%%'"
        )
        return {int(name.removeprefix("memory_hnsw_p")) for (name,) in cursor.fetchall()}


def create_partition_indexes(execute, partitions: int | None = None, *, concurrently: bool = False) -> None:
    for partition in range(partitions if partitions is not None else settings.MEMORY_PARTITIONS):
        execute(index_sql(partition, concurrently=concurrently))
