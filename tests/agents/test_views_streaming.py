"""The chat's stream through the production web server (gunicorn with uvicorn workers, ASGI), as a browser
sends it: a session cookie and a CSRF token."""

import json

import httpx
import pytest
from django.test import Client
from django.urls import reverse

from agents.models import AgentRun, AgentType
from agents.services.agents import agent_create
from tests.processes import GunicornProcess

pytestmark = pytest.mark.django_db(transaction=True)
CSRF = "a" * 32


@pytest.fixture
def web(tmp_path):
    server = GunicornProcess(tmp_path / "gunicorn.log", workers=1)
    server.wait_for_log("Booting worker", timeout=30)
    yield server
    server.stop()


def browser_of(user, web) -> httpx.Client:
    signed_in = Client()
    signed_in.force_login(user)  # a session row, as a login makes
    cookies = {"sessionid": signed_in.cookies["sessionid"].value, "csrftoken": CSRF}
    return httpx.Client(base_url=web.url, cookies=cookies, headers={"X-CSRFToken": CSRF}, timeout=30)


def test_the_chat_streams_through_the_asgi_server_and_keeps_the_conversation_in_the_session(web, alice):
    parrot = agent_create(owner=alice, agent_type=AgentType.objects.get(slug="assistant"), name="Parrot")
    browser = browser_of(alice, web)
    url = reverse("agent_chat_stream", args=[parrot.pk])

    with browser.stream("POST", url, data={"message": "Hello, parrot"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        events = [block for block in response.read().decode().split("\n\n") if block]

    deltas = [json.loads(block.split("data: ", 1)[1])["text"] for block in events if block.startswith("event: delta")]
    assert "".join(deltas) == "echo: Hello, parrot" and len(deltas) > 1
    assert events[-1].startswith("event: done")
    assert AgentRun.objects.get(user=alice).streamed
    page = browser.get(reverse("agent_chat", args=[parrot.pk])).text
    assert "echo: Hello, parrot" in page  # the session kept the answer

    with browser.stream("POST", url, data={"message": "Again"}) as response:
        response.read()
    assert AgentRun.objects.filter(user=alice).latest("created_at").input[-2:] == [
        {"role": "assistant", "content": "echo: Hello, parrot"},
        {"role": "user", "content": "Again"},
    ]


def test_a_stream_without_the_csrf_token_is_refused(web, alice):
    parrot = agent_create(owner=alice, agent_type=AgentType.objects.get(slug="assistant"), name="Parrot")
    browser = browser_of(alice, web)
    del browser.headers["X-CSRFToken"]

    response = browser.post(reverse("agent_chat_stream", args=[parrot.pk]), data={"message": "Hello"})

    assert response.status_code == 403
    assert not AgentRun.objects.exists()
