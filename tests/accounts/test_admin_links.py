"""From a user's page in the admin, operators reach that user's keys, runs, usage and security events."""

import pytest
from django.urls import reverse

from tests.conftest import make_key

pytestmark = pytest.mark.django_db


def test_a_users_admin_page_links_to_their_records_each_list_filtered_to_them(client, admin_user, alice, bob):
    make_key(alice, name="alices key")
    make_key(bob, name="bobs key")
    client.force_login(admin_user)

    page = client.get(reverse("admin:accounts_user_change", args=[alice.pk])).content.decode()

    for name in (
        "accounts_apikey",
        "agents_agentrun",
        "quotas_usagedaily",
        "quotas_usagerecord",
        "accounts_securityevent",
    ):
        link = f"{reverse(f'admin:{name}_changelist')}?user__id__exact={alice.pk}"
        assert f'href="{link}"' in page, name
        assert client.get(link).status_code == 200, name
    keys = client.get(f"{reverse('admin:accounts_apikey_changelist')}?user__id__exact={alice.pk}").content.decode()
    assert "alices key" in keys and "bobs key" not in keys
