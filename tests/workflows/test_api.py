"""The workflows API as an agent or a script uses it: definitions with every problem at once, versions,
diff and rollback, import and export, runs started with Idempotency-Key, the event stream, the inbound
webhook and schedules. Steps run here in the test's process (tests.factories.run_here); the engine on real
workers is tested in test_engine.py."""

import json
from datetime import UTC, datetime

import pytest
from asgiref.sync import async_to_sync
from django_celery_beat.models import PeriodicTask
from standardwebhooks import Webhook

from accounts.services import object_share
from core.encryption import decrypt
from tests.conftest import api_client, make_key
from tests.factories import TWO_STEPS, WorkflowFactory, run_here
from workflows.models import Workflow, WorkflowRun
from workflows.services.runs import run_start_scheduled

pytestmark = pytest.mark.django_db

SCOPES = ["workflows:read", "workflows:write", "workflows:run"]


@pytest.fixture
def client(alice):
    return api_client(key=make_key(alice, scopes=SCOPES))


def create(client, source=TWO_STEPS, name="greeter"):
    return client.post("/api/v1/workflows", {"name": name, "source": source}, format="json")


def test_a_definition_with_problems_is_refused_with_every_problem_and_its_line_and_column(client):
    source = TWO_STEPS.replace("needs: [first]", "needs: [nowhere]").replace(
        'kind: transform\n    output: "${inputs', 'kind: transfrom\n    output: "${inputs'
    )

    response = create(client, source)

    assert response.status_code == 400
    body = response.json()
    assert body["errors"][0]["code"] == "invalid_definition" and body["request_id"]
    problems = {problem["code"]: problem for problem in body["problems"]}
    assert {"unknown_step", "schema"} <= set(problems), body["problems"]
    assert problems["unknown_step"]["line"] == source.splitlines().index("    needs: [nowhere]") + 1
    assert not Workflow.objects.exists()


def test_validate_checks_a_definition_without_saving_it(client):
    good = client.post("/api/v1/workflows/validate", {"source": TWO_STEPS}, format="json").json()
    bad = client.post("/api/v1/workflows/validate", {"source": "version: 1\nsteps: []\n"}, format="json").json()

    assert good["valid"] and good["definition"]["steps"][1]["needs"] == ["first"]
    assert not bad["valid"] and bad["problems"]
    assert not Workflow.objects.exists()


def test_saving_makes_versions_that_can_be_diffed_and_rolled_back(client):
    workflow = create(client).json()
    changed = TWO_STEPS.replace("'!'", "'?'")
    assert (
        client.patch(f"/api/v1/workflows/{workflow['id']}", {"source": changed}, format="json").json()["version"] == 2
    )

    versions = client.get(f"/api/v1/workflows/{workflow['id']}/versions").json()["results"]
    diff = client.get(f"/api/v1/workflows/{workflow['id']}/diff", {"from": 1, "to": 2}).json()
    rolled = client.post(f"/api/v1/workflows/{workflow['id']}/rollback", {"version": 1}, format="json").json()

    assert [version["number"] for version in versions] == [2, 1]
    assert "-    output: \"${steps.first.output + '!'}\"" in diff["diff"]
    assert "+    output: \"${steps.first.output + '?'}\"" in diff["diff"]
    assert rolled["version"] == 3 and rolled["source"] == TWO_STEPS
    assert client.get(f"/api/v1/workflows/{workflow['id']}/versions/3").json()["note"] == "Rolled back to version 1."


def test_an_export_imports_back_as_the_same_workflow_for_another_user(client, bob):
    workflow = create(client).json()
    exported = client.get(f"/api/v1/workflows/{workflow['id']}/export").json()

    imported = api_client(key=make_key(bob, scopes=SCOPES)).post("/api/v1/workflows/import", exported, format="json")

    assert imported.status_code == 201
    assert {key: imported.json()[key] for key in ("name", "source", "format")} == {
        "name": "greeter",
        "source": TWO_STEPS,
        "format": "yaml",
    }


def test_starting_a_run_answers_202_with_its_location_and_a_repeated_key_gives_the_same_run(client):
    workflow = create(client).json()
    url = f"/api/v1/workflows/{workflow['id']}/runs"

    first = client.post(url, {"inputs": {"word": "hey"}}, format="json", HTTP_IDEMPOTENCY_KEY="once")
    again = client.post(url, {"inputs": {"word": "hey"}}, format="json", HTTP_IDEMPOTENCY_KEY="once")

    assert first.status_code == 202
    assert first["Location"].endswith(f"/api/v1/workflow-runs/{first.json()['id']}")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert WorkflowRun.objects.count() == 1
    run = run_here(WorkflowRun.objects.get())
    detail = client.get(f"/api/v1/workflow-runs/{run.pk}").json()
    assert detail["status"] == "succeeded" and detail["outputs"] == {"said": "hey!"}
    assert [step["key"] for step in detail["steps"]] == ["first", "second"]


@pytest.mark.parametrize(
    ("inputs", "field"),
    [({"word": 3}, "inputs.word"), ({"other": "x"}, "inputs"), ("not an object", "inputs")],
)
def test_inputs_of_the_wrong_type_or_unknown_are_refused(client, inputs, field):
    workflow = create(client).json()

    response = client.post(f"/api/v1/workflows/{workflow['id']}/runs", {"inputs": inputs}, format="json")

    assert response.status_code == 400
    assert field in {error["attr"] for error in response.json()["errors"]}
    assert not WorkflowRun.objects.exists()


def test_a_workflow_shared_for_view_cannot_be_run_and_one_shared_for_use_runs_as_the_user(alice, bob):
    workflow = WorkflowFactory(owner=alice)
    bobs = api_client(key=make_key(bob, scopes=SCOPES))
    object_share(obj=workflow, owner=alice, user=bob, level="view")
    assert bobs.post(f"/api/v1/workflows/{workflow.pk}/runs", {}, format="json").status_code == 404

    object_share(obj=workflow, owner=alice, user=bob, level="use")
    response = bobs.post(f"/api/v1/workflows/{workflow.pk}/runs", {}, format="json")

    assert response.status_code == 202
    assert WorkflowRun.objects.get().owner == bob


def test_the_event_stream_replays_a_runs_events_and_resumes_after_last_event_id(client, alice):
    run = run_here(_run_of(alice))

    everything = _stream(client, run)
    ids = [event["id"] for event in everything]
    after_second = _stream(client, run, last_event_id=ids[1])

    assert [event["event"] for event in everything][0] == "run.started"
    assert everything[-1]["event"] == "run.succeeded"
    assert [event["id"] for event in after_second] == ids[2:]
    listed = client.get(f"/api/v1/workflow-runs/{run.pk}/events", {"after": ids[1]}).json()
    assert [event["id"] for event in listed] == [int(i) for i in ids[2:]]


def _run_of(user):
    from workflows.services.runs import run_start

    run, _ = run_start(workflow=WorkflowFactory(owner=user), user=user, inputs={"word": "yo"})
    return run


def _stream(client, run, last_event_id=None) -> list[dict]:
    headers = {"HTTP_LAST_EVENT_ID": last_event_id} if last_event_id else {}
    response = client.get(f"/api/v1/workflow-runs/{run.pk}/stream", **headers)
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"

    async def read():
        return b"".join([part async for part in response.streaming_content])

    events = []
    for block in async_to_sync(read)().decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if fields:
            events.append({"id": fields["id"], "event": fields["event"], "data": json.loads(fields["data"])})
    return events


def test_the_inbound_webhook_starts_a_run_once_per_message_and_refuses_a_bad_signature(client, alice):
    workflow = create(client).json()
    secret = client.post(f"/api/v1/workflows/{workflow['id']}/hook-secret").json()["secret"]
    assert decrypt(Workflow.objects.get().hook_secret_encrypted) == secret
    body = json.dumps({"inputs": {"word": "hooked"}})

    def send(signing_secret, message_id="msg_1"):
        stamp = datetime.now(UTC)
        signature = Webhook(signing_secret).sign(message_id, stamp, body)
        headers = {
            "HTTP_WEBHOOK_ID": message_id,
            "HTTP_WEBHOOK_TIMESTAMP": str(int(stamp.timestamp())),
            "HTTP_WEBHOOK_SIGNATURE": signature,
        }
        return api_client().post(
            f"/api/v1/hooks/workflows/{workflow['id']}", body, content_type="application/json", **headers
        )

    first, again = send(secret), send(secret)
    forged = send("whsec_" + "A" * 32, message_id="msg_2")

    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert forged.status_code == 404
    run = WorkflowRun.objects.get()
    assert (run.trigger, run.owner, run.inputs) == ("webhook", alice, {"word": "hooked"})


def test_a_schedule_is_a_beat_row_that_starts_runs_as_its_owner(client, alice):
    workflow = create(client).json()

    response = client.post(
        f"/api/v1/workflows/{workflow['id']}/schedules",
        {"cron": "*/5 * * * *", "inputs": {"word": "tick"}},
        format="json",
    )
    bad = client.post(f"/api/v1/workflows/{workflow['id']}/schedules", {"cron": "every day"}, format="json")

    assert response.status_code == 201 and bad.status_code == 400
    periodic = PeriodicTask.objects.get(task="workflows.start_scheduled")
    assert str(periodic.crontab).startswith("*/5 * * * *")
    run = run_start_scheduled(**json.loads(periodic.kwargs))
    assert (run.trigger, run.owner, run.inputs) == ("schedule", alice, {"word": "tick"})
    client.delete(f"/api/v1/workflows/{workflow['id']}/schedules/{response.json()['id']}")
    assert not PeriodicTask.objects.filter(task="workflows.start_scheduled").exists()
