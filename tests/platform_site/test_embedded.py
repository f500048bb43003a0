import os
import subprocess
import sys
import textwrap

from django.conf import settings

# Runs in a fresh process with its own var/ directory, so the servers the suite uses are not touched.
SCRIPT = textwrap.dedent(
    """
    import sys, psycopg, redis
    from platform_site import embedded

    db = embedded.ensure_postgres()
    sock = embedded.ensure_redis()
    pg = psycopg.connect(host=db["HOST"], user=db["USER"], dbname=db["NAME"], autocommit=True)
    r = redis.Redis(unix_socket_path=str(sock))
    if sys.argv[1] == "write":
        pg.execute("CREATE TABLE kept (note text)")
        pg.execute("INSERT INTO kept VALUES ('survives')")
        r.set("kept", "survives too")
    else:
        print(pg.execute("SELECT note FROM kept").fetchone()[0])
        print(r.get("kept").decode())
    pg.close()
    print(sorted(embedded.started_here()))
    embedded.stop_started()
    print(embedded.status())
    """
)


def run_in(var_dir, step):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env["SWITCHBOARD_VAR_DIR"] = str(var_dir)
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, step],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.splitlines()


def test_embedded_postgres_and_redis_start_stop_and_keep_their_data_across_restarts(tmp_path):
    first = run_in(tmp_path, "write")
    assert first[0] == "['postgres', 'redis']"
    assert first[1] == "{'postgres': 'stopped', 'redis': 'stopped'}"

    second = run_in(tmp_path, "read")

    assert second[:2] == ["survives", "survives too"]
    assert (tmp_path / "postgres" / "PG_VERSION").exists()
