import threading
import time
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection

from agents.models import AgentRun, AgentType
from agents.services.agents import agent_update
from agents.services.invocation import agent_invoke
from tests.agents.conftest import ask
from tests.conftest import api_client, make_key, make_user
from tests.isolation import assert_isolated


@pytest.mark.django_db
def test_an_invocation_answers_and_records_tokens_and_cost_from_the_catalog_price(alice, agent, fake_llm):
    response = ask(api_client(alice), agent, "hello there")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["output"] == "echo: hello there" and response["X-Cache"] == "MISS"
    run = AgentRun.objects.get(pk=body["run"])
    # prompt: "Be brief." (2 words) + "hello there" (2); answer: 3 words
    assert (run.input_tokens, run.output_tokens) == (4, 3)
    assert run.cost == Decimal("0.00004000")  # (4 * 2.50 + 3 * 10.00) / 1e6
    assert (run.status, run.cache, run.model_name, run.agent_version) == ("succeeded", "MISS", "fake-gpt", 1)
    assert fake_llm.requests[0]["body"]["messages"][0] == {"role": "system", "content": "Be brief."}


@pytest.mark.django_db
def test_the_same_question_is_answered_from_the_cache_costing_no_tokens(alice, agent, fake_llm):
    client = api_client(alice)
    ask(client, agent)

    again = ask(client, agent)

    assert again["X-Cache"] == "HIT" and again.json()["output"] == "echo: hello there"
    assert fake_llm.chat_calls() == 1
    run = AgentRun.objects.get(pk=again.json()["run"])
    assert (run.cache, run.input_tokens, run.output_tokens, run.cost) == ("HIT", 0, 0, 0)


@pytest.mark.django_db
def test_the_cache_key_holds_what_changes_the_answer_and_nothing_else(alice, bob, agent, agent_type, fake_llm):
    client = api_client(alice)
    assert ask(client, agent, "one")["X-Cache"] == "MISS"
    assert ask(client, agent, "two")["X-Cache"] == "MISS", "other messages"
    agent_update(agent=agent, name="renamed")
    assert ask(client, agent, "one")["X-Cache"] == "HIT", "the name does not shape the answer"
    agent_update(agent=agent, temperature=0.1)
    assert agent.version == 2
    assert ask(client, agent, "one")["X-Cache"] == "MISS", "a new configuration"

    from accounts.services import object_share

    object_share(obj=agent, owner=alice, user=bob, level="use")
    assert ask(api_client(bob), agent, "one")["X-Cache"] == "MISS", "per-user scope: bob gets his own answer"
    AgentType.objects.filter(pk=agent_type.pk).update(cache_scope="shared")
    agent.refresh_from_db()
    ask(client, agent, "three")
    assert ask(api_client(bob), agent, "three")["X-Cache"] == "HIT", "shared scope"


@pytest.mark.django_db
def test_ttl_per_agent_type_and_zero_turns_caching_off(alice, agent, agent_type, fake_llm):
    client = api_client(alice)
    AgentType.objects.filter(pk=agent_type.pk).update(cache_ttl_seconds=1)
    ask(client, agent)
    assert ask(client, agent)["X-Cache"] == "HIT"
    time.sleep(1.1)
    assert ask(client, agent)["X-Cache"] == "MISS"

    AgentType.objects.filter(pk=agent_type.pk).update(cache_ttl_seconds=0)
    assert [ask(client, agent)["X-Cache"] for _ in range(2)] == ["BYPASS", "BYPASS"]


@pytest.mark.django_db
def test_cache_control_no_cache_bypasses_the_cache(alice, agent, fake_llm):
    client = api_client(alice)
    ask(client, agent)

    bypass = ask(client, agent, HTTP_CACHE_CONTROL="no-cache")

    assert bypass["X-Cache"] == "BYPASS" and fake_llm.chat_calls() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_identical_misses_make_one_provider_call(alice, agent, fake_llm):
    fake_llm.latency = 0.5
    outcomes, barrier = [], threading.Barrier(5)

    def invoke():
        barrier.wait()
        try:
            result = agent_invoke(user=alice, agent=agent, messages=[{"role": "user", "content": "same"}])
            outcomes.append(result.cache)
        finally:
            connection.close()

    threads = [threading.Thread(target=invoke) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert fake_llm.chat_calls() == 1
    assert sorted(outcomes) == ["HIT", "HIT", "HIT", "HIT", "MISS"]


@pytest.mark.django_db
def test_an_expired_answer_is_served_marked_stale_while_the_provider_is_down(alice, agent, agent_type, fake_llm):
    client = api_client(alice)
    AgentType.objects.filter(pk=agent_type.pk).update(cache_ttl_seconds=1)
    ask(client, agent)
    time.sleep(1.1)
    fake_llm.failures = [500]

    stale = ask(client, agent)

    assert stale.status_code == 200 and stale["X-Cache"] == "STALE"
    assert stale.json()["output"] == "echo: hello there"
    fake_llm.failures = [500]
    assert ask(client, agent, "never asked").status_code == 502, "no stale answer to fall back on"


@pytest.mark.django_db
@pytest.mark.parametrize("scope", ["entry", "agent", "agent_type", "all"])
def test_each_invalidation_scope_drops_the_cached_answer(alice, agent, fake_llm, scope):
    client = api_client(alice)
    first = ask(client, agent)
    body = {
        "entry": {"scope": "entry", "key": first["X-Cache-Key"]},
        "agent": {"scope": "agent", "agent": agent.pk},
        "agent_type": {"scope": "agent_type", "agent_type": "helper"},
        "all": {"scope": "all"},
    }[scope]

    assert api_client(alice).post("/api/v1/cache/invalidate", body, format="json").status_code == 403
    response = api_client(make_user("olga", role="operator")).post("/api/v1/cache/invalidate", body, format="json")

    assert response.status_code == 204
    assert ask(client, agent)["X-Cache"] == "MISS"


@pytest.mark.django_db
def test_the_invalidation_command(alice, agent, fake_llm):
    client = api_client(alice)
    ask(client, agent)

    call_command("cache_invalidate", "--agent-type", "helper")

    assert ask(client, agent)["X-Cache"] == "MISS"


@pytest.mark.django_db
def test_a_cache_outage_never_fails_a_request(alice, agent, fake_llm, settings, tmp_path):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"unix://{tmp_path}/no-redis.sock",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.1, "SOCKET_TIMEOUT": 0.1},
        }
    }

    responses = [ask(api_client(alice), agent) for _ in range(2)]

    assert [(r.status_code, r["X-Cache"]) for r in responses] == [(200, "BYPASS"), (200, "BYPASS")]
    assert fake_llm.chat_calls() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    "failure, status",
    [([500], 502), ([429], 503), ([400], 400)],
)
def test_provider_errors_become_clear_statuses_and_are_never_cached(alice, agent, fake_llm, failure, status):
    fake_llm.failures = failure

    response = ask(api_client(alice), agent)

    assert response.status_code == status
    assert response.json()["errors"][0]["code"] == "provider_error"
    assert "injected" not in str(response.json()), "the provider's own words stay in the log"
    if status == 503:
        assert "Retry-After" in response
    run = AgentRun.objects.get()
    assert run.status == "failed" and run.cost == 0
    assert ask(api_client(alice), agent)["X-Cache"] == "MISS", "an error was cached"


@pytest.mark.django_db
def test_an_unreachable_provider_is_a_503_and_a_slow_one_a_504(alice, agent, model, fake_llm):
    fake_llm.latency = 1.5
    model.provider.timeout_seconds = 1
    model.provider.save()
    assert ask(api_client(alice), agent).status_code == 504

    model.provider.base_url = "http://127.0.0.1:9/v1"
    model.provider.save()
    assert ask(api_client(alice), agent, "other").status_code == 503


@pytest.mark.django_db
def test_the_breaker_opens_after_repeated_failures_fails_fast_then_closes(alice, agent, fake_llm, settings):
    settings.BREAKER_FAILURES, settings.BREAKER_OPEN_SECONDS = 2, 1
    client = api_client(alice)
    fake_llm.failures = [500, 500]
    assert [ask(client, agent, f"q{n}").status_code for n in range(2)] == [502, 502]

    calls = fake_llm.chat_calls()
    open_response = ask(client, agent, "q3")
    assert open_response.status_code == 503 and fake_llm.chat_calls() == calls, "the open breaker called anyway"
    assert int(open_response["Retry-After"]) >= 1

    time.sleep(1.1)
    assert ask(client, agent, "q4").status_code == 200, "the trial call after the pause"
    assert ask(client, agent, "q5").status_code == 200


@pytest.mark.django_db
def test_a_content_guard_refusal_is_a_422_and_is_never_cached(alice, agent, fake_llm, settings):
    settings.CONTENT_BLOCKLIST = [r"\bforbidden\b"]

    refused_input = ask(api_client(alice), agent, "a forbidden question")
    fake_llm.reply = "that is forbidden knowledge"
    refused_answer = ask(api_client(alice), agent, "innocent")

    assert refused_input.status_code == 422 and fake_llm.chat_calls() == 1
    assert refused_answer.status_code == 422
    assert list(AgentRun.objects.values_list("status", "output")) == [("refused", ""), ("refused", "")]
    fake_llm.reply = None
    assert ask(api_client(alice), agent, "innocent")["X-Cache"] == "MISS"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{"role": "assistant", "content": "hi"}],
        [{"role": "user", "content": "   "}],
        [{"role": "robot", "content": "x"}],
    ],
)
def test_bad_conversations_get_a_400_and_call_nothing(alice, agent, fake_llm, messages):
    response = api_client(alice).post(f"/api/v1/agents/{agent.pk}/invoke", {"messages": messages}, format="json")

    assert response.status_code == 400
    assert fake_llm.chat_calls() == 0 and not AgentRun.objects.exists()


@pytest.mark.django_db
def test_a_run_retried_with_the_same_idempotency_key_is_recorded_and_charged_once(alice, agent, fake_llm):
    messages = [{"role": "user", "content": "once"}]

    first = agent_invoke(user=alice, agent=agent, messages=messages, idempotency_key="task-1", bypass_cache=True)
    again = agent_invoke(user=alice, agent=agent, messages=messages, idempotency_key="task-1", bypass_cache=True)

    assert first.run.pk == again.run.pk and fake_llm.chat_calls() == 1
    assert {k.lower(): v for k, v in fake_llm.requests[0]["headers"].items()}["idempotency-key"] == "task-1"


@pytest.mark.django_db
def test_streaming_sends_server_sent_events_records_the_run_and_replays_from_the_cache(alice, agent, fake_llm):
    client = api_client(alice)

    def stream(text):
        response = client.post(
            f"/api/v1/agents/{agent.pk}/invoke",
            {"messages": [{"role": "user", "content": text}], "stream": True},
            format="json",
        )
        assert response["Content-Type"] == "text/event-stream"
        return response, b"".join(response.streaming_content).decode()

    first, body = stream("tell me more")
    deltas = [line[len("data: ") :] for line in body.splitlines() if line.startswith("data: ") and '"text"' in line]
    assert "".join(__import__("json").loads(d)["text"] for d in deltas) == "echo: tell me more"
    assert "event: done" in body and first["X-Cache"] == "MISS"
    run = AgentRun.objects.get()
    assert run.streamed and run.output == "echo: tell me more" and run.output_tokens == 4

    second, replay = stream("tell me more")
    assert second["X-Cache"] == "HIT" and "echo: " in replay and fake_llm.chat_calls() == 1


@pytest.mark.django_db
def test_agents_and_runs_of_others_are_404s_and_a_viewer_reads_but_cannot_invoke(alice, charlie, agent, fake_llm):
    run_id = ask(api_client(alice), agent).json()["run"]

    assert_isolated(
        detail_url=f"/api/v1/agents/{agent.pk}",
        owner=alice,
        outsider=charlie,
        writes=[
            ("patch", f"/api/v1/agents/{agent.pk}"),
            ("delete", f"/api/v1/agents/{agent.pk}"),
            ("post", f"/api/v1/agents/{agent.pk}/invoke"),
        ],
        list_url="/api/v1/agents",
        outsider_key=make_key(charlie, scopes=["agents:read", "agents:write", "agents:invoke"]),
    )
    assert_isolated(
        detail_url=f"/api/v1/runs/{run_id}", owner=alice, outsider=charlie, list_url="/api/v1/runs", object_id=run_id
    )

    viewer = make_user("vic", role="viewer")
    from accounts.services import object_share

    object_share(obj=agent, owner=alice, user=viewer, level="use")
    assert api_client(viewer).get(f"/api/v1/agents/{agent.pk}").status_code == 200
    assert ask(api_client(viewer), agent).status_code == 403


@pytest.mark.django_db
def test_a_key_needs_the_invoke_scope(alice, agent, fake_llm):
    reader = make_key(alice, scopes=["agents:read"])
    invoker = make_key(alice, scopes=["agents:invoke"])

    assert ask(api_client(key=reader), agent).status_code == 403
    response = ask(api_client(key=invoker), agent)
    assert response.status_code == 200
    assert AgentRun.objects.get().api_key.prefix == invoker[: len("sb_") + 12]


@pytest.mark.django_db(transaction=True)
def test_an_async_invocation_answers_202_and_the_worker_records_one_run(celery_worker, alice, agent, fake_llm):
    from tasks.models import TaskRecord
    from tests.tasks.conftest import wait_until

    client = api_client(alice)
    response = client.post(
        f"/api/v1/agents/{agent.pk}/invoke?async=1", {"messages": [{"role": "user", "content": "later"}]}, format="json"
    )

    assert response.status_code == 202
    task_id = response.json()["id"]
    wait_until(lambda: TaskRecord.objects.get(pk=task_id).is_finished)
    task = client.get(response["Location"]).json()
    assert task["status"] == "succeeded" and task["result"]["output"] == "echo: later"
    run = AgentRun.objects.get()
    assert str(run.pk) == task["result"]["run"] and run.idempotency_key == task_id


@pytest.mark.django_db
def test_an_anthropic_provider_is_driven_through_its_sdk_plain_and_streamed(alice, fake_llm):
    from agents.models import LanguageModel, Provider
    from agents.services.agents import agent_create

    provider = Provider.objects.create(
        name="claude", kind=Provider.Kind.ANTHROPIC, base_url=fake_llm.base_url.removesuffix("/v1"), max_retries=0
    )
    model = LanguageModel.objects.create(
        name="claude-fake",
        provider=provider,
        provider_model="claude-x",
        input_price_per_mtok=Decimal("3"),
        output_price_per_mtok=Decimal("15"),
    )
    agent_type = AgentType.objects.create(slug="claude-type", default_model=model, cache_ttl_seconds=0)
    agent = agent_create(owner=alice, agent_type=agent_type, name="claude", system_prompt="Be brief.")
    client = api_client(alice)

    plain = ask(client, agent, "hello there")
    streamed = client.post(
        f"/api/v1/agents/{agent.pk}/invoke",
        {"messages": [{"role": "user", "content": "stream me"}], "stream": True},
        format="json",
    )
    body = b"".join(streamed.streaming_content).decode()

    assert plain.status_code == 200 and plain.json()["output"] == "echo: hello there"
    sent = fake_llm.requests[0]["body"]
    assert sent["system"] == "Be brief." and sent["messages"] == [{"role": "user", "content": "hello there"}]
    run = AgentRun.objects.get(pk=plain.json()["run"])
    assert (run.input_tokens, run.output_tokens, run.cost) == (4, 3, Decimal("0.00005700"))
    assert "event: done" in body and AgentRun.objects.get(streamed=True).output == "echo: stream me"


def stream_body(client, agent, text):
    client.raise_request_exception = False
    response = client.post(
        f"/api/v1/agents/{agent.pk}/invoke",
        {"messages": [{"role": "user", "content": text}], "stream": True},
        format="json",
    )
    return response, b"".join(response.streaming_content).decode()


@pytest.mark.django_db
def test_a_streamed_answer_stops_before_a_refused_word_is_sent(alice, agent, fake_llm, settings):
    settings.CONTENT_BLOCKLIST = [r"\bsecret\b"]
    fake_llm.reply = "the secret plan is X"

    _, body = stream_body(api_client(alice), agent, "tell me")

    assert '"the "' in body and "secret" not in body.replace("content policy", "")
    assert "event: error" in body and '"refused"' in body
    assert AgentRun.objects.get().status == "refused"


@pytest.mark.django_db
def test_a_stream_the_provider_cuts_off_is_an_error_and_is_not_cached(alice, agent, fake_llm):
    fake_llm.cut_stream_after = 2

    _, body = stream_body(api_client(alice), agent, "tell me more")

    assert "event: error" in body and "event: done" not in body
    run = AgentRun.objects.get()
    assert run.status == "failed" and run.output_tokens == 2, "the partial answer is still recorded and charged"
    fake_llm.cut_stream_after = None
    assert stream_body(api_client(alice), agent, "tell me more")[0]["X-Cache"] == "MISS"


@pytest.mark.django_db
def test_streams_refused_by_an_open_breaker_do_not_keep_it_open(alice, agent, fake_llm, settings):
    settings.BREAKER_FAILURES, settings.BREAKER_OPEN_SECONDS = 1, 1
    fake_llm.failures = [500]
    assert ask(api_client(alice), agent, "boom").status_code == 502

    for n in range(3):
        _, body = stream_body(api_client(alice), agent, f"while open {n}")
        assert '"status": 503' in body
    time.sleep(1.1)

    assert ask(api_client(alice), agent, "after the pause").status_code == 200


@pytest.mark.django_db
def test_an_async_invocation_with_refused_input_is_a_422_not_a_500(alice, agent, fake_llm, settings):
    settings.CONTENT_BLOCKLIST = ["forbidden"]
    client = api_client(alice)

    response = client.post(
        f"/api/v1/agents/{agent.pk}/invoke?async=1",
        {"messages": [{"role": "user", "content": "forbidden"}]},
        format="json",
    )

    assert response.status_code == 422


@pytest.mark.django_db
def test_filtering_runs_by_someone_elses_agent_looks_like_an_unknown_agent(alice, bob, agent, fake_llm):
    ask(api_client(alice), agent)

    others = api_client(bob).get(f"/api/v1/runs?agent={agent.pk}")
    unknown = api_client(bob).get("/api/v1/runs?agent=999999")

    assert others.status_code == unknown.status_code == 200
    assert others.json()["results"] == unknown.json()["results"] == []


def test_a_provider_key_variable_must_be_an_api_key_name():
    from django.core.exceptions import ValidationError

    from agents.models import Provider

    for name in ("SECRET_KEY", "DATABASE_URL", "openai_api_key"):
        with pytest.raises(ValidationError):
            Provider(name="p", kind="openai", api_key_env=name).full_clean(exclude=["name"])
    Provider(name="p", kind="openai", api_key_env="OPENAI_API_KEY").full_clean(validate_unique=False)
