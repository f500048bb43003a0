"""Quotas with Redis down: rate limits fall back to the process, budgets refuse with a 503."""

import pytest

from quotas.models import QuotaPolicy
from quotas.services.admission import QuotaExceeded, QuotaUnavailable
from tests.agents.conftest import ask
from tests.conftest import api_client, in_one_minute, make_user
from tests.quotas.helpers import admit


def dead_redis(settings, tmp_path):
    settings.REDIS_URL = f"unix://{tmp_path}/no-redis.sock"
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"unix://{tmp_path}/no-redis.sock",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.1, "SOCKET_TIMEOUT": 0.1},
        }
    }


@pytest.mark.django_db
def test_with_redis_down_rate_limits_fall_back_to_the_process_and_budgets_refuse(alice, bob, settings, tmp_path):
    QuotaPolicy.objects.create(name="rpm", requests_per_minute=2)
    QuotaPolicy.objects.create(name="bob-budget", applies_to="user", user=bob, tokens_per_day=10_000)
    dead_redis(settings, tmp_path)
    in_one_minute()

    reservations = [admit(alice), admit(alice)]
    with pytest.raises(QuotaExceeded):
        admit(alice)
    assert all(r.local for r in reservations), "counted by the per-process limiter"

    with pytest.raises(QuotaUnavailable):
        admit(bob, tokens=10)

    settings.QUOTA_FAIL_CLOSED = True
    with pytest.raises(QuotaUnavailable):
        admit(make_user("carol"))


@pytest.mark.django_db
def test_a_budget_refused_for_lack_of_redis_is_a_503_over_the_api(alice, agent, fake_llm, settings, tmp_path):
    QuotaPolicy.objects.create(name="budget", tokens_per_day=10_000)
    dead_redis(settings, tmp_path)

    response = ask(api_client(alice), agent)

    assert response.status_code == 503 and fake_llm.chat_calls() == 0


@pytest.mark.django_db
def test_a_budget_503_says_when_to_retry(alice, agent, fake_llm, settings, tmp_path):
    QuotaPolicy.objects.create(name="budget", tokens_per_day=10_000)
    dead_redis(settings, tmp_path)

    response = ask(api_client(alice), agent)

    assert response.status_code == 503 and response["Retry-After"] == "5"
