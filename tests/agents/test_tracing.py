"""Traces as an operator's collector receives them (OTLP over HTTP, from real processes): one trace from an
API request through the task it starts to the webhook it sends, the pipeline's steps and the provider call
after the OpenTelemetry GenAI conventions, no prompt or key in any span, and the ids in the log lines."""

import asyncio
import json
import re

import pytest

from tests.agents.conftest import post
from tests.conftest import make_key
from tests.fakes.otlp_collector import FakeCollector
from tests.processes import CeleryProcess, GunicornProcess, own_broker
from tests.tasks.conftest import Receiver
from tests.tasks.helpers import register

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "zebra-quartz-4711"  # no port, id or time in a span can contain it by chance
QUESTION = f"what is the launch code {SECRET}?"


@pytest.fixture
def collector():
    collector = FakeCollector()
    yield collector
    collector.stop()


def traced(collector, service: str) -> dict:
    """The environment of a traced process; its own broker database, so no worker of the session takes its tasks."""
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.endpoint,
        "OTEL_SERVICE_NAME": service,
        "CELERY_BROKER_URL": own_broker(),
    }


def named(spans, name: str) -> dict:
    [span] = [span for span in spans if span["name"] == name]
    return span


def is_webhook(span) -> bool:
    return span["attributes"].get("switchboard.webhook.event_type") == "task.succeeded"


def ancestors(spans, span) -> list[str]:
    """The names of a span's parents, nearest first."""
    by_id, names = {s["span_id"]: s for s in spans}, []
    while span["parent_id"] in by_id:
        span = by_id[span["parent_id"]]
        names.append(span["name"])
    return names


def test_an_invocation_is_one_trace_with_genai_attributes_and_no_prompt_or_key(tmp_path, alice, agent, collector):
    web = GunicornProcess(tmp_path / "web.log", workers=1, env=traced(collector, "web"))
    web.wait_for_log("Booting worker")
    key = make_key(alice, scopes=["agents:invoke"])
    try:
        body = {"messages": [{"role": "user", "content": QUESTION}], "temperature": 0.3}
        status, _ = asyncio.run(post(web.port, f"/api/v1/agents/{agent.pk}/invoke", body, key))
        spans = collector.wait_for(lambda spans: any(s["name"] == "POST /api/v1/agents/{id}/invoke" for s in spans))
    finally:
        web.stop()

    assert status == 200
    server = named(spans, "POST /api/v1/agents/{id}/invoke")
    chat = named(spans, "chat gpt-fake")
    assert server["kind"] == "SERVER" and chat["kind"] == "CLIENT"
    assert {s["trace_id"] for s in spans if s["service"] == "web"} == {server["trace_id"]}
    assert ancestors(spans, chat)[-2:] == ["invoke_agent helper", "POST /api/v1/agents/{id}/invoke"]
    steps = {s["name"] for s in spans if s["name"].startswith("switchboard.")}
    assert {"switchboard.guard", "switchboard.quota_and_cache", "switchboard.record"} <= steps
    port = int(re.search(r":(\d+)/", agent.agent_type.default_model.provider.base_url).group(1))
    assert chat["attributes"] == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-fake",
        "gen_ai.request.max_tokens": 1024,
        "gen_ai.request.temperature": 0.3,
        "server.address": "127.0.0.1",
        "server.port": port,
        "gen_ai.response.id": "chatcmpl-fake",
        "gen_ai.response.model": "gpt-fake",
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 8,
        "gen_ai.usage.output_tokens": 7,
    }
    assert any(s["kind"] == "CLIENT" and s["parent_id"] == chat["span_id"] for s in spans), "aiohttp's request span"
    every_value = json.dumps([s["attributes"] for s in spans])
    assert SECRET not in every_value and key not in every_value and key[:12] not in every_value
    lines = [json.loads(line) for line in web.log_text().splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("logger") == "switchboard.access"]
    assert access and access[-1]["trace_id"] == server["trace_id"] and access[-1]["span_id"]


def test_a_background_call_is_one_trace_from_the_request_through_the_task_to_the_webhook(
    tmp_path, alice, agent, collector
):
    receiver = Receiver()
    register(alice, receiver.url, events=("task.succeeded",))
    web = GunicornProcess(tmp_path / "web.log", workers=1, env=traced(collector, "web"))
    worker = CeleryProcess(
        "worker", tmp_path / "worker.log", "--queues", "celery,webhooks,agents", env=traced(collector, "worker")
    )
    try:
        web.wait_for_log("Booting worker")
        worker.wait_for_log("ready.")
        body = {"messages": [{"role": "user", "content": QUESTION}]}
        status, _ = asyncio.run(
            post(web.port, f"/api/v1/agents/{agent.pk}/invoke?async=1", body, make_key(alice, scopes=["agents:invoke"]))
        )
        [delivery] = receiver.wait_for(1, timeout=30)
        # (the task and the webhook may run in two pool processes, each exporting its spans in its own time)
        spans = collector.wait_for(
            lambda spans: any(map(is_webhook, spans)) and any(s["name"] == "invoke_agent helper" for s in spans)
        )
    finally:
        web.stop()
        worker.stop()
        receiver.server.shutdown()
    spans = collector.received()  # with what the processes sent as they stopped

    assert status == 202
    server = named(spans, "POST /api/v1/agents/{id}/invoke")
    [webhook] = [span for span in spans if is_webhook(span)]
    _, trace_id, parent_id, _ = delivery["headers"]["traceparent"].split("-")
    assert trace_id == server["trace_id"] == webhook["trace_id"], "one trace from the request to the webhook"
    assert parent_id == webhook["span_id"]
    invoke = named(spans, "invoke_agent helper")
    assert invoke["service"] == "worker" and invoke["trace_id"] == server["trace_id"]
    assert "POST /api/v1/agents/{id}/invoke" in ancestors(spans, invoke), "the task's spans hang under the request"
    assert webhook["kind"] == "CLIENT" and webhook["attributes"]["http.request.method"] == "POST"


def test_a_workflow_run_is_one_trace_from_the_request_through_each_step_to_the_webhook(
    tmp_path, alice, agent, collector
):
    from workflows.services.workflows import workflow_create

    # Given a workflow of an agent step and a step after it, and a webhook for the run's end
    workflow = workflow_create(
        owner=alice,
        name="traced",
        source=f"""
version: 1
name: traced
steps:
  - {{id: ask, kind: agent, agent: helper, input: "{QUESTION}"}}
  - {{id: shape, kind: transform, needs: [ask], output: "${{size(steps.ask.output)}}"}}
""",
    )
    receiver = Receiver()
    register(alice, receiver.url, events=("workflow.run.succeeded",))
    web = GunicornProcess(tmp_path / "web.log", workers=1, env=traced(collector, "web"))
    worker = CeleryProcess(
        "worker", tmp_path / "worker.log", "--queues", "celery,webhooks,agents", env=traced(collector, "worker")
    )
    try:
        web.wait_for_log("Booting worker")
        worker.wait_for_log("ready.")

        # When a run is started over the API
        key = make_key(alice, scopes=["workflows:run"])
        status, _ = asyncio.run(post(web.port, f"/api/v1/workflows/{workflow.pk}/runs", {}, key))
        [delivery] = receiver.wait_for(1, timeout=30)
        spans = collector.wait_for(  # (each process exports its spans in its own batches, in no set order)
            lambda spans: (
                any(s["attributes"].get("switchboard.webhook.event_type") == "workflow.run.succeeded" for s in spans)
                and sum(s["name"] == "invoke_workflow traced" for s in spans) == 2
            )
        )
    finally:
        web.stop()
        worker.stop()
        receiver.server.shutdown()
    spans = collector.received()  # with what the processes sent as they stopped

    # Then the request, each step (an invoke_workflow span, the agent's call inside the first) and the
    # webhook are one trace
    assert status == 202
    steps = [span for span in spans if span["name"] == "invoke_workflow traced"]
    assert sorted(span["attributes"]["switchboard.workflow.step"] for span in steps) == ["ask", "shape"]
    assert all(span["attributes"]["gen_ai.operation.name"] == "invoke_workflow" for span in steps)
    trace_id = delivery["headers"]["traceparent"].split("-")[1]
    assert {span["trace_id"] for span in steps} == {trace_id}
    invoke = named(spans, "invoke_agent helper")
    assert "invoke_workflow traced" in ancestors(spans, invoke)
    root = [span for span in spans if span["trace_id"] == trace_id and not ancestors(spans, span)]
    assert [span["service"] for span in root] == ["web"]
    assert not any(QUESTION in json.dumps(span["attributes"]) for span in spans), "no prompt in any span"
