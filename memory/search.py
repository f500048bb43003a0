"""The filtered vector search over memories: the k nearest the reader may read that pass the filters.

The search narrows to the owner's partition and the filters in SQL first. A small slice (at most
MEMORY_EXACT_SEARCH_MAX_ROWS rows) is scanned exactly; a larger one goes through the partition's partial
HNSW index (over live rows) with pgvector's iterative index scans (`relaxed_order`), so a selective filter
still returns k rows. The planner settings are set for the query and put back after it (statements
are not prepared, see settings, so they apply).

search_plan and search_settings say this with the ORM, one statement at a time; memory_search, on the hot
path of agents with memory on, sends the same statements written out, several in one query string: one
round trip for the share lookup, the plan's choice, its settings and the search (see _Search). Each
memory_search is timed in the metrics by the plan that served it (core/metrics.py).
"""

import functools
import json
import math
import time
from array import array
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import DatabaseError, connection, connections, transaction
from django.db.models import Q, QuerySet
from django.db.models.sql import Query
from django.utils import timezone
from guardian.models import UserObjectPermission
from pgvector.django import CosineDistance

from core import metrics
from memory.embeddings import embedder, unit_vector
from memory.filters import compile_filters
from memory.models import Memory, MemoryNamespace, partition_of

EXACT_SETTINGS = {"enable_indexscan": "off"}


def hnsw_settings() -> dict[str, str]:
    """The slice is large: walk the partition's graph; with sorts and sequential scans off, only the HNSW
    index can give rows in distance order."""
    return {
        "enable_seqscan": "off",
        "enable_sort": "off",
        "hnsw.iterative_scan": "relaxed_order",
        "hnsw.ef_search": str(settings.MEMORY_HNSW_EF_SEARCH),
    }


@contextmanager
def search_settings(values: dict[str, str]):
    """Planner settings for the queries inside, in a transaction of their own (or a savepoint). At the
    outermost level one statement sets them and the commit drops them; nested, they are put back after,
    as SET LOCAL alone would outlive the savepoint (RELEASE keeps it)."""
    outermost = not connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        if not outermost:
            cursor.execute("SELECT " + ", ".join(["current_setting(%s)"] * len(values)), list(values))
            previous = dict(zip(values, cursor.fetchone(), strict=True))
        _set_local(cursor, values)
        yield
        if not outermost:  # on an error the savepoint's rollback undoes them
            _set_local(cursor, previous)


def _set_local(cursor, values: dict[str, str]) -> None:
    cursor.execute(
        "SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(values)),
        [part for pair in values.items() for part in pair],
    )


@dataclass
class Hit:
    memory: Memory
    distance: float


@dataclass
class SearchPlan:
    """One owner's slice of a search: the ranked query and the planner settings it must run under."""

    ranked: QuerySet[Memory]
    settings: dict[str, str]
    plan: str  # exact | hnsw


def search_plan(
    *,
    owner_id: int,
    vector,
    filters=None,
    k: int = 10,
    include_archived: bool = False,
    for_agent: int | None = None,
    namespaces: list[str] | None = None,
) -> SearchPlan:
    """The query for the k nearest memories of one owner that pass the filters: in the owner's partition,
    exact when the filtered slice is small (counting stops past the threshold), else through the
    partition's HNSW index. `namespaces`: only these (what is shared of someone else's memory)."""
    candidates = Memory.objects.filter(owner_id=owner_id, partition=partition_of(owner_id))
    candidates = candidates.filter(compile_filters(filters))
    if namespaces is not None:
        candidates = candidates.filter(namespace__in=namespaces)
    if for_agent is not None:
        candidates = candidates.filter(Q(agent_id__isnull=True) | Q(agent_id=for_agent))
    candidates = candidates.unexpired() if include_archived else candidates.live()
    threshold = settings.MEMORY_EXACT_SEARCH_MAX_ROWS
    # Unordered, so counting stops at the threshold (the model's default order would sort the whole slice).
    exact = include_archived or candidates.order_by().values("pk")[: threshold + 1].count() <= threshold
    ranked = candidates.defer("embedding").annotate(distance=CosineDistance("embedding", vector))
    return SearchPlan(
        ranked.order_by("distance")[:k], EXACT_SETTINGS if exact else hnsw_settings(), "exact" if exact else "hnsw"
    )


def _timed(search):
    @functools.wraps(search)
    def timed(**arguments):
        started = time.perf_counter()
        hits, plan = search(**arguments)
        metrics.MEMORY_SEARCH.of(metrics.bounded(plan, metrics.SEARCH_PLANS)).observe(time.perf_counter() - started)
        return hits, plan

    return timed


@_timed
def memory_search(
    *,
    user,
    query: str = "",
    vector=None,
    filters=None,
    k: int = 10,
    include_archived: bool = False,
    for_agent: int | None = None,
    shared: str | None = "view",
) -> tuple[list[Hit], str]:
    """The k nearest memories the user may read that pass the filters, and which plan served them (exact /
    hnsw; the user's own slice decides). Namespaces shared with the user at `shared` level are searched too,
    each in its owner's partition, up to MEMORY_SEARCH_SHARED_OWNERS owners; `shared=None`: own only.

    `for_agent`: only memories of that agent or of no agent (what an agent may remember). A query that
    embeds to nothing (no words) finds nothing: plan "none".

    What search_plan and search_settings do, in one round trip: the share lookup and the user's own slice
    (see _Search for how a slice is searched without a count of its own when it is small). A second one
    only for namespaces shared with the user, or for a slice that turned out larger than expected.
    """
    vector = unit_vector(embedder().embed([query])[0] if vector is None else vector)
    if vector is None:
        return [], "none"
    search = _Search(vector, filters, k=k, include_archived=include_archived, for_agent=for_agent)
    lookup = [_shares_statement(user=user, level=shared)] if shared else []
    own = search.first(user.pk)
    results = _one_round_trip([*lookup, *own.statements])
    hits, plan = own.read(results[len(lookup) :])
    scopes = defaultdict(list)
    for owner_id, name, *_ in results[0] if shared else []:
        scopes[owner_id].append(name)
    scopes = list(scopes.items())[: settings.MEMORY_SEARCH_SHARED_OWNERS]
    steps = [] if plan else [search.approximate(user.pk)]  # the slice was larger than the threshold
    if scopes:  # counted each, the settings that one plan leaves alone kept as they are outside the search
        outside = dict(zip(_PLANNER_SETTINGS, results[0][0][2:], strict=True))
        steps += [search.counted(owner_id, names, outside=outside) for owner_id, names in scopes]
    if steps:
        results = _one_round_trip([statement for step in steps for statement in step.statements])
        plans = []
        for step in steps:
            found, step_plan = step.read(results[: len(step.statements)])
            results = results[len(step.statements) :]
            hits += found
            plans.append(step_plan)
        plan = plan or plans[0]
    hits = sorted(hits, key=lambda hit: hit.distance)[:k]  # relaxed order is nearly sorted: sort what was found
    return hits, plan


# The search's SQL is written out rather than compiled by the ORM on every call (compiling the querysets of
# search_plan and shared_scopes cost more than the search itself); only the filters go through the ORM. The
# statements are search_plan's: same conditions, same order, same columns (all but the embedding).

_TABLE = Memory._meta.db_table
_PLANNER_SETTINGS = ("enable_indexscan", "enable_seqscan", "enable_sort")  # what a plan may leave alone
# Slices found larger than MEMORY_EXACT_SEARCH_MAX_ROWS at their last search in this process (True) or not:
# only which statements to try first, never what a search finds (see _Search).
_LARGE_SLICES: dict[tuple, bool] = {}
_LARGE_SLICES_KEPT = 10_000


def _column(name: str) -> str:
    return f'"{_TABLE}"."{name}"'


@cache
def _selected() -> tuple[list[str], str]:
    """The attribute names a hit's memory is built with, all but the embedding, and their columns in SQL."""
    fields = [field for field in Memory._meta.concrete_fields if field.attname != "embedding"]
    return [field.attname for field in fields], ", ".join(f'"{field.column}"' for field in fields)


@cache
def _converters(alias: str) -> list[tuple[int, list, object]]:
    """The ORM's conversions of the selected columns' values (the metadata's JSON), by column position."""
    database = connections[alias]
    fields = [field for field in Memory._meta.concrete_fields if field.attname != "embedding"]
    converters = []
    for n, column in enumerate(field.get_col(_TABLE) for field in fields):
        functions = [*database.ops.get_db_converters(column), *column.get_db_converters(database)]
        if functions:
            converters.append((n, functions, column))
    return converters


def _hits(rows) -> list[Hit]:
    """Hits from rows of the selected columns and the distance (then any other columns, ignored)."""
    names, _ = _selected()
    converters = _converters(connection.alias)
    hits = []
    for row in rows:
        values, distance = list(row[: len(names)]), row[len(names)]
        # A memory stored before empty embeddings were refused has no direction: NaN, never a match.
        if not math.isfinite(distance):
            continue
        for n, functions, column in converters:
            for function in functions:
                values[n] = function(values[n], column, connection)
        memory = Memory.from_db(connection.alias, names, values)
        memory.distance = distance
        hits.append(Hit(memory, distance))
    return hits


def _shares_statement(*, user, level: str) -> tuple[str, list]:
    """shared_scopes(user=user, level=level) as one statement, planned cheaply (no join): the user's object
    permissions at `level` on memory namespaces, as in accounts.selectors.shared_pks (shares are guardian
    permissions granted to users), on other owners' namespaces: (owner id, name) rows in owner and name
    order, each also with the planner settings as they are outside the search."""
    content_type = ContentType.objects.get_for_model(MemoryNamespace).pk
    settings_now = ", ".join(f"current_setting('{name}')" for name in _PLANNER_SETTINGS)
    sql = (
        f'SELECT "owner_id", "name", {settings_now} FROM "{MemoryNamespace._meta.db_table}" '
        f'WHERE "owner_id" <> %s AND "id" = ANY(ARRAY('
        f'SELECT "object_pk"::bigint FROM "{UserObjectPermission._meta.db_table}" '
        f'WHERE "user_id" = %s AND "content_type_id" = %s AND "permission_id" = ('
        f'SELECT "id" FROM "{Permission._meta.db_table}" WHERE "content_type_id" = %s AND "codename" = %s))) '
        f'ORDER BY "owner_id", "name"'
    )
    codename = f"{level}_{MemoryNamespace._meta.model_name}"
    return sql, [user.pk, user.pk, content_type, content_type, codename]


@dataclass
class _Step:
    """Statements searching one owner's slice, and what reads their results into (hits, plan); plan None:
    the slice was larger than an exact search's threshold, nothing found yet."""

    statements: list[tuple[str, list]]
    read: Callable[[list[list[tuple]]], tuple[list[Hit], str | None]]


class _Search:
    """The ways to search one owner's slice (search_plan's conditions: _where):

    - exact, capped: one statement ranks the slice's rows exactly, reading at most the threshold and one
      (unordered, so no index can give rows in distance order) and counting them. Past the threshold its
      answer is dropped and the slice is searched `approximate`ly. A slice not known to be large starts here.
    - counted: the bounded count (search_plan's), which picks the plan and sets its planner settings with
      set_config(..., true), then the ranked query planned under them. A slice known to be large, from its
      last search in this process, starts here; so do shared owners'.
    - approximate: the HNSW plan's settings, then the ranked query (through the partition's partial index).
    - with archived memories (never counted, always exact): ranked by the distance function, which no index
      serves.

    Planner settings end with the round trip (_one_round_trip)."""

    def __init__(self, vector, filters, *, k: int, include_archived: bool, for_agent: int | None):
        self.vector = _vector_text(vector)
        self.k, self.include_archived, self.for_agent = k, include_archived, for_agent
        self.filters = _filters_sql(filters)
        self.filters_key = json.dumps(filters, sort_keys=True, default=str) if self.filters else None
        self.now = timezone.now()

    def first(self, owner_id: int) -> _Step:
        if self.include_archived:
            return self._exact_all(owner_id)
        if _LARGE_SLICES.get(self._key(owner_id, None)):
            return self.counted(owner_id)
        return self._exact_capped(owner_id)

    def _key(self, owner_id: int, namespaces) -> tuple:
        return owner_id, tuple(namespaces) if namespaces is not None else None, self.for_agent, self.filters_key

    def _remember(self, owner_id: int, namespaces, large: bool) -> None:
        if len(_LARGE_SLICES) >= _LARGE_SLICES_KEPT:
            _LARGE_SLICES.clear()
        _LARGE_SLICES[self._key(owner_id, namespaces)] = large

    def _where(self, owner_id: int, namespaces) -> tuple[str, list]:
        """search_plan's conditions: the owner's partition, the filters, the namespaces, the agent, live."""
        conditions = [f"{_column('owner_id')} = %s", f"{_column('partition')} = %s"]
        params = [owner_id, partition_of(owner_id)]
        if self.filters:
            conditions.append(self.filters[0])
            params += self.filters[1]
        if namespaces is not None:
            conditions.append(f"{_column('namespace')} IN ({', '.join(['%s'] * len(namespaces))})")
            params += namespaces
        if self.for_agent is not None:
            conditions.append(f"({_column('agent_id')} IS NULL OR {_column('agent_id')} = %s)")
            params.append(self.for_agent)
        conditions.append(f"({_column('expires_at')} IS NULL OR {_column('expires_at')} > %s)")
        params.append(self.now)
        if not self.include_archived:
            conditions.append(f"NOT {_column('archived')}")
        return " AND ".join(conditions), params

    def _ranked(self, owner_id: int, namespaces, distance: str = "{embedding} <=> %s") -> tuple[str, list]:
        where, params = self._where(owner_id, namespaces)
        distance = distance.format(embedding=_column("embedding"))
        sql = (
            f'SELECT {_selected()[1]}, ({distance}) AS "distance" FROM "{_TABLE}" '
            f'WHERE {where} ORDER BY "distance" ASC LIMIT %s'
        )
        return sql, [self.vector, *params, self.k]

    def _exact_capped(self, owner_id: int) -> _Step:
        where, params = self._where(owner_id, None)
        threshold = settings.MEMORY_EXACT_SEARCH_MAX_ROWS
        columns = _selected()[1]
        sql = (
            f'SELECT {columns}, "distance", count(*) OVER () AS "slice" FROM ('
            f'SELECT {columns}, ({_column("embedding")} <=> %s) AS "distance" FROM "{_TABLE}" '
            f'WHERE {where} LIMIT %s) AS "capped" ORDER BY "distance" ASC LIMIT %s'
        )

        def read(results):
            [rows] = results
            large = bool(rows) and rows[0][-1] > threshold
            self._remember(owner_id, None, large)
            return ([], None) if large else (_hits(rows), "exact")

        return _Step([(sql, [self.vector, *params, threshold + 1, self.k])], read)

    def _exact_all(self, owner_id: int) -> _Step:
        ranked = self._ranked(owner_id, None, distance="cosine_distance({embedding}, %s)")
        return _Step([ranked], lambda results: (_hits(results[0]), "exact"))

    def approximate(self, owner_id: int) -> _Step:
        values = hnsw_settings()
        applied = ", ".join(["set_config(%s, %s, true)"] * len(values))
        sql, params = f"SELECT {applied}", [part for pair in values.items() for part in pair]
        return _Step([(sql, params), self._ranked(owner_id, None)], lambda results: (_hits(results[1]), "hnsw"))

    def counted(self, owner_id: int, namespaces=None, *, outside=None) -> _Step:
        """`outside`: the planner settings as they are outside the search, for a plan that leaves one alone
        (else read where the statement runs: then no statement before it in the round trip may set them)."""
        where, params = self._where(owner_id, namespaces)
        applied, applied_params = _plan_settings(outside)
        threshold = settings.MEMORY_EXACT_SEARCH_MAX_ROWS
        # Unordered, so counting stops past the threshold (search_plan's count).
        decide = (
            f"SELECT exact, {applied} FROM (SELECT count(*) <= %s AS exact FROM "
            f'(SELECT 1 FROM "{_TABLE}" WHERE {where} LIMIT %s) AS slice) AS plan',
            [*applied_params, threshold, *params, threshold + 1],
        )

        def read(results):
            [[exact, *_]], rows = results
            self._remember(owner_id, namespaces, not exact)
            return _hits(rows), "exact" if exact else "hnsw"

        return _Step([decide, self._ranked(owner_id, namespaces)], read)


def _plan_settings(outside) -> tuple[str, list]:
    """set_config(..., true) of each setting the plans change, to EXACT_SETTINGS' value when the column
    `exact` is true, else to hnsw_settings()'s; a setting one plan leaves alone keeps its value outside."""
    exact, hnsw = EXACT_SETTINGS, hnsw_settings()
    sql, params = [], []
    for name in dict.fromkeys([*exact, *hnsw]):
        if name not in _PLANNER_SETTINGS:
            # hnsw.*: only HNSW index scans read them and the exact plan makes none (index scans are off), so
            # both plans may have them (and pgvector's may not exist yet to be read back).
            sql.append(f"set_config('{name}', %s, true)")
            params.append(hnsw[name])
            continue
        values = []
        for chosen in (exact, hnsw):
            if name in chosen:
                values.append("%s")
                params.append(chosen[name])
            elif outside is None:
                values.append(f"current_setting('{name}')")
            else:
                values.append("%s")
                params.append(outside[name])
        sql.append(f"set_config('{name}', CASE WHEN exact THEN {values[0]} ELSE {values[1]} END, true)")
    return ", ".join(sql), params


@cache
def _vector_format(dimensions: int) -> str:
    return "[" + ",".join(["%.9g"] * dimensions) + "]"


def _vector_text(vector) -> str:
    """The vector as pgvector reads it: each value rounded to float32 (what the column holds) and written
    with the 9 digits that give that float back exactly, at half the cost of writing the double in full."""
    values = array("f", vector)
    return _vector_format(len(values)) % tuple(values)


def _filters_sql(filters) -> tuple[str, list] | None:
    """The filter language's conditions (memory.filters) as SQL over the memory table, or None."""
    condition = compile_filters(filters)
    if not condition:
        return None
    query = Query(Memory)
    return query.get_compiler(connection=connection).compile(query.build_where(condition))


_SAVEPOINT = "memory_search"


def _one_round_trip(statements: list[tuple[str, list]]) -> list[list[tuple]]:
    """Run the statements, each returning rows, as one query string (client-side binding sends it with the
    simple protocol: see the settings) and return the rows of each. Planner settings set in it end with it:
    outside a transaction the statements make one implicit transaction, whose end drops them; inside one, a
    savepoint rolled back after them (they only read) puts them back, and on an error leaves the caller's
    transaction usable."""
    nested = not connection.get_autocommit()
    sql, params = ";\n".join(sql for sql, _ in statements), [p for _, params in statements for p in params]
    if nested:
        sql = f"SAVEPOINT {_SAVEPOINT};\n{sql};\nROLLBACK TO SAVEPOINT {_SAVEPOINT};\nRELEASE SAVEPOINT {_SAVEPOINT}"
    with connection.cursor() as cursor:
        try:
            cursor.execute(sql, params)
        except DatabaseError:
            if nested:
                with suppress(DatabaseError):  # the savepoint may not exist: the transaction was broken before
                    cursor.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}; RELEASE SAVEPOINT {_SAVEPOINT}")
            raise
        if nested:
            cursor.nextset()  # past the savepoint's
        results = [cursor.fetchall()]
        for _ in statements[1:]:
            cursor.nextset()
            results.append(cursor.fetchall())
    return results
