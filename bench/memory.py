"""Memory search at scale: one global HNSW index with the filter after it, against the platform's design
(owner partitions with partial HNSW indexes, exact scans of small slices, iterative index scans).

A synthetic set: `--memories` rows (the issue asks for at least 1,000,000) over `--owners` owners with a
Zipf-like skew (a few owners hold tens of thousands, most hold hundreds), 384-dimension clustered vectors,
metadata with a selective tag (1 %), loaded with COPY into a scratch copy of the memory table. Reports,
per owner size class and with the selective filter, search p50 / p95 and recall@10 against exact search;
build time and size of each index layout; and the time of prune (dry run count) and of a reindex.

    .venv/bin/python bench/memory.py --memories 1000000 --owners 1000
"""

import argparse
import io
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

DIMENSIONS = 384
TABLE = "bench_memory"


def clustered(rng: random.Random, centres, count):
    for _ in range(count):
        centre = rng.choice(centres)
        vector = [value + rng.gauss(0, 0.35) for value in centre]
        norm = sum(v * v for v in vector) ** 0.5
        yield [v / norm for v in vector]


def owner_sizes(total: int, owners: int, skew: float) -> list[int]:
    weights = [1 / (rank**skew) for rank in range(1, owners + 1)]
    scale = total / sum(weights)
    sizes = [max(1, int(weight * scale)) for weight in weights]
    sizes[0] += total - sum(sizes)
    return sizes


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--memories", type=int, default=1_000_000)
    parser.add_argument("--owners", type=int, default=1000)
    parser.add_argument("--skew", type=float, default=1.0, help="Zipf exponent of owner sizes")
    parser.add_argument("--partitions", type=int, default=64)
    parser.add_argument("--queries", type=int, default=30, help="per size class")
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection

    rng = random.Random(42)
    centres = [[rng.gauss(0, 1) for _ in range(DIMENSIONS)] for _ in range(200)]
    sizes = owner_sizes(args.memories, args.owners, args.skew)
    print(f"{args.memories} memories, {args.owners} owners (largest {sizes[0]}, median {sorted(sizes)[len(sizes) // 2]}),"
          f" {args.partitions} partitions, {DIMENSIONS} dimensions")  # fmt: skip

    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")
        cursor.execute(
            f"CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, owner_id bigint NOT NULL, partition smallint NOT NULL, "
            "embedding vector(384) NOT NULL, metadata jsonb NOT NULL, archived boolean NOT NULL DEFAULT false, "
            "created_at timestamptz NOT NULL DEFAULT now(), expires_at timestamptz)"
        )
        started = time.perf_counter()
        with cursor.copy(f"COPY {TABLE} (owner_id, partition, embedding, metadata, expires_at) FROM STDIN") as copy:
            for owner, size in enumerate(sizes, start=1):
                buffer = io.StringIO()
                for vector in clustered(rng, centres, size):
                    tag = "rare" if rng.random() < 0.01 else "common"
                    expires = "2000-01-01" if rng.random() < 0.02 else "\\N"
                    buffer.write(
                        f"{owner}\t{owner % args.partitions}\t[{','.join(f'{v:.5f}' for v in vector)}]\t"
                        f'{{"tag": "{tag}"}}\t{expires}\n'
                    )
                copy.write(buffer.getvalue())
        print(f"load (COPY): {time.perf_counter() - started:.1f} s")
        cursor.execute(f"CREATE INDEX ON {TABLE} (owner_id)")
        cursor.execute("SET maintenance_work_mem = '1GB'")

        def build(sql_list):
            started = time.perf_counter()
            for sql in sql_list:
                cursor.execute(sql)
            return time.perf_counter() - started

        def index_bytes(pattern):
            cursor.execute(
                "SELECT coalesce(sum(pg_relation_size(indexrelid)), 0) FROM pg_stat_user_indexes "
                "WHERE relname = %s AND indexrelname LIKE %s",
                [TABLE, pattern],
            )
            return cursor.fetchone()[0]

        partial_time = build(
            f"CREATE INDEX {TABLE}_p{p} ON {TABLE} USING hnsw (embedding vector_cosine_ops) "
            f"WHERE partition = {p} AND NOT archived"
            for p in range(args.partitions)
        )
        print(f"partial HNSW indexes: built in {partial_time:.1f} s, {index_bytes(f'{TABLE}_p%') / 2**20:.0f} MiB")
        global_time = build([f"CREATE INDEX {TABLE}_global ON {TABLE} USING hnsw (embedding vector_cosine_ops)"])
        print(f"global HNSW index: built in {global_time:.1f} s, {index_bytes(f'{TABLE}_global') / 2**20:.0f} MiB")
        cursor.execute(f"ANALYZE {TABLE}")

        classes = {
            "large (top 1 %)": list(range(1, max(2, args.owners // 100) + 1)),
            "medium": list(range(args.owners // 100 + 2, args.owners // 10 + 1)),
            "small (bottom 50 %)": list(range(args.owners // 2, args.owners + 1)),
        }
        queries = list(clustered(random.Random(7), centres, args.queries))

        def run(sql, params, settings):
            cursor.execute("BEGIN")
            for name, value in settings.items():
                cursor.execute("SELECT set_config(%s, %s, true)", [name, value])
            started = time.perf_counter()
            cursor.execute(sql, params)
            ids = [row[0] for row in cursor.fetchall()]
            elapsed = (time.perf_counter() - started) * 1000
            cursor.execute("COMMIT")
            return ids, elapsed

        select = f"SELECT id FROM {TABLE} WHERE owner_id = %s AND NOT archived {{extra}} ORDER BY embedding <=> %s::vector LIMIT 10"
        exact_settings = {"enable_indexscan": "off"}
        # Force each plan: with sorts and sequential scans off only an HNSW index can order the rows.
        global_settings = {"hnsw.ef_search": "100", "hnsw.iterative_scan": "off", "enable_seqscan": "off",
                           "enable_sort": "off", "enable_bitmapscan": "off"}  # fmt: skip
        design_index = {"hnsw.ef_search": "100", "hnsw.iterative_scan": "relaxed_order", "enable_seqscan": "off",
                        "enable_sort": "off"}  # fmt: skip
        print("\nper class: p50 / p95 ms, recall@10 against exact (global index, filter after | platform design)")
        for label, owners in classes.items():
            for filtered in (False, True):
                extra = 'AND metadata @> \'{"tag": "rare"}\'' if filtered else ""
                sql = select.format(extra=extra)
                results = {"global": [], "design": []}
                for n, query in enumerate(queries):
                    owner = owners[n % len(owners)]
                    vector = "[" + ",".join(f"{v:.5f}" for v in query) + "]"
                    truth, _ = run(sql, [owner, vector], exact_settings)
                    cursor.execute(
                        f"SELECT count(*) FROM {TABLE} WHERE owner_id = %s AND NOT archived {extra}", [owner]
                    )
                    slice_rows = cursor.fetchone()[0]
                    design_sql = sql.replace(
                        "WHERE owner_id", f"WHERE partition = {owner % args.partitions} AND owner_id"
                    )
                    design_settings = exact_settings if slice_rows <= 2000 else design_index
                    for name, (q, settings) in {
                        "global": (sql, global_settings), "design": (design_sql, design_settings)
                    }.items():  # fmt: skip
                        ids, elapsed = run(q, [owner, vector], settings)
                        recall = len(set(ids) & set(truth)) / len(truth) if truth else float(not ids)
                        results[name].append((elapsed, recall))
                line = f"  {label:<20} {'rare tag (1 %)' if filtered else 'no filter':<15}"
                for name in ("global", "design"):
                    times = sorted(t for t, _ in results[name])
                    p95 = times[int(len(times) * 0.95) - 1]
                    recall = statistics.fmean(r for _, r in results[name])
                    line += f" | {name}: {statistics.median(times):7.2f} / {p95:7.2f} ms, recall {recall:.2f}"
                print(line)

        started = time.perf_counter()
        cursor.execute(f"SELECT count(*) FROM {TABLE} WHERE expires_at <= now()")
        expired = cursor.fetchone()[0]
        cursor.execute(f"DELETE FROM {TABLE} WHERE expires_at <= now()")
        print(f"\nprune of {expired} expired memories: {time.perf_counter() - started:.1f} s")
        connection.connection.autocommit = True
        reindex_time = build(f"REINDEX INDEX CONCURRENTLY {TABLE}_p{p}" for p in range(args.partitions))
        print(f"reindex of the partial indexes (concurrently): {reindex_time:.1f} s")
        cursor.execute(f"DROP TABLE {TABLE}")


if __name__ == "__main__":
    main()
