"""Rate limits: exact admission under concurrency, windows, and which policies apply."""

import threading
import time

import pytest
from django.db import connection

from quotas.limiter import window
from quotas.models import QuotaPolicy
from quotas.services.admission import QuotaExceeded
from tests.conftest import in_one_minute
from tests.quotas.helpers import admit, counter, run_in_threads


@pytest.mark.django_db(transaction=True)
def test_many_threads_at_one_limit_admit_exactly_the_limit(alice):
    QuotaPolicy.objects.create(name="rpm", requests_per_minute=25)
    in_one_minute()
    admitted, barrier = [], threading.Barrier(8)

    def fire(_):
        barrier.wait()
        try:
            for _ in range(10):
                try:
                    admit(alice)
                    admitted.append(1)
                except QuotaExceeded:
                    pass
        finally:
            connection.close()

    run_in_threads(8, fire)

    assert len(admitted) == 25
    assert counter("rpm", alice, "requests_per_minute", "minute") == 25


@pytest.mark.django_db
def test_a_request_refused_by_one_limit_consumes_nothing_from_the_others(alice):
    QuotaPolicy.objects.create(name="rpm", requests_per_minute=100)
    QuotaPolicy.objects.create(name="tpm", tokens_per_minute=1000)
    in_one_minute()

    admit(alice, tokens=600)
    with pytest.raises(QuotaExceeded) as refused:
        admit(alice, tokens=600)

    assert refused.value.body["policy"] == "tpm" and refused.value.body["limit"] == "tokens_per_minute"
    assert counter("rpm", alice, "requests_per_minute", "minute") == 1, "the refused request was counted"
    assert counter("tpm", alice, "tokens_per_minute", "minute") == 600


@pytest.mark.django_db
def test_a_new_window_starts_from_zero(alice):
    QuotaPolicy.objects.create(name="rpm", requests_per_minute=1)
    start = (int(time.time()) // 60) * 60 + 10.0

    admit(alice, now=start)
    with pytest.raises(QuotaExceeded) as refused:
        admit(alice, now=start + 30)
    admit(alice, now=start + 60)  # the next minute

    assert 1 <= refused.value.refusal.reset_seconds <= 60


def test_windows_end_where_they_should():
    assert window("minute", 120.0)[1:] == (60, 60)
    assert window("minute", 179.5)[1] == 1
    assert window("day", 86400 * 3 + 3600)[1:] == (82800, 86400)
    month_id, until_end, length = window("month", 1_706_745_600.0)  # 2024-02-01 00:00 UTC
    assert (month_id, until_end, length) == ("202402", 29 * 86400 + 1, 29 * 86400)


@pytest.mark.django_db
def test_every_applicable_policy_must_pass_and_others_do_not_apply(alice, bob):
    QuotaPolicy.objects.create(name="for-bob", applies_to="user", user=bob, requests_per_minute=1)
    QuotaPolicy.objects.create(name="other-type", agent_type="not-helper", requests_per_minute=1)
    QuotaPolicy.objects.create(name="members", applies_to="role", role="member", requests_per_minute=3)
    in_one_minute()

    for _ in range(3):
        admit(alice)
    with pytest.raises(QuotaExceeded) as refused:
        admit(alice)
    assert refused.value.body["policy"] == "members"

    admit(bob)
    with pytest.raises(QuotaExceeded):
        admit(bob)


@pytest.mark.django_db
def test_a_policy_named_like_the_built_in_defaults_counts_on_its_own(alice, settings):
    settings.QUOTA_DEFAULTS = {"requests_per_minute": 3}
    QuotaPolicy.objects.create(name="default", requests_per_minute=3)
    in_one_minute()

    for _ in range(3):
        admit(alice)
    with pytest.raises(QuotaExceeded):
        admit(alice)
