"""A reservation whose request never settles (its process was killed mid-call) is given back once its
deadline has passed, and only then; a request that settles after that is charged what it used."""

import time
from decimal import Decimal

import pytest
from django_redis import get_redis_connection

from quotas.limiter import holds_key
from quotas.models import QuotaPolicy
from quotas.services.admission import quota_holds_release, quota_settle
from tests.quotas.helpers import admit, counter

pytestmark = pytest.mark.django_db


@pytest.fixture
def budget(db):
    return QuotaPolicy.objects.create(name="budget", tokens_per_day=10_000, requests_per_day=100)


def test_a_reservation_never_settled_is_given_back_after_its_deadline_and_not_before(alice, budget):
    # Given two requests admitted with 1,000 tokens reserved each, one of which settles with 40 used
    settled, lost = admit(alice, tokens=1000), admit(alice, tokens=1000)
    quota_settle(reservation=settled, tokens=40, cost=Decimal(0))
    assert counter("budget", alice, "tokens_per_day") == 1040

    # When the release job runs before the deadline, then after it
    assert quota_holds_release(now=time.time()) == 0
    assert counter("budget", alice, "tokens_per_day") == 1040
    released = quota_holds_release(now=lost.deadline + 1)

    # Then only the lost request's reservation is given back; the request itself still counts
    assert released == 1
    assert counter("budget", alice, "tokens_per_day") == 40
    assert counter("budget", alice, "requests_per_day") == 2
    assert not get_redis_connection("default").hlen(holds_key(alice.pk))


def test_a_request_settling_after_its_reservation_was_given_back_is_charged_what_it_used(alice, budget):
    # Given a request whose reservation was given back (it outlived its deadline)
    slow = admit(alice, tokens=1000)
    quota_holds_release(now=slow.deadline + 1)
    assert counter("budget", alice, "tokens_per_day") == 0

    # When it settles at last, with 300 tokens used
    quota_settle(reservation=slow, tokens=300, cost=Decimal(0))

    # Then the budget counts exactly those 300, and a second release changes nothing
    assert counter("budget", alice, "tokens_per_day") == 300
    assert quota_holds_release(now=slow.deadline + 1) == 0
    assert counter("budget", alice, "tokens_per_day") == 300


def test_a_request_counted_only_against_request_limits_holds_nothing(alice):
    QuotaPolicy.objects.create(name="calls", requests_per_day=100)

    admit(alice, tokens=1000)

    assert not get_redis_connection("default").exists(holds_key(alice.pk))
