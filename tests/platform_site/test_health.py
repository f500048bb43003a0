import json
import os
import subprocess
import sys

import pytest
from django.core.cache import cache
from django.test import Client, override_settings

from platform_site import health

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused at once


def test_healthz_answers_without_touching_dependencies(client):
    # No django_db mark: any database access here would raise.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_each_dependency_with_its_latency(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["down"] == []
    assert set(body["checks"]) == {"database", "redis", "broker"}
    for check in body["checks"].values():
        assert check["ok"] is True
        assert check["latency_ms"] >= 0


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
    assert body["heartbeat"] == {"status": "unknown"}
    assert body["run_backlog"] == {"status": "unknown"}


@pytest.mark.django_db
def test_readyz_is_503_naming_the_broker_when_the_broker_is_unreachable(client):
    with override_settings(CELERY_BROKER_URL=UNREACHABLE_REDIS):
        response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["down"] == ["broker"]


def test_readyz_is_503_naming_the_database_when_postgres_is_unreachable():
    # A separate process, since this one's database connection is the test database.
    script = (
        "import django; django.setup();"
        "from django.test import Client; r = Client().get('/readyz', HTTP_HOST='localhost');"
        "print(r.status_code); print(r.content.decode())"
    )
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/switchboard",
        "DJANGO_SETTINGS_MODULE": "platform_site.settings_test",
    }
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)

    status, body = result.stdout.strip().split("\n", 1)
    assert status == "503"
    assert json.loads(body)["down"] == ["database"]


@pytest.mark.django_db
def test_readyz_reports_the_age_of_the_last_heartbeat(client):
    cache.delete(health.HEARTBEAT_KEY)
    assert client.get("/readyz").json()["heartbeat"] == {"status": "missing"}

    health.record_heartbeat()

    heartbeat = client.get("/readyz").json()["heartbeat"]
    assert heartbeat["status"] == "ok"
    assert heartbeat["age_seconds"] < 5


@pytest.mark.django_db
def test_the_status_page_says_in_words_what_readyz_says(client, alice):
    client.force_login(alice)
    health.record_heartbeat()

    page = client.get("/status/").content.decode()

    assert "Ready: every service the platform needs answers." in page
    for service in ("database", "redis", "broker", "scheduler (beat)", "run recorder"):
        assert f"<td>{service}</td>" in page
    assert page.count(">up<") == 3 and ">running<" in page and ">keeping up<" in page
    assert client.get("/status/").status_code == 200 and "/accounts/login/" in Client().get("/status/")["Location"]
