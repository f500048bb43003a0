"""Memory upkeep: pruning, archiving, reindexing the partitions, stats and re-embedding."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from memory.indexes import partition_indexes
from memory.models import Memory, partition_of
from memory.search import memory_search
from memory.services import memory_create
from tests.conftest import api_client
from tests.memory.helpers import bulk_memories, clustered_vectors


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
