"""memory_search in one round trip (two with shared namespaces, or for a slice larger than it was): the
same hits, order, distances and plan as search_plan under search_settings, for every option."""

import math
import random
from datetime import timedelta

import pytest
from django.db import DataError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.services import object_unshare
from bench.memory import count_round_trips
from memory import search as memory_search_module
from memory.embeddings import unit_vector
from memory.models import Memory, MemoryNamespace, partition_of
from memory.search import memory_search, search_plan, search_settings
from memory.selectors import shared_scopes
from memory.serializers import MemorySerializer
from memory.services import namespace_share
from tests.conftest import make_user
from tests.memory.helpers import bulk_memories, clustered_vectors


@pytest.fixture(autouse=True)
def no_remembered_slices():
    """Which slices were large is kept per process: each test starts knowing none."""
    memory_search_module._LARGE_SLICES.clear()
    yield
    memory_search_module._LARGE_SLICES.clear()


def reference_search(*, user, vector, filters=None, k=10, include_archived=False, for_agent=None, shared="view"):
    """memory_search as it was: the share lookup, then per owner search_plan's count and its query under
    search_settings, each through the ORM."""
    from django.conf import settings

    vector = unit_vector(vector)
    scopes = [(user.pk, None)]
    if shared:
        scopes += list(shared_scopes(user=user, level=shared).items())[: settings.MEMORY_SEARCH_SHARED_OWNERS]
    hits, plans = [], []
    for owner_id, namespaces in scopes:
        plan = search_plan(
            owner_id=owner_id,
            namespaces=namespaces,
            vector=vector,
            filters=filters,
            k=k,
            include_archived=include_archived,
            for_agent=for_agent,
        )
        with search_settings(plan.settings):
            hits += [(memory.pk, memory.distance) for memory in plan.ranked if math.isfinite(memory.distance)]
        plans.append(plan.plan)
    return sorted(hits, key=lambda hit: hit[1])[:k], plans[0]


def assert_same_search(**search):
    hits, plan = memory_search(**search)
    expected, expected_plan = reference_search(**search)
    assert (plan, [hit.memory.pk for hit in hits]) == (expected_plan, [pk for pk, _ in expected]), search
    assert all(abs(hit.distance - distance) < 1e-9 for hit, (_, distance) in zip(hits, expected, strict=True))
    return hits, plan


def current(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s)", [name])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_every_option_finds_what_search_plan_finds_with_the_same_order_distances_and_plan(alice, bob, settings):
    # Alice's memories over two namespaces, three agents, two kinds, a topic on some, a few archived or
    # expired, one without a direction (NaN: never a hit); bob and charlie share namespaces with her.
    charlie = make_user("charlie")
    rng = random.Random(5)
    vectors = clustered_vectors(400, seed=21)
    now = timezone.now()
    Memory.objects.bulk_create(
        Memory(
            owner=owner,
            partition=partition_of(owner.pk),
            content=f"m{n}",
            embedding=vector,
            embedding_model="test",
            namespace=rng.choice(["default", "work"]),
            agent_id=rng.choice([None, 7, 8]),
            kind=rng.choice(["fact", "summary"]),
            metadata={"topic": rng.choice(["billing", "garden"])} if n % 3 else {},
            archived=n % 17 == 0,
            expires_at=now - timedelta(hours=1) if n % 19 == 0 else None,
        )
        for n, (owner, vector) in enumerate(
            (alice if n < 300 else bob if n < 360 else charlie, vector) for n, vector in enumerate(vectors[:390])
        )
    )
    Memory.objects.filter(pk=Memory.objects.filter(owner=alice).order_by("pk").values("pk")[:1]).update(
        embedding=[0.0] * len(vectors[0])
    )
    namespace_share(owner=bob, name="work", user=alice, level="use")
    namespace_share(owner=charlie, name="default", user=alice, level="view")
    connection.cursor().execute("ANALYZE memory_memory")
    queries = vectors[390:]

    plans = set()
    for threshold in (10_000, 40):  # every slice exact; alice's larger ones through the partition's index
        settings.MEMORY_EXACT_SEARCH_MAX_ROWS = threshold
        for n, (filters, include_archived, for_agent, shared) in enumerate(
            (filters, include_archived, for_agent, shared)
            for filters in (None, {"kind": "summary"}, {"metadata": {"topic": "garden"}, "namespace": "work"})
            for include_archived in (False, True)
            for for_agent in (None, 7)
            for shared in (None, "view", "use")
        ):
            search = {
                "user": alice,
                "vector": queries[n % len(queries)],
                "filters": filters,
                "include_archived": include_archived,
                "for_agent": for_agent,
                "shared": shared,
            }
            for _ in range(2):  # again: now knowing whether the slice is large
                plans.add(assert_same_search(**search)[1])
    assert plans == {"exact", "hnsw"}


@pytest.mark.django_db
def test_the_memories_of_hits_are_what_the_api_shows_without_their_embedding(alice, settings):
    settings.MEMORY_EXACT_SEARCH_MAX_ROWS = 20
    vectors = clustered_vectors(61, seed=4)
    bulk_memories(alice, vectors[:60], metadata={"topic": "pets", "n": [1, 2]}, kind="summary", agent_id=3)
    Memory.objects.filter(owner=alice).update(expires_at=timezone.now() + timedelta(days=1))

    for plan in ("hnsw", "exact"):
        hits, found_plan = memory_search(user=alice, vector=vectors[60], k=5, include_archived=plan == "exact")
        assert found_plan == plan and len(hits) == 5
        for hit in hits:
            assert hit.memory.get_deferred_fields() == {"embedding"} and hit.memory.distance == hit.distance
            assert MemorySerializer(hit.memory).data == MemorySerializer(Memory.objects.get(pk=hit.memory.pk)).data


@pytest.mark.django_db
def test_a_search_is_one_round_trip_its_share_lookup_count_and_settings_included(alice, bob, settings):
    settings.MEMORY_EXACT_SEARCH_MAX_ROWS = 30
    vectors = clustered_vectors(101, seed=9)
    bulk_memories(alice, vectors[:20])
    query = vectors[100]

    # A small slice: ranked exactly in the statement that counts it, after the share lookup.
    with CaptureQueriesContext(connection) as queries:
        hits, plan = memory_search(user=alice, vector=query)
    assert (len(queries), plan, len(hits)) == (1, "exact", 10)
    assert count_round_trips(memory_search, user=alice, vector=query) == 1

    # A slice grown past the threshold: found so once (a second round trip), then counted in the first.
    bulk_memories(alice, vectors[20:100])
    assert count_round_trips(memory_search, user=alice, vector=query) == 2
    with CaptureQueriesContext(connection) as queries:
        hits, plan = memory_search(user=alice, vector=query)
    assert (len(queries), plan, len(hits)) == (1, "hnsw", 10)

    # Namespaces shared with her: one more, for all their owners.
    bulk_memories(bob, vectors[:5], namespace="team")
    namespace_share(owner=bob, name="team", user=alice, level="view")
    assert count_round_trips(memory_search, user=alice, vector=query) == 2
    assert count_round_trips(memory_search, user=alice, vector=query, shared=None) == 1


@pytest.mark.django_db
def test_a_slice_that_shrank_or_grew_since_its_last_search_gets_the_plan_it_has_now(alice, settings):
    settings.MEMORY_EXACT_SEARCH_MAX_ROWS = 25
    vectors = clustered_vectors(81, seed=12)
    bulk_memories(alice, vectors[:40])
    query = vectors[80]

    assert assert_same_search(user=alice, vector=query)[1] == "hnsw"
    Memory.objects.filter(pk__in=Memory.objects.filter(owner=alice).values("pk")[:20]).update(archived=True)
    assert assert_same_search(user=alice, vector=query)[1] == "exact"
    bulk_memories(alice, vectors[40:80])
    assert assert_same_search(user=alice, vector=query)[1] == "hnsw"
    settings.MEMORY_EXACT_SEARCH_MAX_ROWS = 100
    assert assert_same_search(user=alice, vector=query)[1] == "exact"


@pytest.mark.django_db
def test_the_share_lookup_in_the_search_matches_shared_scopes(alice, bob, charlie):
    for owner, name in ((alice, "a"), (alice, "b"), (charlie, "c")):
        bulk_memories(owner, clustered_vectors(1, seed=3), namespace=name)
    namespace_share(owner=alice, name="a", user=bob, level="view")
    namespace_share(owner=alice, name="b", user=bob, level="use")
    namespace_share(owner=charlie, name="c", user=bob, level="use")
    namespace_share(owner=charlie, name="c", user=alice, level="view")

    def lookup(user, level):
        [rows] = memory_search_module._one_round_trip([memory_search_module._shares_statement(user=user, level=level)])
        scopes = {}
        for owner_id, name, *_ in rows:
            scopes.setdefault(owner_id, []).append(name)
        return scopes

    def same_everywhere():
        for user in (alice, bob, charlie):
            for level in ("view", "use"):
                assert lookup(user, level) == shared_scopes(user=user, level=level), (user, level)

    same_everywhere()
    assert lookup(bob, "view") == {alice.pk: ["a", "b"], charlie.pk: ["c"]}
    object_unshare(obj=MemoryNamespace.objects.get(owner=alice, name="b"), owner=alice, user=bob)
    same_everywhere()
    assert lookup(bob, "use") == {charlie.pk: ["c"]}


@pytest.mark.django_db
def test_the_large_slice_is_read_through_its_partitions_index_and_a_small_one_by_no_index_order(alice, settings):
    settings.MEMORY_EXACT_SEARCH_MAX_ROWS = 50
    bulk_memories(alice, clustered_vectors(200, seed=2))
    connection.cursor().execute("ANALYZE memory_memory")
    query = clustered_vectors(1, seed=2)[0]
    search = memory_search_module._Search(query, None, k=10, include_archived=False, for_agent=None)

    def explained(step, n):
        statements = list(step.statements)
        statements[n] = ("EXPLAIN " + statements[n][0], statements[n][1])
        return "\n".join(row[0] for row in memory_search_module._one_round_trip(statements)[n])

    index = f"memory_hnsw_p{partition_of(alice.pk)}"
    assert f"Index Scan using {index}" in explained(search.counted(alice.pk), 1)
    assert f"Index Scan using {index}" in explained(search.approximate(alice.pk), 1)
    settings.MEMORY_EXACT_SEARCH_MAX_ROWS = 500
    assert "memory_hnsw" not in explained(search.counted(alice.pk), 1)
    assert "memory_hnsw" not in explained(search._exact_capped(alice.pk), 0)
    archived_too = memory_search_module._Search(query, None, k=10, include_archived=True, for_agent=None)
    assert "memory_hnsw" not in explained(archived_too._exact_all(alice.pk), 0)


@pytest.mark.django_db(transaction=True)
def test_a_failed_round_trip_leaves_the_settings_and_the_callers_transaction_as_they_were(alice):
    statements = [("SELECT set_config('enable_seqscan', 'off', true)", []), ("SELECT 1 / 0", [])]

    with pytest.raises(DataError):
        memory_search_module._one_round_trip(statements)
    assert current("enable_seqscan") == "on"

    with transaction.atomic():
        with pytest.raises(DataError):
            memory_search_module._one_round_trip(statements)
        assert current("enable_seqscan") == "on"
        bulk_memories(alice, clustered_vectors(1))  # the transaction goes on
    assert Memory.objects.filter(owner=alice).count() == 1
