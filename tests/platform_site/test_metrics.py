"""Prometheus metrics at /metrics: exact over every web process, readable only by whom it should be, bounded."""

import asyncio
import random
import string
import time
import uuid
from pathlib import Path

import pytest
from celery import current_app
from django.db.models import Sum
from kombu import Queue
from prometheus_client.mmap_dict import MmapedDict

from agents.models import AgentRun
from tasks.selectors import queue_depths
from tests.agents.conftest import clean_redis, invoke_all, post  # noqa: F401  (clean_redis: autouse)
from tests.conftest import api_client, make_key
from tests.metrics import samples, scrape, series, value
from tests.platform_site.test_settings import manage
from tests.processes import GunicornProcess

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "metrics-test-token"
INVOKE = "api/v1/agents/<str:pk>/invoke"


def web_server(tmp_path: Path, workers: int) -> GunicornProcess:
    """A web server with metrics of its own (a fresh directory), readable with TOKEN, from no network."""
    server = GunicornProcess(
        tmp_path / "gunicorn.log",
        workers=workers,
        env={
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            "METRICS_WIPE_ON_START": "true",
            "METRICS_TOKEN": TOKEN,
            "METRICS_ALLOWED_NETWORKS": "192.0.2.0/24",  # TEST-NET-1: not the tests' loopback
        },
    )
    for _ in range(workers):
        server.wait_for_log("Booting worker", timeout=30)
    return server


@pytest.fixture
def web4(tmp_path):
    server = web_server(tmp_path, workers=4)
    yield server
    server.stop()


def pids_that_counted(directory: Path, route: str) -> set[str]:
    """The processes whose own file counts requests to `route`."""
    pids = set()
    for path in directory.glob("counter_*.db"):
        for key, count, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            if key.startswith('["http_requests"') and f'"route": "{route}"' in key and count:
                pids.add(path.stem.split("_")[1])
    return pids


def test_requests_spread_over_four_web_processes_are_counted_exactly_once_each(web4, tmp_path, alice, agent, fake_llm):
    # Given a web server with four worker processes
    key = make_key(alice, scopes=["agents:invoke"])

    # When clients invoke the agent 50 at once (each on its own connection), until more than one process has
    # served them (which process accepts a connection is up to the kernel and the loops: a burst may all go
    # to one), and 40 read the health page
    invoked = 0
    while invoked < 1000 and len(pids_that_counted(tmp_path / "metrics", INVOKE)) < 2:
        answers = asyncio.run(invoke_all(web4.port, agent.pk, key, [f"question {invoked + n}" for n in range(50)]))
        assert {status for status, _ in answers} == {200}
        invoked += 50

    async def health_checks():
        return await asyncio.gather(*[get(web4.port, "/healthz") for _ in range(40)])

    assert set(asyncio.run(health_checks())) == {200}

    # Then /metrics, added up over the processes, counts each exactly once: requests, runs and tokens
    status, text = scrape(web4.url, TOKEN)
    assert status == 200
    assert len(pids_that_counted(tmp_path / "metrics", INVOKE)) > 1, f"{invoked} requests all went to one process"
    assert value(text, "http_requests_total", method="POST", route=INVOKE, status="200") == invoked
    assert value(text, "http_request_duration_seconds_count", route=INVOKE, status_class="2xx") == invoked
    assert value(text, "http_requests_total", method="GET", route="healthz", status="200") == 40
    assert value(text, "switchboard_runs_total", status="succeeded", cache="MISS", agent_type="helper") == invoked
    runs = AgentRun.objects.aggregate(input=Sum("input_tokens"), output=Sum("output_tokens"), cost=Sum("cost"))
    tokens = {"gen_ai_provider_name": "fake", "gen_ai_request_model": "fake-gpt"}
    assert value(text, "gen_ai_client_token_usage_count", gen_ai_token_type="input", **tokens) == invoked
    assert value(text, "gen_ai_client_token_usage_sum", gen_ai_token_type="input", **tokens) == runs["input"]
    assert value(text, "gen_ai_client_token_usage_sum", gen_ai_token_type="output", **tokens) == runs["output"]
    assert value(text, "switchboard_cost_usd_total", **tokens) == pytest.approx(float(runs["cost"]))
    assert value(text, "gen_ai_client_operation_duration_seconds_count", error_type="", **tokens) == invoked
    assert value(text, "http_requests_in_flight") == 1  # the scrape itself


async def get(port: int, path: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    answer = await reader.read()
    writer.close()
    return int(answer.split()[1])


def test_metrics_are_refused_without_the_token_from_an_address_not_allowed_and_served_with_it(tmp_path, db):
    server = web_server(tmp_path, workers=1)
    try:
        # Given a server that allows no network the tests' address is in
        # When /metrics is asked for without the token, or with another one
        # Then it is refused, and none of the data is in the answer
        for token in (None, "not-the-token"):
            status, body = scrape(server.url, token)
            assert status == 403
            assert "http_requests_total" not in body
        # And with the token it is served
        status, body = scrape(server.url, TOKEN)
        assert status == 200
        assert 'http_requests_total{method="GET",route="metrics",status="403"} 2.0' in body
    finally:
        server.stop()


def test_by_default_in_development_loopback_reads_the_metrics_and_other_addresses_do_not(db):
    client = api_client()
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer guess").status_code == 403


def test_with_no_network_allowed_as_in_production_only_the_token_reads_the_metrics(db, settings):
    settings.METRICS_ALLOWED_NETWORKS, settings.METRICS_TOKEN = [], TOKEN
    client = api_client()
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_AUTHORIZATION="Bearer nope").status_code == 403
    answer = client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/plain; version=0.0.4")


def test_a_malformed_allowed_network_stops_start_up():
    result = manage("check", env={"METRICS_ALLOWED_NETWORKS": "10.0.0.0/8,not-a-network"})
    assert result.returncode != 0
    assert "METRICS_ALLOWED_NETWORKS must be comma-separated networks" in result.stderr


def test_the_metrics_are_not_part_of_the_api_schema(db):
    schema = api_client().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert not [path for path in schema["paths"] if "metrics" in path]


def random_text(length: int) -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=length))


def fuzz(port: int, key: str) -> list[str]:
    """300 requests to random paths and 100 calls naming models that do not exist; the random words sent."""
    words = [random_text(12) for _ in range(400)]
    paths = [f"/{word}/{random_text(6)}" for word in words[:100]]
    paths += [f"/api/v1/{word}" for word in words[100:200]]
    paths += [f"/api/v1/agents/{random.randint(10**6, 10**7)}{word}/invoke" for word in words[200:300]]
    body = {"messages": [{"role": "user", "content": "hi"}]}

    async def send():
        await asyncio.gather(*[get(port, path) for path in paths])
        await asyncio.gather(
            *[post(port, "/v1/chat/completions", {**body, "model": f"m-{w}"}, key) for w in words[300:]]
        )

    asyncio.run(send())
    return words


def test_random_paths_and_unknown_model_names_add_no_series_and_fold_into_other(tmp_path, alice, agent, fake_llm):
    server = web_server(tmp_path, workers=2)
    try:
        key = make_key(alice, scopes=["agents:invoke"])
        asyncio.run(invoke_all(server.port, agent.pk, key, ["warm up"]))
        _, before = scrape(server.url, TOKEN)

        # When clients send 300 requests to random paths and 100 calls naming models that do not exist, twice
        words = fuzz(server.port, key)
        _, once = scrape(server.url, TOKEN)
        words += fuzz(server.port, key)
        _, twice = scrape(server.url, TOKEN)

        # Then the first round adds the series of a few new routes and statuses (`other` among them: a counter
        # and a histogram each), the second none; no path and no model name is in a label
        assert series(once) - series(before) <= 5 * 17, series(once) - series(before)
        assert series(twice) == series(once)
        assert series(twice) < 1000
        assert not [word for word in words if word in twice]
        assert value(twice, "http_requests_total", route="other", status="404") == 200
        assert value(twice, "http_requests_total", route="api/", status="404") == 200
        assert value(twice, "http_requests_total", route=INVOKE, method="GET") == 200
        assert value(twice, "http_requests_total", route="v1/chat/completions") == 200
    finally:
        server.stop()


def oldest_age(queue: str) -> float | None:
    """switchboard_queue_oldest_age_seconds{queue} as /metrics reads it now (None: not in the answer)."""
    text = api_client().get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    found = [
        v
        for name, labels, v in samples(text)
        if name == "switchboard_queue_oldest_age_seconds" and labels == {"queue": queue}
    ]
    return found[0] if found else None


def test_the_age_of_the_oldest_message_on_a_queue_nobody_consumes_grows_and_is_zero_once_it_is_empty(db, settings):
    # Given a queue no worker consumes, routed like the platform's own
    name = f"age-test-{uuid.uuid4().hex}"
    settings.CELERY_TASK_ROUTES = {**settings.CELERY_TASK_ROUTES, "tests.never_taken": {"queue": name}}
    assert oldest_age(name) == 0
    with current_app.connection_for_write() as connection:
        try:
            # When a message sent without the time stamp (before it existed) waits there, it is skipped
            queue = Queue(name, routing_key=name)
            connection.Producer().publish({"x": 1}, routing_key=name, declare=[queue])
            assert queue_depths([name]) == {name: 1}
            assert oldest_age(name) == 0

            # When a task is sent there (at a priority: kombu keeps it in a list of its own)
            current_app.send_task("tests.never_taken", queue=name, priority=9)
            first = oldest_age(name)
            time.sleep(1)
            second = oldest_age(name)

            # Then the age of the oldest message grows while it waits, and nothing was taken from the queue
            assert 0 < first < second
            assert queue_depths([name]) == {name: 2}
        finally:
            queue(connection.default_channel).purge()  # every priority's list
            queue(connection.default_channel).delete()

    # And once the queue is empty (Redis drops it), the age is 0
    assert oldest_age(name) == 0
