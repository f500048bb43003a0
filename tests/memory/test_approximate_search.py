"""Large slices searched through the partitions' HNSW indexes: the plan, its settings and its recall."""

import random

import pytest
from django.db import connection, transaction

from bench.memory import centres_of, clustered, owner_sizes
from memory.models import Memory, partition_of
from memory.search import memory_search
from tests.memory.helpers import bulk_memories, clustered_vectors


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

    from memory.search import hnsw_settings, search_settings

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
