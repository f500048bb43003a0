from types import SimpleNamespace

import pytest


@pytest.fixture
def cast(alice, bob, charlie, admin_user):
    """alice owns, bob is shared with, charlie has no access; the admin sees users."""
    return SimpleNamespace(alice=alice, bob=bob, charlie=charlie, admin=admin_user)
