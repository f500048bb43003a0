"""Limits on the API itself: clamped page sizes, rate-limited signups and key creation."""

import pytest

from tests.conftest import api_client


def test_huge_page_sizes_are_clamped(rf):
    from rest_framework.request import Request

    from core.pagination import LimitOffsetPagination

    assert LimitOffsetPagination().get_limit(Request(rf.get("/api/v1/keys?limit=100000"))) == 200


@pytest.mark.django_db
def test_signup_and_key_creation_are_rate_limited(client, alice, settings):
    settings.SIGNUP_RATE, settings.KEY_CREATION_RATE = "2/h", "2/h"
    statuses = [
        api_client()
        .post(
            "/api/v1/auth/signup",
            {"username": f"u{n}", "email": f"u{n}@example.com", "password": "A-long-passphrase-1"},
            format="json",
            REMOTE_ADDR="203.0.113.50",
        )
        .status_code
        for n in range(3)
    ]
    keys = [
        api_client(alice).post("/api/v1/keys", {"name": f"k{n}", "scopes": ["account:read"]}, format="json").status_code
        for n in range(3)
    ]

    assert statuses == [201, 201, 429]
    assert keys == [201, 201, 429]
