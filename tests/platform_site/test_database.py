import os
import subprocess
import sys

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django_celery_beat.models import PeriodicTask

# The machine's own PostgreSQL (Debian's, without pgvector), when one runs there.
SERVER_WITHOUT_PGVECTOR = os.environ.get("PGVECTORLESS_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.mark.django_db
def test_the_pgvector_extension_is_installed_and_computes_distances():
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        (version,) = cursor.fetchone()
        cursor.execute("SELECT '[1,2,3]'::vector <-> '[1,2,5]'::vector")
        (distance,) = cursor.fetchone()

    assert tuple(int(part) for part in version.split(".")) >= (0, 8, 4)
    assert distance == 2.0


def test_the_heartbeat_is_registered_in_the_database_schedule(migrated_schedule):
    heartbeat = PeriodicTask.objects.get(name="platform heartbeat")

    assert heartbeat.task == "platform.heartbeat"
    assert heartbeat.enabled
    assert heartbeat.interval is not None


def test_a_server_without_pgvector_gets_one_clear_error_naming_what_to_install():
    try:
        with psycopg.connect(SERVER_WITHOUT_PGVECTOR, connect_timeout=2) as conn:
            has_pgvector = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    except psycopg.OperationalError:
        pytest.skip(f"no PostgreSQL at {SERVER_WITHOUT_PGVECTOR} to try against")
    if has_pgvector:
        pytest.skip(f"the PostgreSQL at {SERVER_WITHOUT_PGVECTOR} has pgvector")
    env = {**os.environ, "DATABASE_URL": SERVER_WITHOUT_PGVECTOR}

    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--plan"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "does not have the pgvector extension" in result.stderr
    assert "Install pgvector 0.8.4 or newer" in result.stderr
