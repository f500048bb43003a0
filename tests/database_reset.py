"""The test database emptied after a transactional test in a fraction of the time Django's flush takes.

Django's flush truncates every table, then sends post_migrate, whose receivers rebuild the content types,
permissions, role groups and the catalog's built-ins: some 640 queries and 0.5-1 s after each of the
suite's ~400 transactional tests. What they rebuild is the same every time, so it is recorded once, after
a real flush, and copied back when a test changed it. Only the tables a test wrote are emptied: a small
one (one page, plain indexes) by DELETE, the others by TRUNCATE, so that no table is left bigger than a
flush leaves it (query plans, and the index sizes memory's upkeep reads, depend on that). Each test starts
from what a flush leaves, row ids of the rebuilt rows aside (no test relies on them).
"""

from contextlib import contextmanager

from django.db import connections, transaction
from django.test import TransactionTestCase

PAGE = 8192  # PostgreSQL's block size

# {database alias: {table: (its rows as COPY text, their fingerprint)}}, recorded after the first real flush
_after_flush: dict[str, dict[str, tuple[bytes, str]]] = {}


def _tables(connection) -> list[str]:
    """The tables a flush empties (django.core.management.sql.sql_flush's list)."""
    return sorted(connection.introspection.django_table_names(only_existing=True, include_views=False))


def _written(cursor, connection) -> dict[str, tuple[bool, int]]:
    """{table: (holds rows, size on disk)} for the tables written since they were last truncated."""
    quote = connection.ops.quote_name
    tables = _tables(connection)
    cursor.execute(
        " UNION ALL ".join(
            f"SELECT %s, EXISTS (SELECT 1 FROM {quote(t)}), pg_relation_size(%s::regclass)" for t in tables
        ),
        [value for table in tables for value in (table, quote(table))],
    )
    return {table: (filled, size) for table, filled, size in cursor.fetchall() if size > 0}


def _special_indexes(cursor) -> set[str]:
    """Tables with an index that is not a B-tree (memory's HNSW): a DELETE would leave it grown."""
    cursor.execute(
        "SELECT DISTINCT t.relname FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
        "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam WHERE a.amname <> 'btree'"
    )
    return {row[0] for row in cursor.fetchall()}


def _fingerprints(cursor, connection, tables) -> dict[str, str]:
    quote = connection.ops.quote_name
    cursor.execute(
        " UNION ALL ".join(
            f"SELECT %s, md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), '')) FROM {quote(t)} r" for t in tables
        ),
        list(tables),
    )
    return dict(cursor.fetchall())


def _record(alias: str) -> None:
    connection = connections[alias]
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        filled = [table for table, (has_rows, _) in _written(cursor, connection).items() if has_rows]
        fingerprints = _fingerprints(cursor, connection, filled) if filled else {}
        rows = {}
        for table in filled:
            with cursor.copy(f"COPY {quote(table)} TO STDOUT") as copy:
                rows[table] = (b"".join(bytes(block) for block in copy), fingerprints[table])
    _after_flush[alias] = rows


def _restore(alias: str) -> None:
    """Empty what the test wrote and copy back the rebuilt rows it changed, in one transaction (foreign keys
    are checked at its end)."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    rebuilt = _after_flush[alias]
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        written = _written(cursor, connection)
        now = _fingerprints(cursor, connection, rebuilt) if rebuilt else {}
        unchanged = {table for table, (_, fingerprint) in rebuilt.items() if now[table] == fingerprint}
        special = _special_indexes(cursor)
        truncate, delete = [], []
        for table, (has_rows, size) in written.items():
            if table in unchanged:
                continue
            if size > PAGE or table in special:
                truncate.append(table)
            elif has_rows:
                delete.append(table)
        if truncate:  # first (pending trigger events of a DELETE would forbid it); CASCADE: referencing tables too
            cursor.execute(f"TRUNCATE {', '.join(quote(table) for table in truncate)} CASCADE")
            unchanged &= {table for table, (has_rows, _) in _written(cursor, connection).items() if has_rows}
        for table in delete:
            cursor.execute(f"DELETE FROM {quote(table)}")
        for table, (data, _) in rebuilt.items():
            if table not in unchanged:
                with cursor.copy(f"COPY {quote(table)} FROM STDIN") as copy:
                    copy.write(data)
    _announce_rebuilt_rows()


def _announce_rebuilt_rows() -> None:
    """What post_migrate's own writes would have done beyond the database: the content types are read
    again, and creating the catalog's built-ins tells every process to drop the agents and catalog names
    it keeps (agents/invalidation.py)."""
    from django.contrib.contenttypes.models import ContentType

    from agents.metrics import CATALOG
    from core import local_cache

    ContentType.objects.clear_cache()
    local_cache.invalidate("agent")
    local_cache.invalidate(CATALOG)


_django_fixture_teardown = TransactionTestCase._fixture_teardown


def _fixture_teardown(self):
    if self.available_apps is not None or self.serialized_rollback:
        return _django_fixture_teardown(self)  # flushes of another kind: Django's own
    aliases = self._databases_names(include_mirrors=False)
    if all(alias in _after_flush for alias in aliases):
        for alias in aliases:
            _restore(alias)
        return
    _django_fixture_teardown(self)  # the first time: a real flush, whose result is recorded
    for alias in aliases:
        _record(alias)


@contextmanager
def quick_flushes():
    """Transactional tests end with the quick reset while this is open."""
    TransactionTestCase._fixture_teardown = _fixture_teardown
    try:
        yield
    finally:
        TransactionTestCase._fixture_teardown = _django_fixture_teardown
