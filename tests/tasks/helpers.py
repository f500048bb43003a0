"""Helpers the webhook tests share: registering an endpoint over the API."""

from tests.conftest import api_client


def register(user, url, events=("webhook.ping",)):
    response = api_client(user).post("/api/v1/webhooks", {"url": url, "events": list(events)}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()
