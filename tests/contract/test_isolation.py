"""Every kind of object behind the API: an outsider's answer never tells it from a missing one, its owner
reads it, a user it is shared with reads (or uses) but never changes it."""

import pytest

from tests.contract.cases import KINDS
from tests.isolation import check_isolation


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.name)
def test_an_object_is_isolated_on_every_route_that_takes_its_id(kind, cast):
    check_isolation(kind, cast)
