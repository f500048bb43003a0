"""Real processes for the tests: Celery workers and beat against the test database and broker."""

import os
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
    }


test_process_env.__test__ = False


class PlatformProcess:
    """A real process of the platform (Celery worker or beat, gunicorn) with its output in a log file."""

    def __init__(self, command: list[str], log_path: Path):
        self.log_path = log_path
        with open(log_path, "w") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                command, cwd=BASE_DIR, env=test_process_env(), stdout=log, stderr=subprocess.STDOUT
            )

    def log_text(self) -> str:
        return self.log_path.read_text()

    def wait_for_log(self, needle: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.log_text():
            if self.process.poll() is not None:
                raise RuntimeError(f"process exited with {self.process.returncode}:\n{self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{needle!r} not in the log:\n{self.log_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class CeleryProcess(PlatformProcess):
    """A real `celery worker` or `celery beat` process against the test database and broker."""

    def __init__(self, role: str, log_path: Path, *extra: str):
        super().__init__(
            [sys.executable, "-m", "celery", "-A", "platform_site", role, "--loglevel", "INFO", *extra], log_path
        )


class GunicornProcess(PlatformProcess):
    """The production web server with several worker processes, on a free local port."""

    def __init__(self, log_path: Path, workers: int = 2):
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        super().__init__(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "platform_site.wsgi",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
                "--config",
                "gunicorn.conf.py",
            ],
            log_path,
        )
        self.url = f"http://127.0.0.1:{self.port}"
