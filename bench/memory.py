"""Memory search at scale: one global HNSW index with the filter after it, against the platform's design
(owner partitions with partial HNSW indexes, exact scans of small slices, iterative index scans).

A synthetic set (`--memories`, the issue asks for at least 1,000,000) over `--owners` users with a Zipf-like
skew (a few owners hold tens of thousands, most hold hundreds), 384-dimension clustered vectors and metadata
with a selective tag (1 %), loaded with COPY into the platform's own `memory_memory` table in a database of
its own (`switchboard_bench_memory` on the embedded server, or BENCH_DATABASE_URL). The platform side is the
real code: indexes built by `maintenance.reindex`, searches through `memory.search.memory_search`, upkeep by
`maintenance.prune` and `maintenance.reindex`. Reports, per owner size class and with the selective filter,
search p50 / p95 and recall@10 against exact search; build time and size of each layout; prune and
reindex times.

    .venv/bin/python bench/memory.py --memories 1000000 --owners 1000 [--keep] [--phases load,search,upkeep]

--keep leaves the loaded set for a later run of some phases only (--phases search,upkeep).
"""

import argparse
import io
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

DIMENSIONS = 384
DATABASE = "switchboard_bench_memory"
GLOBAL_INDEX = "bench_global_hnsw"
# The global index needs its whole graph in memory to build at a sane speed (1M x 384-d is ~2 GiB).
MAINTENANCE_WORK_MEM = "4GB"


def centres_of(rng: random.Random, clusters: int) -> list[list[float]]:
    return [[rng.gauss(0, 1) for _ in range(DIMENSIONS)] for _ in range(clusters)]


def clustered(rng: random.Random, centres, count):
    """Normalised vectors around the centres (real embeddings cluster by topic)."""
    for _ in range(count):
        centre = rng.choice(centres)
        vector = [value + rng.gauss(0, 0.35) for value in centre]
        norm = sum(v * v for v in vector) ** 0.5
        yield [v / norm for v in vector]


def owner_sizes(total: int, owners: int, skew: float) -> list[int]:
    """Zipf-like: the owner of rank r holds a share proportional to 1 / r**skew."""
    weights = [1 / (rank**skew) for rank in range(1, owners + 1)]
    scale = total / sum(weights)
    sizes = [max(1, int(weight * scale)) for weight in weights]
    sizes[0] += total - sum(sizes)
    return sizes


def text(vector) -> str:
    return "[" + ",".join(f"{v:.5f}" for v in vector) + "]"


def use_bench_database():
    """Point Django at a database of the benchmark's own (created if missing), before settings load."""
    if "BENCH_DATABASE_URL" in os.environ:
        os.environ["DATABASE_URL"] = os.environ["BENCH_DATABASE_URL"]
        return
    import psycopg

    from platform_site import embedded

    embedded.ensure_postgres()
    with psycopg.connect(embedded.postgres_url("postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone():
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
    os.environ["DATABASE_URL"] = embedded.postgres_url(DATABASE)


def load(cursor, args, rng, centres, owner_ids):
    """COPY the synthetic memories: created over the last 180 days, 2 % already expired, importance spread,
    0.5 % near duplicates of the owner's previous memory (what prune's duplicate pass should find)."""
    now = datetime.now(UTC)
    sizes = owner_sizes(args.memories, args.owners, args.skew)
    started = time.perf_counter()
    columns = (
        "owner_id, partition, namespace, kind, content, embedding, embedding_model, metadata, importance, "
        "access_count, created_at, expires_at, archived"
    )
    with cursor.copy(f"COPY memory_memory ({columns}) FROM STDIN") as copy:
        for owner, size in zip(owner_ids, sizes, strict=True):
            buffer = io.StringIO()
            previous = None
            for n, vector in enumerate(clustered(rng, centres, size)):
                if previous is not None and rng.random() < 0.005:
                    vector = [v + rng.gauss(0, 0.0005) for v in previous]
                previous = vector
                tag = "rare" if rng.random() < 0.01 else "common"
                created = now - timedelta(seconds=rng.uniform(0, 180 * 86400))
                expires = "2000-01-01T00:00:00Z" if rng.random() < 0.02 else "\\N"
                buffer.write(
                    f"{owner}\t{owner % args.partitions}\tdefault\tfact\tmemory {n} of owner {owner}\t{text(vector)}\t"
                    f'bench\t{{"tag": "{tag}", "n": {n}}}\t{rng.uniform(0.05, 1):.3f}\t0\t{created.isoformat()}\t'
                    f"{expires}\tf\n"
                )
            copy.write(buffer.getvalue())
    print(f"load (COPY) of {args.memories} memories: {time.perf_counter() - started:.1f} s")
    cursor.execute("VACUUM (ANALYZE) memory_memory")  # now, so autovacuum does not hold up the index builds


def index_mib(cursor, pattern: str) -> float:
    cursor.execute(
        "SELECT coalesce(sum(pg_relation_size(indexrelid)), 0) FROM pg_stat_user_indexes "
        "WHERE relname = 'memory_memory' AND indexrelname LIKE %s",
        [pattern],
    )
    return cursor.fetchone()[0] / 2**20


def percentiles(times):
    times = sorted(times)
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)]


def count_round_trips(call, **arguments) -> int:
    """How many times the client waits for the server in `call(**arguments)`: libpq's trace of the connection,
    one ReadyForQuery per round trip (a BEGIN or COMMIT that psycopg sends on its own counts too)."""
    import tempfile

    import psycopg
    from django.db import connection

    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    with tempfile.TemporaryFile(mode="w+") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            call(**arguments)
        finally:
            pgconn.untrace()
        trace.seek(0)
        return sum("\tReadyForQuery\t" in line for line in trace)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--memories", type=int, default=1_000_000)
    parser.add_argument("--owners", type=int, default=1000)
    parser.add_argument("--skew", type=float, default=1.0, help="Zipf exponent of owner sizes")
    parser.add_argument("--partitions", type=int, default=64)
    parser.add_argument("--queries", type=int, default=30, help="per size class")
    parser.add_argument("--keep", action="store_true", help="leave the loaded set for a later run")
    parser.add_argument("--phases", default="load,search,upkeep", help="load, search, upkeep (comma separated)")
    parser.add_argument(
        "--platform-only", action="store_true", help="search: skip the global index layouts (no global index build)"
    )
    args = parser.parse_args()

    use_bench_database()
    os.environ["MEMORY_PARTITIONS"] = str(args.partitions)
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from memory import maintenance
    from memory.models import Memory

    User = get_user_model()
    rng = random.Random(42)
    centres = centres_of(rng, 200)
    cursor = connection.cursor()

    phases = set(args.phases.split(","))
    call_command("migrate", verbosity=0)
    if "load" in phases:
        cursor.execute("TRUNCATE memory_memory")
        cursor.execute(f"DROP INDEX IF EXISTS {GLOBAL_INDEX}")
        User.objects.filter(username__startswith="bench-").delete()
        users = User.objects.bulk_create(User(username=f"bench-{n:04d}") for n in range(args.owners))
        # Load without the partial indexes (inserting into HNSW row by row is far slower than a build).
        for partition in maintenance.partition_indexes():
            cursor.execute(f"DROP INDEX memory_hnsw_p{partition}")
        cursor.execute("DROP INDEX memory_metadata_gin")
        cursor.execute("DROP INDEX memory_live_slice")
        load(cursor, args, rng, centres, [user.pk for user in users])
        started = time.perf_counter()
        cursor.execute("CREATE INDEX memory_metadata_gin ON memory_memory USING gin (metadata jsonb_path_ops)")
        print(
            f"metadata GIN index: built in {time.perf_counter() - started:.1f} s, "
            f"{index_mib(cursor, 'memory_metadata_gin'):.0f} MiB"
        )
        started = time.perf_counter()
        with connection.schema_editor() as editor:  # the model's, as its migration made it
            editor.add_index(Memory, next(index for index in Memory._meta.indexes if index.name == "memory_live_slice"))
        print(
            f"live slice index (what a search's count reads): built in {time.perf_counter() - started:.1f} s, "
            f"{index_mib(cursor, 'memory_live_slice'):.0f} MiB"
        )
        started = time.perf_counter()
        maintenance.reindex()
        print(
            f"partial HNSW indexes (platform, {args.partitions}, concurrently): built in "
            f"{time.perf_counter() - started:.1f} s, {index_mib(cursor, 'memory_hnsw_p%'):.0f} MiB"
        )
    cursor.execute("SHOW server_version")
    version = cursor.fetchone()[0]
    cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    print(
        f"PostgreSQL {version}, pgvector {(cursor.fetchone() or ['?'])[0]}, {os.cpu_count()} cores, "
        f"maintenance_work_mem {MAINTENANCE_WORK_MEM} for the global index, ef_search {settings.MEMORY_HNSW_EF_SEARCH}, "
        f"exact scan up to {settings.MEMORY_EXACT_SEARCH_MAX_ROWS} rows"
    )
    users = list(User.objects.filter(username__startswith="bench-").order_by("username"))
    cursor.execute("SELECT owner_id, count(*) FROM memory_memory GROUP BY owner_id")
    counts = dict(cursor.fetchall())
    users.sort(key=lambda user: -counts.get(user.pk, 0))
    sizes = [counts.get(user.pk, 0) for user in users]
    print(
        f"{sum(sizes)} memories, {len(users)} owners (largest {sizes[0]}, median {sizes[len(sizes) // 2]}, "
        f"{sum(size >= 50_000 for size in sizes)} with 50,000 or more), {args.partitions} partitions, "
        f"{DIMENSIONS} dimensions"
    )

    top = max(1, len(users) // 100)
    classes = {
        "large (top 1 %)": users[:top],
        "medium (top 10 %)": users[top : len(users) // 10],
        "small (bottom 50 %)": users[len(users) // 2 :],
    }
    if "search" in phases:
        search(cursor, classes, centres, args)
    if "upkeep" in phases:
        upkeep(cursor, users, args)
    if not args.keep:
        cursor.execute("TRUNCATE memory_memory")
        User.objects.filter(username__startswith="bench-").delete()


def search(cursor, classes, centres, args):
    from django.conf import settings

    from memory.search import memory_search, search_plan

    vectors = list(clustered(random.Random(7), centres, args.queries))
    queries = [text(vector) for vector in vectors]
    live = "NOT archived AND (expires_at IS NULL OR expires_at > now())"
    global_sql = f"SELECT id FROM memory_memory WHERE owner_id = %s AND {live} {{extra}} ORDER BY embedding <=> %s::vector LIMIT 10"  # noqa: E501

    def timed_sql(sql, params, values):
        cursor.execute("BEGIN")
        for name, value in values.items():
            cursor.execute("SELECT set_config(%s, %s, true)", [name, value])
        started = time.perf_counter()
        cursor.execute(sql, params)
        ids = [row[0] for row in cursor.fetchall()]
        elapsed = (time.perf_counter() - started) * 1000
        cursor.execute("COMMIT")
        return ids, elapsed

    # Truth and the platform first, while only the partial indexes exist; then the global index alone.
    cases = [(label, rare) for label in classes for rare in (False, True)]
    truth, design, plans, round_trips = {}, {}, {}, {}
    for label, rare in cases:
        extra = 'AND metadata @> \'{"tag": "rare"}\'' if rare else ""
        filters = {"metadata": {"tag": "rare"}} if rare else None
        for n, query in enumerate(queries):
            user = classes[label][n % len(classes[label])]
            truth[label, rare, n], _ = timed_sql(
                global_sql.format(extra=extra), [user.pk, query], {"enable_indexscan": "off"}
            )
            # The same search's SQL alone, timed like the global index's below.
            planned = search_plan(owner_id=user.pk, vector=vectors[n], filters=filters, k=10)
            sql, params = planned.ranked.query.sql_with_params()
            # The whole call against its SQL, both warm: the index and rows a search reads are mostly not in
            # shared buffers yet, and whichever ran first would pay for reading them. So one search untimed,
            # then the two in turn, in alternating order.
            started = time.perf_counter()
            hits, _ = memory_search(user=user, vector=vectors[n], filters=filters, k=10)
            design["platform, memory_search(), cold", label, rare, n] = (
                [hit.memory.pk for hit in hits],
                (time.perf_counter() - started) * 1000,
            )
            for name in ("platform, its SQL", "platform, memory_search()")[:: 1 if n % 2 else -1]:
                if name == "platform, its SQL":
                    design[name, label, rare, n] = timed_sql(sql, params, planned.settings)
                    continue
                started = time.perf_counter()
                hits, plan = memory_search(user=user, vector=vectors[n], filters=filters, k=10)
                design[name, label, rare, n] = ([hit.memory.pk for hit in hits], (time.perf_counter() - started) * 1000)
                plans.setdefault((label, rare), set()).add(plan)
            if n == 0:
                round_trips[label, rare] = count_round_trips(
                    memory_search, user=user, vector=vectors[n], filters=filters, k=10
                )

    cursor.execute(f"DROP INDEX IF EXISTS {GLOBAL_INDEX}")  # left by an interrupted run
    if not args.platform_only:
        started = time.perf_counter()
        cursor.execute(f"SET maintenance_work_mem = '{MAINTENANCE_WORK_MEM}'")
        cursor.execute(f"CREATE INDEX {GLOBAL_INDEX} ON memory_memory USING hnsw (embedding vector_cosine_ops)")
        print(
            f"global HNSW index: built in {time.perf_counter() - started:.1f} s, "
            f"{index_mib(cursor, GLOBAL_INDEX):.0f} MiB"
        )
    # Only an HNSW index can give rows in distance order once sorts and sequential scans are off.
    forced = {
        "hnsw.ef_search": str(settings.MEMORY_HNSW_EF_SEARCH),
        "enable_seqscan": "off",
        "enable_sort": "off",
        "enable_bitmapscan": "off",
    }
    layouts = {
        "global, filter after": {**forced, "hnsw.iterative_scan": "off"},
        "global, iterative": {**forced, "hnsw.iterative_scan": "relaxed_order"},
    }
    if args.platform_only:
        layouts = {}
    results = {}
    for label, rare in cases:
        extra = 'AND metadata @> \'{"tag": "rare"}\'' if rare else ""
        for name, values in layouts.items():
            for n, query in enumerate(queries):
                user = classes[label][n % len(classes[label])]
                results[name, label, rare, n] = timed_sql(global_sql.format(extra=extra), [user.pk, query], values)
    cursor.execute(f"DROP INDEX IF EXISTS {GLOBAL_INDEX}")

    def recall(found, expected):
        return len(set(found) & set(expected)) / len(expected) if expected else float(not found)

    print("\nsearch, k=10: p50 / p95 ms, recall@10 against exact search")
    for label, rare in cases:
        print(f"  {label}, {'rare tag (1 %)' if rare else 'no filter'}:")
        rows = {name: [results[name, label, rare, n] for n in range(len(queries))] for name in layouts}
        for name in ("platform, its SQL", "platform, memory_search()", "platform, memory_search(), cold"):
            rows[f"{name} ({'/'.join(sorted(plans[label, rare]))})"] = [
                design[name, label, rare, n] for n in range(len(queries))
            ]
        for name, found in rows.items():
            p50, p95 = percentiles([elapsed for _, elapsed in found])
            score = statistics.fmean(recall(ids, truth[label, rare, n]) for n, (ids, _) in enumerate(found))
            print(f"    {name:<40} {p50:8.2f} / {p95:8.2f} ms   recall {score:.2f}")
        # The whole call against its own SQL: p50 over p50, p95 over p95, and the median of the per-query ratios.
        whole, alone = (
            [design[name, label, rare, n][1] for n in range(len(queries))]
            for name in ("platform, memory_search()", "platform, its SQL")
        )
        (whole50, whole95), (alone50, alone95) = percentiles(whole), percentiles(alone)
        paired = statistics.median(w / a for w, a in zip(whole, alone, strict=True))
        print(
            f"    {'memory_search() / its SQL':<40} {whole50 / alone50:8.2f} / {whole95 / alone95:8.2f}      "
            f"per query {paired:.2f}, {round_trips[label, rare]} round trips"
        )


def upkeep(cursor, users, args):
    from django.conf import settings

    from accounts.models import Preferences
    from memory import maintenance

    print(f"\nupkeep (the platform's maintenance, batch of {settings.MEMORY_MAINTENANCE_BATCH}):")
    for user in users[:5]:  # the five largest owners capped at 40,000 memories
        Preferences.objects.update_or_create(user=user, defaults={"memory_max_items": 40_000})
    started = time.perf_counter()
    pruned = maintenance.prune()
    print(f"  prune: {time.perf_counter() - started:.1f} s, {pruned}")
    started = time.perf_counter()
    actions = maintenance.reindex()
    rebuilt = sum(action.startswith(("reindex", "rebuild")) for action in actions)
    print(f"  reindex where needed: {time.perf_counter() - started:.1f} s, {rebuilt} of {args.partitions} rebuilt")
    started = time.perf_counter()
    maintenance.reindex(force=True)
    print(
        f"  reindex of every partition (concurrently): {time.perf_counter() - started:.1f} s, "
        f"{index_mib(cursor, 'memory_hnsw_p%'):.0f} MiB"
    )


if __name__ == "__main__":
    main()
