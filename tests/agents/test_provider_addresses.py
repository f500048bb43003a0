"""Providers' base URLs go through the outbound guard: no private, loopback or metadata address unless a
setting allows it (development allows them, for local model servers)."""

import pytest
from django.core.exceptions import ValidationError

from agents.models import Provider
from tests.agents.conftest import ask
from tests.conftest import api_client


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest", "http://127.0.0.1:11434/v1", "http://10.1.2.3/v1", "http://[::1]/v1"]
)
def test_a_provider_at_an_internal_address_is_refused_unless_allowed(settings, url):
    settings.PROVIDER_ALLOW_PRIVATE_NETWORKS = False
    provider = Provider(name="internal", kind="openai", base_url=url)

    with pytest.raises(ValidationError) as refused:
        provider.full_clean()
    assert "non-public address" in str(refused.value)

    settings.PROVIDER_ALLOW_PRIVATE_NETWORKS = True
    provider.full_clean()


@pytest.mark.django_db
def test_a_named_host_may_be_private(settings):
    settings.PROVIDER_ALLOW_PRIVATE_NETWORKS = False
    settings.PROVIDER_ALLOWED_HOSTS = ["127.0.0.1:11434"]

    Provider(name="ollama", kind="openai", base_url="http://127.0.0.1:11434/v1").full_clean()
    with pytest.raises(ValidationError):
        Provider(name="other", kind="openai", base_url="http://127.0.0.1:6379/v1").full_clean()


@pytest.mark.django_db
def test_a_provider_saved_before_is_checked_again_when_called(alice, agent, fake_llm, settings):
    settings.PROVIDER_ALLOW_PRIVATE_NETWORKS = False  # the fake provider listens on 127.0.0.1

    response = ask(api_client(alice), agent)

    assert response.status_code == 502 and "may not call" in response.json()["errors"][0]["detail"]
    assert fake_llm.chat_calls() == 0
