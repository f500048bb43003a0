import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def no_counters_left():
    """Login slowing and rejected-key records count in Redis; each test starts from zero."""
    cache.clear()
