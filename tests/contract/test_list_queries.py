"""Every list endpoint makes as many queries for 30 items as for 3, and shows an outsider none of them."""

import pytest

from tests.contract.cases import LISTS
from tests.isolation import check_list_queries


@pytest.mark.django_db
@pytest.mark.parametrize("case", LISTS, ids=lambda case: case.route)
def test_a_list_costs_the_same_queries_for_3_and_for_30_items(case, cast):
    check_list_queries(case, cast)
