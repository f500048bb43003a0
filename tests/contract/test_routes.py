"""The contract holds for every route under /api/v1/: each one that takes an object id is in an isolation
case, each list is in a query-count case, and every route is in the OpenAPI schema."""

import pytest
from django.urls import resolve, reverse
from drf_spectacular.generators import EndpointEnumerator, SchemaGenerator

from tests.contract.cases import KINDS, LISTS

# A path id stands for any id: the walker only needs a URL the route matches.
SAMPLE_ID = 1


def api_endpoints() -> list[tuple[str, str, str]]:
    """(path template, route regex, method) of every API route, as DRF and drf-spectacular see them."""
    endpoints = EndpointEnumerator().get_api_endpoints()
    return [
        (path, _plain(regex), method.lower()) for path, regex, method, _ in endpoints if path.startswith("/api/v1/")
    ]


def _plain(regex: str) -> str:
    return regex.replace("^", "")


def _route_of(name: str, **kwargs) -> str:
    return _plain(resolve(reverse(name, kwargs=kwargs)).route)


def covered_by_isolation() -> set[tuple[str, str]]:
    return {
        (_route_of(route.name, pk=SAMPLE_ID, **route.kwargs), route.method) for kind in KINDS for route in kind.routes
    }


def covered_by_list_queries() -> set[str]:
    return {_route_of(case.route, **({"pk": SAMPLE_ID} if case.route_kwargs else {})) for case in LISTS}


def list_routes() -> set[str]:
    """Routes whose GET answers a list (an array or a page), by the schema."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    lists = set()
    for path, regex, method in api_endpoints():
        if method != "get":
            continue
        operation = schema["paths"][path.replace("{pk}", "{id}")]["get"]
        body = operation["responses"]["200"].get("content", {}).get("application/json", {}).get("schema", {})
        if body.get("type") == "array" or body.get("$ref", "").split("/")[-1].startswith("Paginated"):
            lists.add(regex)
    return lists


@pytest.mark.django_db
def test_every_route_that_takes_an_object_id_is_in_an_isolation_case():
    covered = covered_by_isolation()

    uncovered = [
        f"{method.upper()} {path}"
        for path, regex, method in api_endpoints()
        if "{" in path and (regex, method) not in covered
    ]

    assert not uncovered, f"add these routes to an ObjectKind in tests/contract/cases.py: {uncovered}"


@pytest.mark.django_db
def test_every_list_is_in_a_query_count_case():
    missing = sorted(list_routes() - covered_by_list_queries())

    assert not missing, f"add a ListCase in tests/contract/cases.py for: {missing}"


def test_the_walk_sees_the_routes_it_must_cover():
    endpoints = api_endpoints()

    assert ("/api/v1/agents/{pk}/invoke", "post") in {(path, method) for path, _, method in endpoints}
    assert ("/api/v1/users/{pk}", "patch") in {(path, method) for path, _, method in endpoints}
    assert _route_of("securityevent-list") in list_routes()
    assert _route_of("webhookendpoint-deliveries", pk=SAMPLE_ID) in list_routes()
