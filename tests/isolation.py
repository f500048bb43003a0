"""The API's test contract as a reusable battery; `tests/contract/` runs it over every endpoint.

- Isolation (`check_isolation`): for a kind of object (how one is made, which routes take its id), a
  caller who may not see the object gets, on every route, exactly the answer an id that does not exist
  gets (404 for owned objects, never 403 with its existence), by session and by API key with every scope
  the routes need; the object is unchanged afterwards and missing from the caller's list. Its owner reads
  it and finds it in their list; a user it is shared with reads it (and, shared for use, uses it) but can
  neither change nor re-share it.
- List queries (`check_list_queries`): a list endpoint makes as many queries for 30 items as for 3.

Add a kind or a list case for every new endpoint: `tests/contract/test_routes.py` fails on any route that
takes an object id, and any list, that no case covers.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.conftest import api_client, make_key


@dataclass
class Route:
    """One route that takes the object's id. `shared`: what a user the object is shared with may do
    there: "read" (shared for view), "use" (shared for use) or "owner" (only the owner)."""

    name: str
    method: str = "get"
    body: dict | None = None
    kwargs: dict = field(default_factory=dict)
    shared: str = ""

    def __post_init__(self):
        self.shared = self.shared or ("read" if self.method == "get" else "owner")

    def url(self, object_id) -> str:
        return reverse(self.name, kwargs={"pk": object_id, **self.kwargs})

    def call(self, client, object_id):
        return getattr(client, self.method)(self.url(object_id), self.body, format="json")


@dataclass
class ObjectKind:
    """A kind of object behind the API and what isolates it."""

    name: str
    make: Callable  # (cast) -> an object of cast.alice's (or, for users, anyone's)
    routes: list[Route]
    scopes: tuple[str, ...]  # what the outsider's API key carries
    list_route: str | None = None
    share: Callable | None = None  # (obj, owner, user, level)
    reader: str = "alice"  # who may read it: its owner, or for users an admin
    outsider_status: int = 404  # what a caller who may not see it gets, for it and for a missing id


@dataclass
class ListCase:
    """A list endpoint: `make(cast)` adds one item that `reader` sees in it; `size(body)` counts them.
    A private list (of user-owned data) shows an outsider none of the reader's items."""

    route: str
    make: Callable
    reader: str = "alice"
    params: dict = field(default_factory=dict)
    route_kwargs: Callable | None = None  # (cast) -> URL kwargs, for a list under an object
    size: Callable | None = None
    private: bool = True


def _items(body) -> list:
    return body["results"] if isinstance(body, dict) and "results" in body else body


def _ids(body) -> set[str]:
    return {str(item["id"]) for item in _items(body)}


def _missing_id(object_id):
    """An id of the same type that names nothing."""
    if isinstance(object_id, uuid.UUID):
        return uuid.uuid4()
    return int(object_id) + 1_000_000


def _error(response) -> dict:
    body = response.json()
    return {name: value for name, value in body.items() if name != "request_id"}


def check_isolation(kind: ObjectKind, cast) -> None:
    obj = kind.make(cast)
    object_id, missing = obj.pk, _missing_id(obj.pk)
    reader = api_client(getattr(cast, kind.reader))
    detail = Route(f"{kind.name}-detail")
    before = reader.get(detail.url(object_id)).json()

    for route in kind.routes:
        if route.method == "get":
            response = route.call(reader, object_id)
            assert response.status_code == 200, f"{kind.reader} reading {route.name}: {response.status_code}"

    outsiders = {"session": api_client(cast.charlie), "key": api_client(key=make_key(cast.charlie, kind.scopes))}
    for how, outsider in outsiders.items():
        for route in kind.routes:
            got, expected = route.call(outsider, object_id), route.call(outsider, missing)
            assert (got.status_code, expected.status_code) == (kind.outsider_status, kind.outsider_status), (
                f"an outsider ({how}) {route.method.upper()} {route.name}: {got.status_code} for the object, "
                f"{expected.status_code} for a missing id"
            )
            assert _error(got) == _error(expected), f"{route.name} tells the object from a missing one"
        if kind.list_route:
            listed = outsider.get(reverse(kind.list_route))
            if listed.status_code == 200:
                assert str(object_id) not in _ids(listed.json()), f"an outsider ({how}) sees it in {kind.list_route}"
            else:  # the whole list is not theirs to see (users: admins only)
                assert listed.status_code == kind.outsider_status
    assert reader.get(detail.url(object_id)).json() == before, "an outsider's request changed the object"
    if kind.list_route:
        assert str(object_id) in _ids(reader.get(reverse(kind.list_route)).json()), "its owner does not see it listed"

    if kind.share is not None:
        _check_shared(kind, cast, obj, before)


def _check_shared(kind: ObjectKind, cast, obj, before) -> None:
    shared = api_client(cast.bob)
    for level, allowed in (("view", {"read"}), ("use", {"read", "use"})):
        kind.share(obj, cast.alice, cast.bob, level)
        for route in kind.routes:
            if route.shared == "use" and level == "use":
                continue  # checked below, after the writes: using may change nothing the owner reads
            response = route.call(shared, obj.pk)
            if route.shared in allowed:
                assert response.status_code == 200, f"shared for {level}: {route.name} gave {response.status_code}"
            else:
                assert response.status_code in (403, 404), f"shared for {level}: {route.name} was allowed"
        assert api_client(cast.alice).get(Route(f"{kind.name}-detail").url(obj.pk)).json() == before
        if kind.list_route:
            assert str(obj.pk) in _ids(shared.get(reverse(kind.list_route)).json()), "not listed for the shared user"
    for route in kind.routes:
        if route.shared == "use":
            response = route.call(shared, obj.pk)
            assert 200 <= response.status_code < 300, f"shared for use: {route.name} gave {response.status_code}"


def check_list_queries(case: ListCase, cast) -> None:
    client = api_client(getattr(cast, case.reader))
    kwargs = case.route_kwargs(cast) if case.route_kwargs else {}
    url = reverse(case.route, kwargs=kwargs)
    size = case.size or (lambda body: len(_items(body)))

    def counted():
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url, case.params)
        assert response.status_code == 200, response.content
        return len(queries), size(response.json())

    for _ in range(3):
        case.make(cast)
    client.get(url, case.params)  # warm: the session and content types are read once
    few, few_items = counted()
    for _ in range(27):
        case.make(cast)
    many, many_items = counted()

    assert many_items >= few_items + 27, f"{case.route} does not show what was made ({few_items} -> {many_items})"
    assert many == few, f"{case.route}: {few} queries for {few_items} items, {many} for {many_items}"
    if case.private:
        _check_outsider_sees_none(case, cast, url, client)


def _check_outsider_sees_none(case: ListCase, cast, url, reader) -> None:
    seen = reader.get(url, case.params).json()
    answer = api_client(cast.charlie).get(url, case.params)
    if answer.status_code != 200:
        assert answer.status_code in (403, 404), f"an outsider asking {case.route} got {answer.status_code}"
        return
    items = _items(seen)
    if items and "id" in items[0]:
        assert not _ids(seen) & _ids(answer.json()), f"an outsider sees the reader's items in {case.route}"
    else:
        assert not _items(answer.json()), f"an outsider sees the reader's rows in {case.route}"
