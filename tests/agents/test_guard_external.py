"""External guard services: the texts POSTed signed (Standard Webhooks) after the built-in detectors, the
answers allow, flag, redact and block, a guard that is slow, broken or at a private address failing open or
closed as its policy says."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook

from agents.models import AgentRun, GuardService, GuardVerdict, PolicyGuard
from core.encryption import encrypt
from tests.agents.conftest import ask, read_stream
from tests.agents.test_guard_pipeline import EMAIL, everything_stored, provider_saw, set_policy
from tests.conftest import api_client

pytestmark = pytest.mark.django_db

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class GuardServer:
    """An operator's guard service on 127.0.0.2 (the loopback address the test settings allow, or 127.0.0.1,
    which they do not). `answer(body) -> (status, dict)` decides; `delay` makes it slow."""

    def __init__(self, host: str = "127.0.0.2"):
        self.requests: list[dict] = []
        self.answer = lambda body: (200, {"action": "allow"})
        self.delay = 0.0
        guard = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
                guard.requests.append({"headers": dict(self.headers), "body": raw})
                time.sleep(guard.delay)
                status, answer = guard.answer(json.loads(raw))
                payload = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the platform gave up waiting
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_port}/check"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self) -> list[dict]:
        return [json.loads(request["body"]) for request in self.requests]


@pytest.fixture
def guard_server():
    server = GuardServer()
    yield server
    server.server.shutdown()
    server.server.server_close()


def add_guard(agent_type, url, *, fail_mode="closed", directions="both", timeout_ms=2000, **actions):
    policy = set_policy(agent_type, **actions)
    service = GuardService.objects.create(
        name="acme", url=url, secret_encrypted=encrypt(SECRET), timeout_ms=timeout_ms, directions=directions
    )
    PolicyGuard.objects.create(policy=policy, service=service, fail_mode=fail_mode)
    return service


def verdicts() -> set[tuple]:
    return set(GuardVerdict.objects.values_list("detector", "action", "where"))


def test_the_guard_gets_the_redacted_texts_signed_and_an_allow_lets_them_through(alice, agent, fake_llm, guard_server):
    add_guard(agent.agent_type, guard_server.url, email="redact")

    response = ask(api_client(alice), agent, f"hello {EMAIL}")

    assert response.status_code == 200 and response.json()["output"] == "echo: hello [EMAIL]"
    [asked_input, asked_output] = guard_server.requests
    Webhook(SECRET).verify(asked_input["body"], asked_input["headers"])  # raises unless signed with the secret
    assert guard_server.bodies()[0] == {
        "type": "guard.check",
        "direction": "input",
        "agent_type": agent.agent_type.slug,
        "run": response.json()["run"],
        "texts": [{"where": "input", "place": "messages[0].content", "text": "hello [EMAIL]"}],
    }
    assert guard_server.bodies()[1]["direction"] == "output"
    assert guard_server.bodies()[1]["texts"] == [
        {"where": "output", "place": "the answer", "text": "echo: hello [EMAIL]"}
    ]
    assert EMAIL not in json.dumps(guard_server.bodies())
    assert verdicts() == {("email", "redact", "input")}


def test_a_redaction_by_the_guard_is_what_the_provider_gets_and_the_run_records(alice, agent, fake_llm, guard_server):
    add_guard(agent.agent_type, guard_server.url, directions="input")
    guard_server.answer = lambda body: (
        200,
        {"action": "redact", "texts": [t["text"].replace("Falcon", "[CODENAME]") for t in body["texts"]]},
    )

    response = ask(api_client(alice), agent, "status of Falcon?")

    assert response.json()["output"] == "echo: status of [CODENAME]?"
    assert "Falcon" not in provider_saw(fake_llm) and "Falcon" not in everything_stored(AgentRun.objects.get())
    assert verdicts() == {("external:acme", "redact", "input")}


def test_a_block_by_the_guard_is_a_422_naming_it(alice, agent, fake_llm, guard_server):
    add_guard(agent.agent_type, guard_server.url, directions="output")
    guard_server.answer = lambda body: (200, {"action": "block", "reason": "toxic", "index": 0})

    response = ask(api_client(alice), agent, "say something")

    assert response.status_code == 422 and response.json()["errors"][0]["code"] == "content_blocked"
    assert response.json()["guard"] == {"detector": "external:acme", "where": "output", "place": "the answer"}
    run = AgentRun.objects.get()
    assert run.status == "refused" and run.output == ""
    assert verdicts() == {("external:acme", "block", "output")}


def test_a_flag_by_the_guard_is_recorded_and_changes_nothing(alice, agent, fake_llm, guard_server):
    add_guard(agent.agent_type, guard_server.url, directions="input")
    guard_server.answer = lambda body: (200, {"action": "flag", "reason": "odd"})

    response = ask(api_client(alice), agent, "hello")

    assert response.json()["output"] == "echo: hello"
    assert verdicts() == {("external:acme", "flag", "input")}


@pytest.mark.parametrize(
    "trouble",
    ["slow", "status 500", "not json", "unknown action", "a redaction that drops a text"],
)
def test_a_failing_guard_of_a_fail_closed_policy_refuses_with_a_503(alice, agent, fake_llm, guard_server, trouble):
    add_guard(agent.agent_type, guard_server.url, directions="input", timeout_ms=300)
    if trouble == "slow":
        guard_server.delay = 2
    else:
        guard_server.answer = {
            "status 500": lambda body: (500, {"action": "allow"}),
            "not json": lambda body: (200, "allow"),
            "unknown action": lambda body: (200, {"action": "maybe"}),
            "a redaction that drops a text": lambda body: (200, {"action": "redact", "texts": []}),
        }[trouble]

    started = time.monotonic()
    response = ask(api_client(alice), agent, "hello")

    assert response.status_code == 503
    assert (
        response.json()["errors"][0]["code"] == "guard_unavailable" and "acme" in response.json()["errors"][0]["detail"]
    )
    assert fake_llm.chat_calls() == 0
    assert AgentRun.objects.get().status == "failed"
    assert verdicts() == {("external:acme", "error", "input")}
    assert time.monotonic() - started < 30, "bounded by the guard's time budget, never a hang"


def test_a_failing_guard_of_a_fail_open_policy_passes_the_text_and_records_an_error(
    alice, agent, fake_llm, guard_server
):
    add_guard(agent.agent_type, guard_server.url, fail_mode="open", timeout_ms=300)
    guard_server.delay = 2

    response = ask(api_client(alice), agent, "hello")

    assert response.status_code == 200 and response.json()["output"] == "echo: hello"
    assert verdicts() == {("external:acme", "error", "input"), ("external:acme", "error", "output")}


@pytest.mark.parametrize("fail_mode, status", [("closed", 503), ("open", 200)])
def test_a_guard_at_a_private_address_is_never_called(alice, agent, fake_llm, fail_mode, status):
    private = GuardServer(host="127.0.0.1")  # loopback, not in WEBHOOK_ALLOWED_HOSTS
    try:
        add_guard(agent.agent_type, private.url, fail_mode=fail_mode, directions="input")

        response = ask(api_client(alice), agent, "hello")
    finally:
        private.server.shutdown()
        private.server.server_close()

    assert response.status_code == status and private.requests == []
    assert verdicts() == {("external:acme", "error", "input")}


def test_a_streamed_answer_is_held_whole_for_an_output_guard_then_sent_redacted(alice, agent, fake_llm, guard_server):
    add_guard(agent.agent_type, guard_server.url, directions="output")
    guard_server.answer = lambda body: (
        200,
        {"action": "redact", "texts": [t["text"].replace("Falcon", "[CODENAME]") for t in body["texts"]]},
    )
    fake_llm.reply = "the plan named Falcon starts at dawn"

    response = api_client(alice).post(
        f"/api/v1/agents/{agent.pk}/invoke",
        {"messages": [{"role": "user", "content": "the plan?"}], "stream": True},
        format="json",
    )
    body = read_stream(response)

    texts = [json.loads(line[6:])["text"] for line in body.splitlines() if line.startswith('data: {"text"')]
    assert "".join(texts) == "the plan named [CODENAME] starts at dawn" and "Falcon" not in body
    assert guard_server.bodies()[0]["texts"][0]["text"] == "the plan named Falcon starts at dawn"
    assert "Falcon" not in everything_stored(AgentRun.objects.get())
    assert verdicts() == {("external:acme", "redact", "output")}
