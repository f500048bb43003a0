"""Redis hung (SIGSTOP) or killed, under a real gunicorn and real Celery processes: requests are answered
within bounds, as documented (cache bypassed, limits in the process, tasks queued for the resender), and
workers and beat outlive the outage and carry on once Redis is back."""

import signal
import threading
import time

import pytest
import requests

from agents.models import AgentType
from agents.services.agents import agent_create
from tasks.models import TaskRecord
from tests.conftest import make_key, make_user
from tests.processes import CeleryProcess, GunicornProcess, RedisServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    yield server
    server.signal(signal.SIGCONT)
    server.stop()


def platform_env(redis_server) -> dict:
    return {"REDIS_URL": redis_server.url(0), "CELERY_BROKER_URL": redis_server.broker_url(1)}


@pytest.fixture
def web(redis_server, tmp_path):
    server = GunicornProcess(tmp_path / "web.log", workers=1, env=platform_env(redis_server))
    server.wait_for_log("Booting worker")
    yield server
    server.stop()


@pytest.fixture
def caller(db):
    alice = make_user("alice")
    agent_type = AgentType.objects.get(slug="assistant")
    agent = agent_create(owner=alice, agent_type=agent_type, name="helper")
    key = make_key(alice, scopes=["agents:invoke", "tasks:read"])
    return agent, {"Authorization": f"Bearer {key}"}


def invoke(web, agent, headers, text, *, background=False):
    url = f"{web.url}/api/v1/agents/{agent.pk}/invoke" + ("?async=1" if background else "")
    started = time.monotonic()
    response = requests.post(url, json={"messages": [{"role": "user", "content": text}]}, headers=headers, timeout=30)
    return response, time.monotonic() - started


def readyz(web):
    started = time.monotonic()
    response = requests.get(f"{web.url}/readyz", timeout=30)
    return response, time.monotonic() - started


def wait_until(condition, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_with_redis_hung_requests_are_answered_in_bounded_time(redis_server, web, caller):
    agent, headers = caller
    assert wait_until(lambda: readyz(web)[0].status_code == 200)
    assert invoke(web, agent, headers, "warm up")[0].headers["X-Cache"] == "MISS"

    redis_server.signal(signal.SIGSTOP)  # stopped, not dead: connections open, nothing answers

    ready, ready_took = readyz(web)
    answered, answer_took = invoke(web, agent, headers, "while Redis is hung")
    again, again_took = invoke(web, agent, headers, "and again")
    queued, queue_took = invoke(web, agent, headers, "in the background", background=True)

    assert ready.status_code == 503 and "redis" in ready.json()["down"] and ready_took < 2
    assert answered.status_code == 200 and answered.headers["X-Cache"] == "BYPASS" and answer_took < 1.5
    assert again.status_code == 200 and again_took < 0.5, "Redis is not waited for on every request"
    assert queued.status_code == 202 and queue_took < 3
    assert TaskRecord.objects.get(pk=queued.json()["id"]).status == "queued", "kept for the resender"
    assert "Redis is not answering" in web.log_text()

    redis_server.signal(signal.SIGCONT)
    assert wait_until(lambda: readyz(web)[0].status_code == 200)
    assert invoke(web, agent, headers, "Redis is back")[0].headers["X-Cache"] == "MISS"


def test_with_redis_killed_workers_and_beat_keep_running_and_reconnect(redis_server, web, caller, tmp_path):
    agent, headers = caller
    env = platform_env(redis_server)
    worker = CeleryProcess(
        "worker", tmp_path / "worker.log", "--queues", "celery,webhooks,agents", "--concurrency", "2", env=env
    )
    beat = CeleryProcess("beat", tmp_path / "beat.log", env=env)
    try:
        worker.wait_for_log("ready.")
        answers = []
        firing = threading.Thread(
            target=lambda: answers.extend(invoke(web, agent, headers, f"during {n}")[0].status_code for n in range(20))
        )
        firing.start()

        redis_server.stop()  # SIGTERM in the middle of requests
        firing.join(timeout=60)
        time.sleep(5)

        assert answers and all(status == 200 for status in answers), answers
        assert worker.process.poll() is None, worker.log_text()[-3000:]
        assert beat.process.poll() is None, beat.log_text()[-3000:]

        redis_server.start()
        done, _ = invoke(web, agent, headers, "after the outage", background=True)
        assert done.status_code == 202
        assert wait_until(lambda: TaskRecord.objects.get(pk=done.json()["id"]).status == "succeeded", timeout=60), (
            worker.log_text()[-3000:]
        )
    finally:
        worker.stop()
        beat.stop()
