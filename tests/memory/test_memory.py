import random
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from bench.memory import centres_of, clustered, owner_sizes
from memory.indexes import partition_indexes
from memory.models import Memory, partition_of
from memory.selectors import memory_search
from memory.services import memory_create
from tests.agents.conftest import ask
from tests.conftest import api_client, make_key
from tests.isolation import assert_isolated


def clustered_vectors(count: int, clusters: int = 20, seed: int = 1) -> list[list[float]]:
    """The benchmark's generator (bench/memory.py), small."""
    rng = random.Random(seed)
    return list(clustered(rng, centres_of(rng, clusters), count))


def bulk_memories(user, vectors, **fields):
    Memory.objects.bulk_create(
        Memory(
            owner=user,
            partition=partition_of(user.pk),
            content=f"m{n}",
            embedding=vector,
            embedding_model="test",
            **fields,
        )
        for n, vector in enumerate(vectors)
    )


@pytest.mark.django_db
def test_memories_are_created_embedded_searched_by_text_and_kept_to_their_owner(alice, charlie):
    client = api_client(alice)
    created = client.post(
        "/api/v1/memories", {"content": "My cat is called Miso", "metadata": {"topic": "pets"}}, format="json"
    )
    client.post("/api/v1/memories", {"content": "The invoice is due on Friday"}, format="json")

    assert created.status_code == 201 and created.json()["embedding_model"] == "hashing-v1"
    found = client.post("/api/v1/memories/search", {"query": "what is my cat called", "k": 1}, format="json").json()
    assert found["plan"] == "exact" and found["results"][0]["memory"]["content"] == "My cat is called Miso"
    assert api_client(charlie).post("/api/v1/memories/search", {"query": "cat"}, format="json").json()["results"] == []
    memory_id = created.json()["id"]
    assert_isolated(
        detail_url=f"/api/v1/memories/{memory_id}",
        owner=alice,
        outsider=charlie,
        writes=[("patch", f"/api/v1/memories/{memory_id}"), ("delete", f"/api/v1/memories/{memory_id}")],
        list_url="/api/v1/memories",
        outsider_key=make_key(charlie, scopes=["memory:read", "memory:write"]),
    )


@pytest.mark.django_db
def test_changing_the_content_embeds_it_again(alice):
    memory = memory_create(owner=alice, content="apples and pears")
    before = list(memory.embedding)

    api_client(alice).patch(f"/api/v1/memories/{memory.pk}", {"content": "rockets and moons"}, format="json")

    memory.refresh_from_db()
    assert list(memory.embedding) != before


@pytest.mark.django_db
def test_every_filter_operator_narrows_the_search(alice):
    now = timezone.now()
    rows = [
        ("fact", "work", None, {"topic": "billing", "priority": 1, "tags": "a"}),
        ("summary", "work", 7, {"topic": "billing", "priority": 3}),
        ("fact", "home", None, {"topic": "garden", "priority": 5, "source": "chat"}),
    ]
    for n, (kind, namespace, agent_id, metadata) in enumerate(rows):
        memory = memory_create(
            owner=alice, content=f"note {n}", kind=kind, namespace=namespace, agent_id=agent_id, metadata=metadata
        )
        Memory.objects.filter(pk=memory.pk).update(created_at=now - timedelta(days=10 - n))

    def contents(filters):
        hits, _ = memory_search(user=alice, query="note", filters=filters, k=10)
        return sorted(hit.memory.content for hit in hits)

    assert contents({"kind": "summary"}) == ["note 1"]
    assert contents({"namespace": ["home"]}) == ["note 2"]
    assert contents({"agent": 7}) == ["note 1"]
    assert contents({"agent": None}) == ["note 0", "note 2"]
    assert contents({"created_after": (now - timedelta(days=9, hours=12)).isoformat()}) == ["note 1", "note 2"]
    assert contents({"created_before": (now - timedelta(days=9, hours=12)).isoformat()}) == ["note 0"]
    assert contents({"metadata": {"topic": "billing"}}) == ["note 0", "note 1"]
    assert contents({"metadata": {"topic": {"$ne": "billing"}}}) == ["note 2"]
    assert contents({"metadata": {"topic": {"$in": ["garden", "none"]}}}) == ["note 2"]
    assert contents({"metadata": {"priority": {"$gt": 1}}}) == ["note 1", "note 2"]
    assert contents({"metadata": {"priority": {"$gte": 3}}}) == ["note 1", "note 2"]
    assert contents({"metadata": {"priority": {"$lt": 3}}}) == ["note 0"]
    assert contents({"metadata": {"priority": {"$lte": 3}}}) == ["note 0", "note 1"]
    assert contents({"metadata": {"source": {"$exists": True}}}) == ["note 2"]
    assert contents({"metadata": {"source": {"$exists": False}}, "kind": "fact"}) == ["note 0"]


@pytest.mark.django_db
def test_range_filters_compare_numbers_only(alice):
    """JSONB orders values of different types (true is above every number, "9" below): not what $gt means."""
    for n, priority in enumerate([5, True, "9", None, [7], 0.5]):
        memory_create(owner=alice, content=f"note {n}", metadata={"priority": priority})

    def contents(condition):
        hits, _ = memory_search(user=alice, query="note", filters={"metadata": {"priority": condition}})
        return sorted(hit.memory.content for hit in hits)

    assert contents({"$gt": 1}) == ["note 0"]
    assert contents({"$lt": 100}) == ["note 0", "note 5"]
    assert contents({"$gte": 0.5}) == ["note 0", "note 5"]
    assert contents({"$lte": 0}) == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "filters, message",
    [
        ({"colour": "red"}, "Unknown filters"),
        ({"kind": "dream"}, "must be among"),
        ({"metadata": {"a'b": 1}}, "not allowed"),
        ({"metadata": {"contains": "x"}}, "not allowed"),
        ({"metadata": {"a__b": 1}}, "not allowed"),
        ({"metadata": {"p": {"$regex": ".*"}}}, "not a valid condition"),
        ({"metadata": {"p": {"$gt": "high"}}}, "not a valid condition"),
        ({"created_after": "yesterday"}, "ISO 8601"),
        ({"agent": "seven"}, "agent id"),
        ({"metadata": {"p": {"$in": []}}}, "not a valid condition"),
    ],
)
def test_bad_filters_get_a_clear_400(alice, filters, message):
    response = api_client(alice).post("/api/v1/memories/search", {"query": "x", "filters": filters}, format="json")

    assert response.status_code == 400
    assert message in response.json()["errors"][0]["detail"]


@pytest.mark.django_db
def test_a_large_slice_goes_through_the_partitions_partial_hnsw_index_with_good_recall(alice, settings):
    settings.MEMORY_EXACT_SEARCH_MAX_ROWS = 500
    vectors = clustered_vectors(2520)
    bulk_memories(alice, vectors[:2500], metadata={"batch": 1})
    connection.cursor().execute("ANALYZE memory_memory")
    queries = vectors[2500:]  # new points from the same clusters, as real queries resemble what is stored

    recalls = []
    for query in queries:
        approximate, plan = memory_search(user=alice, vector=query, k=10)
        settings.MEMORY_EXACT_SEARCH_MAX_ROWS = 10_000
        exact, exact_plan = memory_search(user=alice, vector=query, k=10)
        settings.MEMORY_EXACT_SEARCH_MAX_ROWS = 500
        assert (plan, exact_plan) == ("hnsw", "exact")
        recalls.append(len({h.memory.pk for h in approximate} & {h.memory.pk for h in exact}) / 10)

    assert sum(recalls) / len(recalls) >= 0.9, recalls
    # The plan of such a search, under the settings the search uses: the partition's partial index
    from pgvector.django import CosineDistance

    from memory.selectors import hnsw_settings, search_settings

    with transaction.atomic(), search_settings(hnsw_settings()):
        queryset = Memory.objects.filter(owner=alice, partition=partition_of(alice.pk)).live()
        plan = queryset.annotate(d=CosineDistance("embedding", queries[0])).order_by("d")[:10].explain()
    assert f"Index Scan using memory_hnsw_p{partition_of(alice.pk)}" in plan, plan


@pytest.mark.django_db(transaction=True)
def test_a_searchs_planner_settings_end_with_it_alone_or_inside_a_larger_transaction(alice, settings):
    settings.MEMORY_EXACT_SEARCH_MAX_ROWS = 10
    bulk_memories(alice, clustered_vectors(50, seed=8))

    def current():
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('enable_seqscan'), current_setting('hnsw.iterative_scan')")
            return cursor.fetchone()

    assert memory_search(user=alice, vector=clustered_vectors(1, seed=8)[0])[1] == "hnsw"
    assert current() == ("on", "off")
    with transaction.atomic():
        memory_search(user=alice, vector=clustered_vectors(1, seed=8)[0])
        assert current() == ("on", "off")  # put back, not left for the rest of the caller's transaction


@pytest.mark.django_db
def test_a_selective_filter_still_returns_k_results_from_the_index(alice, settings):
    settings.MEMORY_EXACT_SEARCH_MAX_ROWS = 100
    vectors = clustered_vectors(1500, seed=3)
    bulk_memories(alice, vectors[:1350], metadata={"rare": False})
    bulk_memories(alice, vectors[1350:], metadata={"rare": True})

    hits, plan = memory_search(user=alice, vector=vectors[0], k=10, filters={"metadata": {"rare": True}})

    assert plan == "hnsw" and len(hits) == 10
    assert all(hit.memory.metadata["rare"] for hit in hits)


@pytest.mark.django_db
def test_a_small_benchmark_set_is_searched_with_the_exact_answers_for_every_owner_size(settings):
    """bench/memory.py's set, small: Zipf-skewed owners, clustered vectors, a 1 % tag. Small slices are
    scanned exactly, the large owner's through its partition's index; recall@10 against exact search."""
    from tests.conftest import make_user

    settings.MEMORY_EXACT_SEARCH_MAX_ROWS = 300
    rng = random.Random(4)
    centres = centres_of(rng, 30)
    owners = [make_user(f"zipf{n}") for n in range(12)]
    for owner, size in zip(owners, owner_sizes(3000, len(owners), 1.0), strict=True):
        vectors = list(clustered(rng, centres, size))
        tags = ["rare" if rng.random() < 0.01 else "common" for _ in vectors]
        Memory.objects.bulk_create(
            Memory(
                owner=owner,
                partition=partition_of(owner.pk),
                content=f"m{n}",
                embedding=vector,
                embedding_model="test",
                metadata={"tag": tag},
            )
            for n, (vector, tag) in enumerate(zip(vectors, tags, strict=True))
        )
    connection.cursor().execute("ANALYZE memory_memory")
    queries = list(clustered(random.Random(9), centres, 5))

    def search(owner, query, filters, exact):
        settings.MEMORY_EXACT_SEARCH_MAX_ROWS = 100_000 if exact else 300
        hits, plan = memory_search(user=owner, vector=query, filters=filters, k=10)
        return [hit.memory.pk for hit in hits], plan

    plans, recalls = set(), []
    for owner in (owners[0], owners[3], owners[-1]):  # about 970, 240 and 80 memories
        for filters in (None, {"metadata": {"tag": "rare"}}):
            for query in queries:
                found, plan = search(owner, query, filters, exact=False)
                truth, _ = search(owner, query, filters, exact=True)
                plans.add((owner.username, filters is None, plan))
                recalls.append(len(set(found) & set(truth)) / len(truth) if truth else float(not found))
    assert ("zipf0", True, "hnsw") in plans and ("zipf11", True, "exact") in plans
    assert sum(recalls) / len(recalls) >= 0.95, recalls


@pytest.mark.django_db
def test_agents_that_use_memory_get_it_in_their_prompt_and_a_changed_memory_is_a_new_cache_key(alice, agent, fake_llm):
    agent.use_memory = True
    agent.save()
    memory = memory_create(owner=alice, content="Alice's favourite colour is green", agent_id=agent.pk)
    memory_create(owner=alice, content="Another agent's note about colours", agent_id=agent.pk + 1000)
    client = api_client(alice)

    assert ask(client, agent, "what is my favourite colour")["X-Cache"] == "MISS"
    system = fake_llm.requests[-1]["body"]["messages"][0]["content"]
    assert "favourite colour is green" in system and "Another agent" not in system
    assert ask(client, agent, "what is my favourite colour")["X-Cache"] == "HIT"

    memory.content = "Alice's favourite colour is blue"
    memory.save()
    assert ask(client, agent, "what is my favourite colour")["X-Cache"] == "MISS"
    assert "favourite colour is blue" in fake_llm.requests[-1]["body"]["messages"][0]["content"]

    from accounts.services import preferences_update

    preferences_update(user=alice, memory_enabled=False)
    ask(client, agent, "what else")
    assert "favourite colour" not in fake_llm.requests[-1]["body"]["messages"][0]["content"]


@pytest.mark.django_db
def test_a_vector_of_the_wrong_size_is_a_400(alice):
    response = api_client(alice).post("/api/v1/memories/search", {"vector": [0.1, 0.2]}, format="json")

    assert response.status_code == 400 and response.json()["errors"][0]["attr"] == "vector"


# --- maintenance, import and export ---------------------------------------------------------------------


@pytest.mark.django_db
def test_prune_removes_expired_past_retention_and_faded_memories_and_dry_run_changes_nothing(alice, bob):
    from accounts.services import preferences_update
    from memory import maintenance

    now = timezone.now()
    keep = memory_create(owner=alice, content="keep me", importance=0.9)
    expired = memory_create(owner=alice, content="expired", expires_at=now - timedelta(minutes=1))
    old = memory_create(owner=alice, content="old")
    faded = memory_create(owner=bob, content="faded", importance=0.2)
    Memory.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=40))
    Memory.objects.filter(pk=faded.pk).update(created_at=now - timedelta(days=400))  # 0.2 * 0.5**(400/90) < 0.05
    preferences_update(user=alice, memory_retention_days=30)

    planned = maintenance.prune(dry_run=True)
    assert planned == {"expired": 1, "past_retention": 1, "faded": 1, "duplicates": 0, "over_cap": 0}
    assert Memory.objects.count() == 4

    assert maintenance.prune() == planned
    assert list(Memory.objects.values_list("pk", flat=True)) == [keep.pk]
    assert not Memory.objects.filter(pk__in=[expired.pk, old.pk, faded.pk]).exists()


@pytest.mark.django_db
def test_prune_removes_near_duplicates_of_recent_memories_keeping_the_more_important(alice, bob):
    from memory import maintenance

    a, b, c, d = clustered_vectors(4, clusters=4, seed=11)
    nudged = [value + 0.0004 for value in a]
    bulk_memories(alice, [a], importance=0.5)
    bulk_memories(alice, [nudged], importance=0.5)  # newer, as important: the one to go
    bulk_memories(alice, [a], namespace="work")  # another namespace: not a duplicate
    bulk_memories(alice, [a], agent_id=7)  # another agent's: not a duplicate
    bulk_memories(bob, [a])  # another owner's
    bulk_memories(alice, [b], importance=0.2)
    bulk_memories(alice, [b], importance=0.9)  # newer but more important: the older goes
    bulk_memories(alice, [c])
    bulk_memories(alice, [c])
    bulk_memories(alice, [d])
    old = Memory.objects.filter(embedding=c)
    old.update(created_at=timezone.now() - timedelta(days=5))  # both before the window: not looked at
    ids = list(
        Memory.objects.filter(owner=alice, namespace="default", agent_id=None)
        .order_by("pk")
        .values_list("pk", flat=True)
    )

    assert maintenance.prune(dry_run=True)["duplicates"] == 2 and Memory.objects.count() == 10
    assert maintenance.prune()["duplicates"] == 2

    assert not Memory.objects.filter(pk__in=[ids[1], ids[2]]).exists()
    assert Memory.objects.count() == 8 and maintenance.prune()["duplicates"] == 0


@pytest.mark.django_db
def test_prune_keeps_each_owner_under_their_cap_removing_the_least_important_and_least_used(
    alice, bob, charlie, settings
):
    from accounts.services import preferences_update
    from memory import maintenance

    settings.MEMORY_DEFAULT_MAX_ITEMS = 3
    preferences_update(user=bob, memory_max_items=2)
    preferences_update(user=alice, memory_max_items=10)
    vectors = clustered_vectors(5, seed=12)
    for user in (alice, bob, charlie):
        for vector, importance in zip(vectors, [0.1, 0.9, 0.5, 0.9, 0.6], strict=True):
            bulk_memories(user, [vector], importance=importance)
    used = Memory.objects.filter(owner=bob, importance=0.9).order_by("pk").first()
    Memory.objects.filter(pk=used.pk).update(last_accessed_at=timezone.now())

    assert maintenance.prune(dry_run=True)["over_cap"] == 5 and Memory.objects.count() == 15
    assert maintenance.prune()["over_cap"] == 5

    def kept(user):
        return sorted(Memory.objects.filter(owner=user).values_list("importance", flat=True))

    assert kept(alice) == [0.1, 0.5, 0.6, 0.9, 0.9]  # under her own cap of 10
    assert kept(bob) == [0.9, 0.9]
    assert kept(charlie) == [0.6, 0.9, 0.9]  # the platform's default cap
    # Of bob's two 0.9s, a third memory at 0.9 would push out the one never used first.
    bulk_memories(bob, [vectors[0]], importance=0.9)
    maintenance.prune()
    assert used.pk in Memory.objects.filter(owner=bob).values_list("pk", flat=True)


@pytest.mark.django_db
def test_archived_memories_leave_normal_search_and_can_be_restored(alice, settings):
    from memory import maintenance

    memory = memory_create(owner=alice, content="the boat is blue")
    Memory.objects.filter(pk=memory.pk).update(
        created_at=timezone.now() - timedelta(days=settings.MEMORY_ARCHIVE_AFTER_DAYS + 1)
    )

    assert maintenance.archive(dry_run=True) == 1 and maintenance.archive() == 1
    assert memory_search(user=alice, query="boat")[0] == []
    assert [h.memory.pk for h in memory_search(user=alice, query="boat", include_archived=True)[0]] == [memory.pk]

    api_client(alice).patch(f"/api/v1/memories/{memory.pk}", {"archived": False}, format="json")
    assert [h.memory.pk for h in memory_search(user=alice, query="boat")[0]] == [memory.pk]


@pytest.mark.django_db(transaction=True)
def test_reindex_rebuilds_the_partition_indexes_while_searches_go_on(alice, settings):
    import threading

    from memory import maintenance

    settings.MEMORY_EXACT_SEARCH_MAX_ROWS = 10
    bulk_memories(alice, clustered_vectors(300, seed=5))
    query = clustered_vectors(1, seed=5)[0]
    failures, counts, done = [], [], threading.Event()

    def search_meanwhile():
        try:
            while not done.is_set():
                counts.append(len(memory_search(user=alice, vector=query, k=5)[0]))
        except Exception as error:  # noqa: BLE001  (the test reports it)
            failures.append(error)
        finally:
            connection.close()

    searcher = threading.Thread(target=search_meanwhile)
    searcher.start()
    try:
        actions = maintenance.reindex(force=True)
    finally:
        done.set()
        searcher.join()

    assert len(actions) == settings.MEMORY_PARTITIONS and all(action.startswith("rebuild") for action in actions)
    assert not failures and counts and set(counts) == {5}
    assert set(partition_indexes()) == set(range(settings.MEMORY_PARTITIONS))


@pytest.mark.django_db(transaction=True)
def test_reindex_rebuilds_only_an_index_that_bloated_or_whose_settings_changed(alice, settings):
    from memory import maintenance

    partition = partition_of(alice.pk)
    bulk_memories(alice, clustered_vectors(400, seed=6))
    maintenance.reindex()  # an index built empty by the migration takes its figures now, as its reference
    assert maintenance.reindex(dry_run=True) == []
    built = partition_indexes()[partition]

    Memory.objects.filter(pk__in=Memory.objects.filter(owner=alice).values("pk")[:300]).delete()
    assert partition_indexes()[partition].bytes == built.bytes  # deleted rows leave their space in the graph
    assert maintenance.reindex(dry_run=True) == [f"rebuild memory_hnsw_p{partition} (bloat x4.0)"]
    maintenance.reindex()
    assert partition_indexes()[partition].bytes < built.bytes / 2 and maintenance.reindex(dry_run=True) == []

    settings.MEMORY_HNSW_M = 8
    planned = maintenance.reindex(dry_run=True)
    assert len(planned) == settings.MEMORY_PARTITIONS and all("(settings changed)" in p for p in planned)
    maintenance.reindex()
    assert {index.options["m"] for index in partition_indexes().values()} == {8}
    settings.MEMORY_HNSW_M = 16
    maintenance.reindex()  # back as the other tests expect


@pytest.mark.django_db
def test_a_changed_partition_count_is_planned_as_moves_and_index_changes(alice, settings):
    from memory import maintenance

    memory_create(owner=alice, content="somewhere")
    settings.MEMORY_PARTITIONS = 63

    plan = maintenance.reindex(dry_run=True)

    assert plan[0] == "repartition 1 rows" if alice.pk % 64 != alice.pk % 63 else True
    assert "drop memory_hnsw_p63" in plan and not any(action.startswith("create") for action in plan)


def test_reindex_refuses_to_run_inside_a_transaction(db):
    from memory import maintenance

    with pytest.raises(RuntimeError, match="inside a transaction"):
        maintenance.reindex()


@pytest.mark.django_db
def test_stats_report_rows_and_index_sizes_per_partition(alice):
    from memory import maintenance

    memory_create(owner=alice, content="one")

    [row] = [row for row in maintenance.stats() if row["partition"] == partition_of(alice.pk)]
    assert row["live"] == 1 and row["archived"] == 0 and row["index_bytes"] > 0


@pytest.mark.django_db
def test_an_import_with_a_malformed_line_names_it_and_writes_nothing(alice):
    from django.core.exceptions import ValidationError

    from memory.services import memory_import

    lines = '{"content": "first"}\n{"content": "second", "kind": "fact"}\n{not json}\n'

    with pytest.raises(ValidationError, match="Line 3"):
        memory_import(owner=alice, lines=lines)
    with pytest.raises(ValidationError, match="Line 2: kind"):
        memory_import(owner=alice, lines='{"content": "a"}\n{"content": "b", "kind": "dream"}')
    assert not Memory.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_bulk_import_runs_as_a_task_and_export_gives_the_memories_back(celery_worker, alice):
    from tasks.models import TaskRecord
    from tests.tasks.conftest import wait_until

    client = api_client(alice)
    lines = "\n".join(f'{{"content": "fact number {n}", "metadata": {{"n": {n}}}}}' for n in range(120))

    response = client.post("/api/v1/memories/import", {"lines": lines}, format="json")

    assert response.status_code == 202
    task = wait_until(lambda: TaskRecord.objects.filter(pk=response.json()["id"], status="succeeded").first())
    assert task.result == {"imported": 120} and task.progress_percent == 100
    exported = b"".join(client.get("/api/v1/memories/export").streaming_content).decode().splitlines()
    assert len(exported) == 120 and '"content": "fact number 0"' in exported[0]

    bad = client.post("/api/v1/memories/import", {"lines": '{"content": "ok"}\n[1, 2]'}, format="json")
    failed = wait_until(lambda: TaskRecord.objects.filter(pk=bad.json()["id"], status="failed").first())
    assert "Line 2" in failed.error
    assert Memory.objects.count() == 120


@pytest.mark.django_db
def test_memories_of_another_model_are_embedded_again_by_the_command(alice):
    from io import StringIO

    from django.core.management import call_command

    memory = memory_create(owner=alice, content="the sky is green")
    Memory.objects.filter(pk=memory.pk).update(embedding_model="old-model", embedding=[0.0] * 383 + [1.0])

    out = StringIO()
    call_command("memory_maintenance", "reembed", "--dry-run", stdout=out, stderr=StringIO())
    assert '"result": 1' in out.getvalue() and Memory.objects.get().embedding_model == "old-model"
    call_command("memory_maintenance", "reembed", stdout=StringIO(), stderr=StringIO())

    memory.refresh_from_db()
    assert memory.embedding_model == "hashing-v1"
    assert [h.memory.pk for h in memory_search(user=alice, query="sky green")[0]] == [memory.pk]
