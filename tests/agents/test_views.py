"""The agents' browser pages: the list, an agent's page and its streamed chat, its settings, deletion,
sharing, its runs and one run; each as the owner (alice), a user it is shared with (bob) and an outsider
(charlie), who gets a 404 for what he may not see."""

import html
import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from accounts.services import object_share
from agents.models import Agent, AgentRun, AgentType, LanguageModel
from agents.services.agents import agent_create
from tests.agents.conftest import read_stream
from tests.conftest import api_client, make_user
from tests.factories import AgentFactory, RunFactory

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def parrot(alice):
    """Alice's agent on the built-in echo model: it answers "echo: <the message>"."""
    return agent_create(
        owner=alice, agent_type=AgentType.objects.get(slug="assistant"), name="Parrot", system_prompt="Repeat."
    )


def stream(client, agent, text):
    """The chat's streamed answer: (response, [(event, data)])."""
    response = client.post(reverse("agent_chat_stream", args=[agent.pk]), {"message": text})
    if response["Content-Type"] != "text/event-stream":
        return response, []
    blocks = [block for block in read_stream(response).split("\n\n") if block.strip()]
    events = []
    for block in blocks:
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return response, events


def text(response) -> str:
    """The page's visible text, roughly: tags dropped, entities read."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())))


# --- the list ------------------------------------------------------------------------------------------------


def test_the_list_shows_your_agents_and_those_shared_with_you_marked_with_who_shared_them_and_how(
    alice, bob, charlie, parrot
):
    viewed = AgentFactory(owner=bob, name="Bob's critic")
    used = AgentFactory(owner=charlie, name="Charlie's scribe")
    AgentFactory(owner=charlie, name="Charlie's secret")
    object_share(obj=viewed, owner=bob, user=alice, level="view")
    object_share(obj=used, owner=charlie, user=alice, level="use")

    page = text(signed_in(alice).get(reverse("agents")))

    assert "Parrot" in page and "Bob's critic" in page and "Charlie's scribe" in page
    assert "Charlie's secret" not in page
    assert "shared by bob (view only)" in page
    assert "shared by charlie (use: chat with it)" in page


def test_the_agent_list_makes_as_many_queries_for_thirty_agents_as_for_three(alice, bob, django_assert_max_num_queries):
    client = signed_in(alice)
    for n in range(3):
        object_share(obj=AgentFactory(owner=bob, name=f"shared {n}"), owner=bob, user=alice, level="use")
    client.get(reverse("agents"))  # the session and the content types are warm from here on
    with django_assert_max_num_queries(11) as few:
        client.get(reverse("agents"))
    for n in range(27):
        AgentFactory(owner=alice, name=f"mine {n}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(reverse("agents"))
    assert response.content.decode().count("shared by bob") == 3


def test_creating_an_agent_takes_a_type_and_a_model_of_the_catalog(alice):
    echo = LanguageModel.objects.get(name="echo")
    assistant = AgentType.objects.get(slug="assistant")
    response = signed_in(alice).post(
        reverse("agents"),
        {"name": "Helper", "agent_type": assistant.pk, "model": echo.pk, "use_memory": "on", "temperature": "0.2"},
    )

    agent = Agent.objects.get(owner=alice, name="Helper")
    assert response.status_code == 302 and response["Location"] == reverse("agent_chat", args=[agent.pk])
    assert (agent.model, agent.use_memory, agent.temperature) == (echo, True, 0.2)


def test_a_type_or_model_that_does_not_exist_and_out_of_range_numbers_are_refused_with_their_errors(alice):
    response = signed_in(alice).post(
        reverse("agents"),
        {"name": "Helper", "agent_type": "999999", "model": "999999", "temperature": "5", "max_tokens": "0"},
    )

    assert response.status_code == 400
    page = text(response)
    assert page.count("Select a valid choice") == 2
    assert "less than or equal to 2" in page
    assert "greater than or equal to 1" in page
    assert not Agent.objects.filter(owner=alice).exists()


def test_a_name_you_already_use_is_refused_on_the_name_field(alice, parrot):
    assistant = AgentType.objects.get(slug="assistant")

    response = signed_in(alice).post(reverse("agents"), {"name": "Parrot", "agent_type": assistant.pk})

    assert response.status_code == 400
    assert "You already have an agent with this name." in text(response)
    assert Agent.objects.filter(owner=alice).count() == 1


# --- who sees what ----------------------------------------------------------------------------------------------


@pytest.fixture
def cast(alice, bob, charlie, parrot):
    """alice owns Parrot; bob has it for use, dora to view; charlie has nothing. Alice made a run."""
    dora = make_user("dora")
    object_share(obj=parrot, owner=alice, user=bob, level="use")
    object_share(obj=parrot, owner=alice, user=dora, level="view")
    run = RunFactory(agent=parrot, user=alice, text="hello")
    return {"owner": alice, "user": bob, "viewer": dora, "outsider": charlie, "run": run}


PAGES = {
    # page: the status for (owner, shared for use, shared to view, outsider)
    "agent_chat": (200, 200, 200, 404),
    "agent_runs": (200, 200, 200, 404),
    "agent_edit": (200, 404, 404, 404),
    "agent_delete": (200, 404, 404, 404),
}


@pytest.mark.parametrize("name", PAGES)
def test_each_page_of_an_agent_answers_by_who_asks(cast, parrot, name):
    statuses = tuple(
        signed_in(cast[who]).get(reverse(name, args=[parrot.pk])).status_code
        for who in ("owner", "user", "viewer", "outsider")
    )
    assert statuses == PAGES[name]


def test_a_run_is_seen_by_the_one_who_made_it_alone(cast):
    statuses = [
        signed_in(cast[who]).get(reverse("agent_run", args=[cast["run"].pk])).status_code
        for who in ("owner", "user", "viewer", "outsider")
    ]
    assert statuses == [200, 404, 404, 404]


def test_a_missing_agent_is_a_404_like_one_you_may_not_see(alice):
    assert signed_in(alice).get(reverse("agent_chat", args=[999999])).status_code == 404


def test_the_owner_sees_edit_share_and_delete_and_the_others_only_what_their_share_allows(cast, parrot):
    owner, user, viewer = (text(signed_in(cast[who]).get(reverse("agent_chat", args=[parrot.pk]))) for who in
                           ("owner", "user", "viewer"))  # fmt: skip

    assert all(words in owner for words in ("Edit", "Sharing", "Delete", "Send", "Stop sharing"))
    assert "bob use" in owner and "dora view" in owner
    assert "Send" in user and "shared with you by alice (use)" in user
    assert not any(words in user for words in ("Edit", "Stop sharing", "Delete"))
    assert "Send" not in viewer and "shared this agent with you to view" in viewer
    assert not any(words in viewer for words in ("Edit", "Stop sharing", "Delete"))


def test_a_user_it_is_shared_with_to_view_may_not_chat_with_it(cast, parrot):
    client = signed_in(cast["viewer"])

    posted = client.post(reverse("agent_chat", args=[parrot.pk]), {"message": "hello"})
    streamed, _ = stream(client, parrot, "hello")

    assert (posted.status_code, streamed.status_code) == (404, 404)
    assert not AgentRun.objects.filter(user=cast["viewer"]).exists()


def test_shared_users_and_outsiders_cannot_change_share_or_delete_it(cast, parrot):
    for who in ("user", "viewer", "outsider"):
        client = signed_in(cast[who])
        answers = [
            client.post(reverse("agent_edit", args=[parrot.pk]), {"name": "Mine", "agent_type": parrot.agent_type_id}),
            client.post(reverse("agent_delete", args=[parrot.pk])),
            client.post(reverse("agent_share", args=[parrot.pk]), {"share-username": who, "share-level": "use"}),
            client.post(reverse("agent_unshare", args=[parrot.pk, "bob"])),
        ]
        assert [answer.status_code for answer in answers] == [404] * 4, who
    parrot.refresh_from_db()
    assert parrot.name == "Parrot"
    assert text(signed_in(cast["user"]).get(reverse("agent_chat", args=[parrot.pk]))).count("Send") == 1


def test_a_viewer_role_may_not_change_even_its_own_agent(parrot):
    vera = make_user("vera", role="viewer")
    mine = AgentFactory(owner=vera, name="kept")  # made before the role lost the right
    client = signed_in(vera)

    assert client.get(reverse("agent_edit", args=[mine.pk])).status_code == 403
    assert client.post(reverse("agent_delete", args=[mine.pk])).status_code == 403
    assert Agent.objects.filter(pk=mine.pk).exists()


# --- settings -----------------------------------------------------------------------------------------------------


def test_the_owner_edits_every_field_memory_included_and_the_version_moves_on(alice, parrot):
    echo = LanguageModel.objects.get(name="echo")
    client = signed_in(alice)
    page = text(client.get(reverse("agent_edit", args=[parrot.pk])))
    assert "Use memory" in page and "Repeat." in page

    response = client.post(
        reverse("agent_edit", args=[parrot.pk]),
        {
            "name": "Parrot II",
            "agent_type": parrot.agent_type_id,
            "model": echo.pk,
            "system_prompt": "Repeat, loudly.",
            "temperature": "1.5",
            "max_tokens": "64",
            "use_memory": "on",
        },
    )

    assert response.status_code == 302
    parrot.refresh_from_db()
    assert (parrot.name, parrot.model, parrot.system_prompt) == ("Parrot II", echo, "Repeat, loudly.")
    assert (parrot.temperature, parrot.max_tokens, parrot.use_memory, parrot.version) == (1.5, 64, True, 2)


def test_a_model_switched_off_since_stays_chosen_on_its_agents_settings_and_is_not_offered_to_others(alice, parrot):
    retired = LanguageModel.objects.create(
        name="retired", provider=LanguageModel.objects.get(name="echo").provider, provider_model="old", is_active=False
    )
    Agent.objects.filter(pk=parrot.pk).update(model=retired)
    client = signed_in(alice)

    edit = client.get(reverse("agent_edit", args=[parrot.pk])).content.decode()
    create = client.get(reverse("agents")).content.decode()

    assert re.search(rf'<option value="{retired.pk}" selected>retired', edit)
    assert f'<option value="{retired.pk}"' not in create


def test_a_rename_alone_keeps_the_version_and_cached_answers(alice, parrot):
    signed_in(alice).post(
        reverse("agent_edit", args=[parrot.pk]),
        {"name": "Polly", "agent_type": parrot.agent_type_id, "system_prompt": "Repeat."},
    )
    parrot.refresh_from_db()
    assert (parrot.name, parrot.version) == ("Polly", 1)


def test_bad_settings_are_shown_on_the_form_and_change_nothing(alice, parrot):
    AgentFactory(owner=alice, name="Taken")

    response = signed_in(alice).post(
        reverse("agent_edit", args=[parrot.pk]),
        {"name": "Taken", "agent_type": parrot.agent_type_id, "model": "999999", "temperature": "-1"},
    )

    assert response.status_code == 400
    page = text(response)
    assert "Select a valid choice" in page and "greater than or equal to 0" in page
    parrot.refresh_from_db()
    assert (parrot.name, parrot.version, parrot.temperature) == ("Parrot", 1, None)


def test_a_name_taken_by_another_of_your_agents_is_said_on_the_name_field(alice, parrot):
    AgentFactory(owner=alice, name="Taken")
    response = signed_in(alice).post(
        reverse("agent_edit", args=[parrot.pk]), {"name": "Taken", "agent_type": parrot.agent_type_id}
    )
    assert response.status_code == 400 and "You already have an agent with this name." in text(response)
    assert "Edit Parrot" in text(response)


# --- deletion -------------------------------------------------------------------------------------------------


def test_deleting_asks_first_and_happens_on_the_post_alone_with_its_runs_and_shares(cast, parrot):
    client = signed_in(cast["owner"])

    asked = client.get(reverse("agent_delete", args=[parrot.pk]))
    assert asked.status_code == 200 and "Delete Parrot?" in text(asked) and "1 run " in text(asked)
    assert Agent.objects.filter(pk=parrot.pk).exists()

    done = client.post(reverse("agent_delete", args=[parrot.pk]))

    assert done.status_code == 302 and done["Location"] == reverse("agents")
    assert not Agent.objects.filter(pk=parrot.pk).exists()
    assert not AgentRun.objects.filter(agent_id=parrot.pk).exists()
    assert "Parrot" not in text(signed_in(cast["user"]).get(reverse("agents")))


# --- sharing ---------------------------------------------------------------------------------------------------


def test_the_owner_shares_by_username_and_stops_sharing(alice, bob, parrot):
    owner, friend = signed_in(alice), signed_in(bob)

    owner.post(reverse("agent_share", args=[parrot.pk]), {"share-username": "bob", "share-level": "use"})
    assert "shared by alice (use: chat with it)" in text(friend.get(reverse("agents")))
    _, events = stream(friend, parrot, "hi")
    assert events[-1][0] == "done"

    owner.post(reverse("agent_share", args=[parrot.pk]), {"share-username": "bob", "share-level": "view"})
    assert "shared by alice (view only)" in text(friend.get(reverse("agents")))
    assert stream(friend, parrot, "hi again")[0].status_code == 404

    gone = owner.post(reverse("agent_unshare", args=[parrot.pk, "bob"]))
    assert gone.status_code == 302 and gone["Location"].endswith("#sharing")
    assert friend.get(reverse("agent_chat", args=[parrot.pk])).status_code == 404
    assert "Not shared with anyone." in text(owner.get(reverse("agent_chat", args=[parrot.pk])))


def test_sharing_with_nobody_or_with_yourself_is_refused_with_a_message(alice, parrot):
    owner = signed_in(alice)

    unknown = owner.post(
        reverse("agent_share", args=[parrot.pk]), {"share-username": "nobody", "share-level": "use"}, follow=True
    )
    yourself = owner.post(
        reverse("agent_share", args=[parrot.pk]), {"share-username": "alice", "share-level": "use"}, follow=True
    )
    bad_level = owner.post(
        reverse("agent_share", args=[parrot.pk]), {"share-username": "alice", "share-level": "admin"}, follow=True
    )

    assert "No such user." in text(unknown)
    assert "You already own this object." in text(yourself)
    assert "Select a valid choice" in text(bad_level)
    assert "Not shared with anyone." in text(bad_level)


# --- the chat ---------------------------------------------------------------------------------------------------


def test_the_chat_streams_the_answer_records_the_run_and_keeps_the_conversation(alice, parrot):
    client = signed_in(alice)

    response, events = stream(client, parrot, "Hello, parrot")

    assert response.status_code == 200 and response["Cache-Control"] == "no-cache"
    assert "".join(data["text"] for event, data in events if event == "delta") == "echo: Hello, parrot"
    done = events[-1][1]
    run = AgentRun.objects.get(user=alice)
    assert run.streamed and run.output == "echo: Hello, parrot"
    assert (done["cache"], done["url"]) == ("MISS", reverse("agent_run", args=[run.pk]))
    page = text(client.get(reverse("agent_chat", args=[parrot.pk])))
    assert "Hello, parrot" in page and "echo: Hello, parrot" in page

    _, again = stream(client, parrot, "And again")
    assert AgentRun.objects.filter(user=alice).latest("created_at").input[-3:] == [
        {"role": "user", "content": "Hello, parrot"},
        {"role": "assistant", "content": "echo: Hello, parrot"},
        {"role": "user", "content": "And again"},
    ]


def test_an_empty_message_is_a_400_with_the_reason(alice, parrot):
    response, _ = stream(signed_in(alice), parrot, "   ")
    assert response.status_code == 400 and "required" in response.json()["error"]
    assert not AgentRun.objects.exists()


def test_a_refused_message_is_said_and_recorded_as_refused(alice, parrot, settings):
    settings.CONTENT_BLOCKLIST = [r"\bforbidden\b"]
    response, _ = stream(signed_in(alice), parrot, "say the forbidden word")
    assert response.status_code == 422 and response.json()["error"]
    assert AgentRun.objects.get().status == "refused"


def test_without_script_the_chat_posts_and_shows_the_whole_answer(alice, parrot):
    client = signed_in(alice)

    response = client.post(reverse("agent_chat", args=[parrot.pk]), {"message": "Hello"}, follow=True)

    assert "echo: Hello" in text(response)
    assert AgentRun.objects.get(user=alice).cache == "MISS"


def test_an_answer_with_a_script_tag_is_shown_as_text_everywhere(alice, parrot):
    client = signed_in(alice)
    attack = "<script>alert('owned')</script>"
    stream(client, parrot, attack)
    run = AgentRun.objects.get()

    for url in (reverse("agent_chat", args=[parrot.pk]), reverse("agent_run", args=[run.pk])):
        page = client.get(url).content.decode()
        assert "<script>alert" not in page, url
        assert "&lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt;" in page, url


# --- runs -------------------------------------------------------------------------------------------------------


def test_the_runs_page_lists_your_runs_newest_first_in_pages(alice, bob, parrot):
    object_share(obj=parrot, owner=alice, user=bob, level="use")
    for n in range(27):
        RunFactory(agent=parrot, user=alice, text=f"question {n}")
    RunFactory(agent=parrot, user=bob, text="bob's own question")
    client = signed_in(alice)

    first = client.get(reverse("agent_runs", args=[parrot.pk]))
    newest = list(AgentRun.objects.filter(user=alice).order_by("-created_at").values_list("pk", flat=True))
    links = re.findall(r'href="/agents/runs/([0-9a-f-]+)/"', first.content.decode())
    assert [str(pk) for pk in newest[:25]] == links
    older = re.search(r'href="([^"]+)">Older</a>', first.content.decode()).group(1).replace("&amp;", "&")

    second = client.get(older)

    links = re.findall(r'href="/agents/runs/([0-9a-f-]+)/"', second.content.decode())
    assert [str(pk) for pk in newest[25:]] == links
    assert "Newer" in second.content.decode() and "Older" not in second.content.decode()
    assert "HIT" in text(second) or "MISS" in text(second)


def test_a_page_the_list_never_gave_is_a_400(alice, parrot):
    response = signed_in(alice).get(reverse("agent_runs", args=[parrot.pk]) + "?cursor=forged")
    assert response.status_code == 400 and "not a page of this list" in text(response)


def test_the_runs_page_makes_as_many_queries_for_many_runs_as_for_a_few(alice, parrot, django_assert_max_num_queries):
    client = signed_in(alice)
    for n in range(3):
        RunFactory(agent=parrot, user=alice, text=f"q{n}")
    client.get(reverse("agent_runs", args=[parrot.pk]))
    with django_assert_max_num_queries(6) as few:
        client.get(reverse("agent_runs", args=[parrot.pk]))
    for n in range(30):
        RunFactory(agent=parrot, user=alice, text=f"more {n}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(reverse("agent_runs", args=[parrot.pk]))


def test_the_runs_table_shows_status_cache_tokens_cost_latency_and_time(alice, parrot):
    RunFactory(agent=parrot, user=alice, text="same")
    RunFactory(agent=parrot, user=alice, text="same")  # the second is served from the cache

    page = text(signed_in(alice).get(reverse("agent_runs", args=[parrot.pk])))

    assert "MISS" in page and "HIT" in page and "Succeeded" in page
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", page)
    assert re.search(r"\d+ / \d+", page) and " ms" in page and "0.000000" in page


def test_a_run_shows_its_input_output_tool_calls_and_metadata_as_text_and_pretty_json(alice, agent, fake_llm):
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    answer = api_client(alice).post(
        f"/api/v1/agents/{agent.pk}/invoke",
        {
            "messages": [{"role": "user", "content": 'Use get_weather {"city": "Paris"}'}],
            "tools": [weather],
            "metadata": {"team": "data"},
        },
        format="json",
    )
    run = AgentRun.objects.get(pk=answer.json()["run"])

    page = signed_in(alice).get(reverse("agent_run", args=[run.pk])).content.decode()

    assert "Use get_weather {&quot;city&quot;: &quot;Paris&quot;}" in page  # text as text, escaped
    assert '<pre class="json">[\n  {\n' in page  # the tool calls, indented
    assert "&quot;name&quot;: &quot;get_weather&quot;" in page
    assert "{\n  &quot;team&quot;: &quot;data&quot;\n}" in page
    assert "{'" not in page  # no Python repr
