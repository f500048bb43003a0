"""POST /v1/chat/completions as agents send it: OpenAI's shapes, the model field, what is refused and how."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.services import object_share
from agents.models import AgentRun, ExposedModel
from agents.services.agents import agent_create
from agents.services.catalog import exposed_model_save
from quotas.models import QuotaPolicy
from tests.conftest import api_client, in_one_minute, make_key

pytestmark = pytest.mark.django_db


def chat(client, model="alice/helper", text="hello there", **fields):
    client.raise_request_exception = False
    body = {"model": model, "messages": [{"role": "user", "content": text}], **fields}
    return client.post("/v1/chat/completions", body, format="json")


@pytest.fixture
def client(alice):
    return api_client(key=make_key(alice, scopes=["agents:invoke"]))


def test_a_chat_completion_answers_in_openai_shape_and_keeps_the_metadata_on_the_run(client, agent, fake_llm):
    response = chat(client, metadata={"ticket": "T-42"}, temperature=0.2, max_completion_tokens=50, seed=7)

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == "alice/helper"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "echo: hello there", "refusal": None},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}
    run = AgentRun.objects.get()
    assert body["id"] == f"chatcmpl-{run.pk.hex}" and response["X-Cache"] == "MISS"
    assert (run.metadata, run.finish_reason) == ({"ticket": "T-42"}, "stop")
    sent = fake_llm.requests[0]["body"]
    assert (sent["temperature"], sent["max_tokens"], sent["seed"]) == (0.2, 50, 7)


def test_the_model_is_an_agent_by_id_or_by_owner_and_name_and_others_are_a_404(alice, bob, agent, fake_llm):
    bobs = agent_create(owner=bob, agent_type=agent.agent_type, name="bob's helper", system_prompt="")
    client = api_client(key=make_key(alice, scopes=["agents:invoke"]))

    assert chat(client, model=f"agent:{agent.pk}").status_code == 200
    for unknown in ("bob/bob's helper", f"agent:{bobs.pk}", "alice/nobody", "gpt-4o"):
        response = chat(client, model=unknown)
        assert response.status_code == 404, unknown
        assert response.json()["error"]["code"] == "model_not_found"
        assert response.json()["error"]["type"] == "invalid_request_error"

    object_share(obj=bobs, owner=bob, user=alice, level="view")
    assert chat(client, model="bob/bob's helper").status_code == 404, "seeing an agent is not using it"
    object_share(obj=bobs, owner=bob, user=alice, level="use")
    assert chat(client, model="bob/bob's helper").status_code == 200


def test_unknown_fields_are_refused_as_openai_refuses_them_and_harmless_ones_are_ignored(client, agent, fake_llm):
    unknown = chat(client, frobnicate=True)
    two_answers = chat(client, n=2)
    audio = chat(client, modalities=["text", "audio"])
    legacy = chat(client, functions=[{"name": "f"}])
    ignored = chat(client, frequency_penalty=0.5, store=False, n=1, logprobs=False)

    assert (unknown.status_code, unknown.json()["error"]["param"]) == (400, "frobnicate")
    assert "Unrecognized request argument" in unknown.json()["error"]["message"]
    assert [r.json()["error"]["param"] for r in (two_answers, audio, legacy)] == ["n", "modalities", "functions"]
    assert ignored.status_code == 200 and fake_llm.chat_calls() == 1


@pytest.mark.parametrize(
    "fields, param",
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": [{"type": "audio"}]}]}, "messages[0].content[0]"),
        ({"messages": [{"role": "tool", "content": "42", "tool_call_id": "nope"}]}, "messages[0].tool_call_id"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools[0].function.name"),
        ({"tool_choice": {"type": "function", "function": {"name": "missing"}}}, "tool_choice"),
        ({"response_format": {"type": "xml"}}, "response_format"),
        ({"temperature": 3}, "temperature"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"model": 12}, "model"),
    ],
)
def test_a_bad_request_is_a_400_naming_the_field_and_calls_nothing(client, agent, fake_llm, fields, param):
    body = {"model": "alice/helper", "messages": [{"role": "user", "content": "hi"}], **fields}
    client.raise_request_exception = False
    response = client.post("/v1/chat/completions", body, format="json")

    assert response.status_code == 400, response.json()
    assert response.json()["error"]["param"] == param and response.json()["error"]["type"] == "invalid_request_error"
    assert fake_llm.chat_calls() == 0


def test_errors_come_in_openai_shape_with_openai_statuses(alice, agent, fake_llm, settings):
    settings.CONTENT_BLOCKLIST = [r"\bforbidden\b"]
    QuotaPolicy.objects.create(name="tight", requests_per_minute=1)
    in_one_minute()
    keyless = chat(api_client())
    wrong_scope = chat(api_client(key=make_key(alice, scopes=["agents:read"])))
    client = api_client(key=make_key(alice, scopes=["agents:invoke"]))
    refused = chat(client, text="a forbidden question")
    chat(client)
    limited = chat(client)

    assert (keyless.status_code, keyless.json()["error"]["type"]) == (401, "authentication_error")
    assert (wrong_scope.status_code, wrong_scope.json()["error"]["type"]) == (403, "permission_error")
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "content_filter")
    assert (limited.status_code, limited.json()["error"]["type"]) == (429, "rate_limit_error")
    assert int(limited["Retry-After"]) > 0 and "RateLimit" in limited
    assert all(r["X-Request-ID"] for r in (keyless, refused, limited))


def test_other_paths_under_v1_are_an_openai_404(client):
    fetched = client.get("/v1/completions/legacy")
    posted = APIClient(enforce_csrf_checks=True).post("/v1/completions", {"prompt": "hi"}, format="json")

    assert fetched.status_code == 404 and fetched.json()["error"]["code"] == "unknown_url"
    assert posted.status_code == 404 and posted.json()["error"]["code"] == "unknown_url"


def test_tools_and_images_are_counted_in_the_worst_case_a_call_reserves(
    alice, client, agent, model, fake_llm, settings
):
    QuotaPolicy.objects.create(name="tiny", tokens_per_day=1)  # every request is too big: the 400 says by how much
    tool = {"type": "function", "function": {"name": "lookup", "description": "x" * 3000}}
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    model.accepts_images = True
    model.save()

    def reserved(**fields) -> int:
        response = chat(client, **fields)
        assert response.status_code == 400, response.json()
        return int(re.search(r"may need (\d+)", response.json()["error"]["message"]).group(1))

    plain = reserved()
    with_tool = reserved(tools=[tool])
    with_image = reserved(messages=[{"role": "user", "content": [{"type": "text", "text": "hello there"}, image]}])

    assert with_tool - plain >= 3000
    assert with_image - plain >= settings.TOKENS_PER_IMAGE
    assert fake_llm.chat_calls() == 0


def test_images_are_refused_with_a_400_by_a_model_that_does_not_take_them(client, agent, fake_llm):
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    response = chat(client, messages=[{"role": "user", "content": [{"type": "text", "text": "what is it?"}, image]}])

    assert response.status_code == 400 and "does not take images" in response.json()["error"]["message"]
    assert fake_llm.chat_calls() == 0


def test_an_idempotency_key_answers_a_retry_with_the_first_answer_and_charges_once(client, agent, fake_llm):
    first = client.post(
        "/v1/chat/completions",
        {"model": "alice/helper", "messages": [{"role": "user", "content": "once"}]},
        format="json",
        HTTP_IDEMPOTENCY_KEY="retry-7",
        HTTP_CACHE_CONTROL="no-cache",
    )
    again = client.post(
        "/v1/chat/completions",
        {"model": "alice/helper", "messages": [{"role": "user", "content": "once"}]},
        format="json",
        HTTP_IDEMPOTENCY_KEY="retry-7",
        HTTP_CACHE_CONTROL="no-cache",
    )

    assert first.json()["id"] == again.json()["id"]
    assert again.json()["choices"][0]["message"]["content"] == "echo: once"
    assert fake_llm.chat_calls() == 1 and AgentRun.objects.count() == 1


def test_models_lists_the_agents_the_key_may_call_in_the_same_queries_for_3_and_for_30(alice, bob, agent_type):
    client = api_client(key=make_key(alice, scopes=["agents:invoke"]))
    bobs = agent_create(owner=bob, agent_type=agent_type, name="shared for use", system_prompt="")
    seen_only = agent_create(owner=bob, agent_type=agent_type, name="shared to see", system_prompt="")
    object_share(obj=bobs, owner=bob, user=alice, level="use")
    object_share(obj=seen_only, owner=bob, user=alice, level="view")
    counts = {}
    for total in (3, 30):
        while alice.agents.count() < total:
            agent_create(owner=alice, agent_type=agent_type, name=f"a{alice.agents.count():02}", system_prompt="")
        client.get("/v1/models")  # the key and the exposed models, read once per process
        with CaptureQueriesContext(connection) as queries:
            listed = [model["id"] for model in client.get("/v1/models").json()["data"]]
        counts[total] = len(queries)
        assert listed == sorted(f"alice/{a.name}" for a in alice.agents.all()) + ["bob/shared for use"]

    assert counts[3] == counts[30]
    assert client.get("/v1/models/bob/shared for use").json()["owned_by"] == "bob"
    assert client.get("/v1/models/bob/shared to see").status_code == 404
    assert client.get(f"/v1/models/agent:{seen_only.pk}").status_code == 404


def test_an_operator_exposes_a_catalog_model_by_name_to_the_roles_it_chooses(
    alice, operator, agent_type, model, fake_llm
):
    exposed_model_save(exposure=ExposedModel(name="fast-gpt", agent_type=agent_type, roles=["member"]), actor=operator)
    operators_key = make_key(operator, scopes=["agents:invoke"])
    client = api_client(key=make_key(alice, scopes=["agents:invoke"]))

    answer = chat(client, model="fast-gpt", text="no agent of my own")

    assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"] == "echo: no agent of my own"
    run = AgentRun.objects.get()
    assert (run.user, run.model_name) == (alice, "fake-gpt")
    assert "fast-gpt" in [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert chat(api_client(key=operators_key), model="fast-gpt").status_code == 404, "exposed to members only"
    assert "fast-gpt" not in [m["id"] for m in api_client(key=operators_key).get("/v1/models").json()["data"]]
    assert client.get("/v1/models/fast-gpt").json()["owned_by"] == "switchboard"
