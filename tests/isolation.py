"""The owner / shared / outsider check for any endpoint of user-owned objects.

    assert_isolated(detail_url="/api/v1/keys/7", owner=alice, outsider=charlie,
                    writes=[("post", "/api/v1/keys/7/revoke")], list_url="/api/v1/keys")

The outsider gets 404 (never 403) on reads and writes and never sees the object in a list; the owner
gets 200 on the read; a user it is shared with (if given) reads it too but cannot write.
"""

from tests.conftest import api_client


def _ids(body) -> set:
    items = body["results"] if isinstance(body, dict) and "results" in body else body
    return {item["id"] for item in items}


def assert_isolated(
    *, detail_url, owner, outsider, writes=(), list_url=None, shared_with=None, object_id=None, outsider_key=None
):
    """`outsider_key`: also try as the outsider with this API key (every scope it needs), not only a session."""
    owner_client = api_client(owner)
    outsiders = [api_client(outsider)] + ([api_client(key=outsider_key)] if outsider_key else [])

    assert owner_client.get(detail_url).status_code == 200, "the owner cannot read their own object"
    for outsider_client in outsiders:
        read = outsider_client.get(detail_url)
        assert read.status_code == 404, f"an outsider reading {detail_url} got {read.status_code}, not 404"
        for method, url in writes:
            response = getattr(outsider_client, method)(url, {}, format="json")
            assert response.status_code == 404, f"an outsider's {method.upper()} {url} got {response.status_code}"
    if list_url is not None:
        object_id = object_id if object_id is not None else owner_client.get(detail_url).json()["id"]
        assert object_id in _ids(owner_client.get(list_url).json())
        for outsider_client in outsiders:
            assert object_id not in _ids(outsider_client.get(list_url).json()), "an outsider sees it in the list"
    if shared_with is not None:
        shared_client = api_client(shared_with)
        assert shared_client.get(detail_url).status_code == 200, "the user it is shared with cannot read it"
        for method, url in writes:
            response = getattr(shared_client, method)(url, {}, format="json")
            assert response.status_code in (403, 404), f"a shared user's {method.upper()} {url} succeeded"
