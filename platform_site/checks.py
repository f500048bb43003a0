"""System checks that need the database: `migrate` runs them first, so a server without pgvector gets one
clear message instead of a stack trace."""

from django.core.checks import Error, Tags, Warning, register
from django.db import connections

MINIMUM_PGVECTOR = (0, 8, 4)  # earlier 0.8 releases could corrupt HNSW indexes during vacuum


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


@register(Tags.database)
def pgvector_available(app_configs, databases=None, **kwargs):
    problems = []
    for alias in databases or []:
        with connections[alias].cursor() as cursor:
            cursor.execute(
                "SELECT a.default_version, e.extversion FROM pg_available_extensions a "
                "LEFT JOIN pg_extension e ON e.extname = a.name WHERE a.name = 'vector'"
            )
            row = cursor.fetchone()
        if row is None:
            problems.append(
                Error(
                    f"The PostgreSQL server of database '{alias}' does not have the pgvector extension.",
                    hint="Install pgvector 0.8.4 or newer on that server (for example the postgresql-16-pgvector "
                    "package or the pgvector/pgvector Docker image), or unset DATABASE_URL to use the "
                    "embedded PostgreSQL, which includes it.",
                    id="platform.E001",
                )
            )
            continue
        version = row[1] or row[0]
        if _version(version) < MINIMUM_PGVECTOR:
            problems.append(
                Warning(
                    f"pgvector {version} on database '{alias}' is older than 0.8.4.",
                    hint="Upgrade pgvector: earlier 0.8 releases could corrupt HNSW indexes during vacuum.",
                    id="platform.W001",
                )
            )
    return problems
