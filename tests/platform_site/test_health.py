"""/healthz and /readyz: each dependency stopped or hung, the heartbeats of the workers per queue and of beat,
and the Status page that says it in words."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.utils import timezone

from platform_site import health
from tasks import heartbeats

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused at once


class HungServer:
    """A TCP listener that accepts every connection and never answers: a dependency that hangs (its process
    stopped, its network black-holed). Closing it ends the connections, so whoever waits on one gets an error."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:  # closed
                return
            self.accepted.append(connection)

    def close(self) -> None:
        if self.listener.fileno() != -1:
            self.listener.shutdown(socket.SHUT_RDWR)
            self.listener.close()
        for connection in self.accepted:
            connection.close()


def wait_until(condition, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def hung_server():
    server = HungServer()
    yield server
    server.close()
    # The checks left waiting on it end with an error: later probes start from a clean slate.
    assert wait_until(lambda: not any(check.running() for check in health.CHECKS.values()))


def hung_redis_cache(port: int) -> dict:
    """A cache on the hung server, with no socket timeout of its own: only the probe's deadline bounds it."""
    return {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": f"redis://127.0.0.1:{port}/0"}}


def test_healthz_answers_without_touching_dependencies(client):
    # No django_db mark: any database access here would raise.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_each_dependency_with_its_latency_and_a_worker_per_queue_and_beat(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["down"] == []
    assert set(body["checks"]) == {"database", "redis", "broker"}
    for check in body["checks"].values():
        assert check["ok"] is True
        assert check["latency_ms"] >= 0
    assert list(body["workers"]) == ["celery", "webhooks", "agents"]
    assert "status" in body["beat"]


@pytest.mark.django_db
def test_readyz_is_503_naming_redis_when_redis_is_unreachable(client):
    caches = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": UNREACHABLE_REDIS,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        }
    }
    with override_settings(CACHES=caches):
        response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["down"] == ["redis"]
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    # The heartbeats live in Redis: nobody can say whether workers and beat run
    assert {worker["status"] for worker in body["workers"].values()} == {"unknown"}
    assert body["beat"]["status"] == "unknown"
    assert body["run_backlog"]["status"] == "unknown"


@pytest.mark.django_db
def test_readyz_is_503_naming_the_broker_when_the_broker_is_unreachable(client):
    with override_settings(CELERY_BROKER_URL=UNREACHABLE_REDIS):
        response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["down"] == ["broker"]


def readyz_in_another_process(env: dict) -> tuple[str, dict]:
    """/readyz answered by a process of its own (this one's database connection is the test database)."""
    script = (
        "import django; django.setup();"
        "from django.test import Client; r = Client().get('/readyz', HTTP_HOST='localhost');"
        "print(r.status_code); print(r.content.decode())"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "platform_site.settings_test", **env}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    status, body = result.stdout.strip().split("\n", 1)
    return status, json.loads(body)


def test_readyz_is_503_naming_the_database_when_postgres_is_unreachable():
    status, body = readyz_in_another_process({"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/switchboard"})

    assert status == "503"
    assert body["down"] == ["database"]


def test_a_hung_database_is_reported_as_timed_out_while_the_other_checks_answer(hung_server):
    # Given PostgreSQL that accepts connections and never answers, and a connect timeout of a minute
    status, body = readyz_in_another_process(
        {
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{hung_server.port}/switchboard",
            "DATABASE_CONNECT_TIMEOUT": "60",
            "READINESS_TIMEOUT_SECONDS": "1",
        }
    )

    # Then the probe answers at its deadline, naming the database and why
    assert status == "503"
    assert body["down"] == ["database"]
    assert body["checks"]["database"]["error"] == "Timeout"
    assert body["checks"]["redis"]["ok"] and body["checks"]["broker"]["ok"]


@pytest.mark.django_db
def test_a_hung_redis_is_reported_as_timed_out_while_the_other_checks_answer(client, hung_server, settings):
    settings.READINESS_TIMEOUT_SECONDS = 1
    with override_settings(CACHES=hung_redis_cache(hung_server.port)):
        response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["redis"]
    assert body["checks"]["redis"]["error"] == "Timeout"
    assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"]
    assert body["beat"] == {"status": "unknown", "error": "Timeout"}
    assert body["run_backlog"] == {"status": "unknown", "error": "Timeout"}


@pytest.mark.django_db
def test_a_hung_broker_is_reported_as_timed_out_while_the_other_checks_answer(client, hung_server, settings):
    settings.READINESS_TIMEOUT_SECONDS = 1
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{hung_server.port}/0"
    settings.BROKER_SOCKET_TIMEOUT = 60
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_timeout": 60, "socket_connect_timeout": 60}

    body = client.get("/readyz").json()

    assert body["down"] == ["broker"]
    assert body["checks"]["broker"]["error"] == "Timeout"
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]


@pytest.mark.django_db
def test_probes_repeated_while_redis_hangs_wait_for_the_one_hung_check_and_it_runs_again_once_redis_answers(
    hung_server, settings
):
    settings.READINESS_TIMEOUT_SECONDS = 0.5
    with override_settings(CACHES=hung_redis_cache(hung_server.port)):
        # When the probe comes five times while Redis hangs
        answers = [health.readiness()]
        connections = len(hung_server.accepted)  # the Redis check's, the heartbeats', the run backlog's...
        answers += [health.readiness() for _ in range(4)]

        # Then each says Redis timed out, and no check was started again: no new connection, no new thread
        assert [answer["checks"]["redis"].get("error") for answer in answers] == ["Timeout"] * 5
        assert connections >= 3 and len(hung_server.accepted) == connections
        checks = [thread.name for thread in threading.enumerate() if thread.name.startswith("readiness-")]
        assert sorted(checks) == sorted(f"readiness-{name}" for name in health.CHECKS)

    # When the hung connection ends, the check runs again and finds Redis answering
    hung_server.close()
    assert wait_until(lambda: health.readiness()["checks"]["redis"]["ok"])


@pytest.mark.django_db
def test_readyz_reports_each_queue_s_worker_as_ok_stale_or_missing_with_the_host_that_took_its_heartbeat(client):
    # Given a worker took the celery queue's heartbeat just now, the webhooks queue's ten intervals ago, and
    # nobody ever took the agents queue's
    long_ago = timezone.now() - timedelta(seconds=10 * settings.HEARTBEAT_INTERVAL_SECONDS)
    heartbeats.record_worker_heartbeat(queue_name="celery", hostname="celery@box")
    heartbeats.record_worker_heartbeat(queue_name="webhooks", hostname="celery@old-box", at=long_ago)
    heartbeats.record_beat_heartbeat()

    body = client.get("/readyz").json()

    workers = body["workers"]
    assert workers["celery"]["status"] == "ok" and workers["celery"]["hostname"] == "celery@box"
    assert workers["celery"]["age_seconds"] < settings.HEARTBEAT_INTERVAL_SECONDS
    assert workers["webhooks"]["status"] == "stale" and workers["webhooks"]["hostname"] == "celery@old-box"
    assert workers["agents"] == {"status": "missing"}
    assert body["beat"]["status"] == "ok" and body["beat"]["hostname"] == socket.gethostname()
    # Informational: a web process serves while a worker is away
    assert client.get("/readyz").status_code == 200


@pytest.mark.django_db
def test_the_status_page_says_in_words_what_readyz_says(client, alice):
    client.force_login(alice)
    heartbeats.record_worker_heartbeat(queue_name="celery", hostname="celery@box")
    heartbeats.record_worker_heartbeat(
        queue_name="webhooks",
        hostname="celery@old-box",
        at=timezone.now() - timedelta(seconds=10 * settings.HEARTBEAT_INTERVAL_SECONDS),
    )
    heartbeats.record_beat_heartbeat()

    page = client.get("/status/").content.decode()

    assert "Ready: every service the platform needs answers." in page
    for service in ("database", "redis", "broker", "scheduler (beat)", "run recorder"):
        assert f"<td>{service}</td>" in page
    for queue in ("celery", "webhooks", "agents"):
        assert f"<td>worker for the {queue} queue</td>" in page
    assert page.count(">up<") == 3 and page.count(">running<") == 2 and ">keeping up<" in page
    assert ">silent for 300 s<" in page and ">never seen<" in page
    assert "from celery@box" in page and "from celery@old-box" in page
    assert client.get("/status/").status_code == 200 and "/accounts/login/" in Client().get("/status/")["Location"]
