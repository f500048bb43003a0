"""No input makes a server error or an HTML body under /api/: every malformed request gets a 4xx in the
API's error shape."""

import json

import pytest
from django.test import override_settings
from drf_spectacular.generators import EndpointEnumerator

from tests.conftest import api_client

PUBLIC = [
    "/api/v1/auth/signup",
    "/api/v1/auth/login",
    "/api/v1/auth/password-reset",
    "/api/v1/auth/password-reset/confirm",
]


def deep_json(levels: int) -> str:
    return "[" * levels + "]" * levels


def writes() -> list[tuple[str, str]]:
    """(method, path) of every API route that takes a body, with a sample id in the path."""
    endpoints = EndpointEnumerator().get_api_endpoints()
    return sorted(
        {
            (method.lower(), path.replace("{pk}", "1").replace("{username}", "bob"))
            for path, _, method, _ in endpoints
            if path.startswith("/api/v1/") and method in ("POST", "PUT", "PATCH")
        }
    )


def assert_api_error(response, *statuses):
    assert response.status_code in statuses, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) >= {"type", "errors", "request_id"} and body["errors"][0]["code"]


@pytest.mark.django_db
@pytest.mark.parametrize("levels", [100, 5000, 100_000])
def test_json_nested_too_deep_is_a_400_on_every_public_endpoint(client, levels):
    for path in PUBLIC:
        response = client.post(path, deep_json(levels), content_type="application/json")

        assert_api_error(response, 400)
        assert "nested" in response.json()["errors"][0]["detail"] or "parse" in response.json()["errors"][0]["detail"]


@pytest.mark.django_db
def test_a_body_over_the_limit_is_a_413_on_every_public_endpoint(client, settings):
    big = json.dumps({"username": "x" * (settings.REQUEST_MAX_BYTES + 10), "password": "y"})

    for path in PUBLIC:
        assert_api_error(client.post(path, big, content_type="application/json"), 413)


@pytest.mark.django_db
@override_settings(DEBUG=False)
def test_no_write_of_any_endpoint_fails_on_a_deep_or_huge_body_unauthenticated_or_not(client, alice):
    deep, huge = deep_json(50_000), "[" + "1," * 3_000_000 + "1]"

    for method, path in writes():
        for body in (deep, huge, '{"a": "\\u0000"}', '{"\\ud800": 1}', "{not json"):
            for caller in (client, api_client(alice)):  # signed in afresh: one of the writes is a logout
                response = getattr(caller, method)(path, body, content_type="application/json")
                assert response.status_code < 500, (method, path, body[:20], response.status_code)
                if response.content:
                    assert response["Content-Type"] == "application/json", (method, path, response.status_code)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, problem",
    [
        ({"content": "fine", "metadata": {"bad\u0000key": 1}}, "NUL"),
        ({"content": "nul \u0000 inside"}, "NUL"),
        ({"content": "fine", "metadata": {"x": ["\ud800"]}}, "surrogate"),
    ],
)
def test_text_postgresql_cannot_store_is_refused_with_where_it_is(alice, body, problem):
    response = api_client(alice).post(
        "/api/v1/memories", json.dumps(body, ensure_ascii=True), content_type="application/json"
    )

    assert_api_error(response, 400)
    assert problem in response.json()["errors"][0]["detail"]


@pytest.mark.django_db
def test_nan_and_infinity_are_not_json(alice):
    response = api_client(alice).post(
        "/api/v1/memories/search", '{"vector": [NaN], "k": 1}', content_type="application/json"
    )

    assert_api_error(response, 400)


@pytest.mark.django_db
def test_a_nul_in_the_query_string_is_a_400(alice):
    assert_api_error(api_client(alice).get("/api/v1/tasks?kind=%00"), 400)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/runs", "/api/v1/tasks", "/api/v1/security-events"])
@pytest.mark.parametrize(
    "cursor",
    [
        "bm90IGEgY3Vyc29y",  # base64 of "not a cursor"
        "cD1ub3QtYS1kYXRl",  # p=not-a-date: well formed, wrong position
        "cD0yMDI2LTEzLTQ1VDAwOjAwOjAw",  # p=2026-13-45T00:00:00: a date that does not exist
        "%%%",
    ],
)
def test_a_cursor_the_list_never_gave_is_a_400(alice, path, cursor):
    assert_api_error(api_client(alice).get(path, {"cursor": cursor}), 400)


@pytest.mark.django_db
def test_an_offset_past_any_table_is_a_400(alice):
    assert_api_error(api_client(alice).get("/api/v1/agents", {"offset": 10**20}), 400)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/nothing-here", "/api/v2/agents", "/api/v1/agents/1/nope", "/api/"])
def test_an_unknown_api_path_is_a_json_404(client, path):
    assert_api_error(client.get(path), 404)
