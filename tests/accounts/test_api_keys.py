import time
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiKey, SecurityEvent, parse_key
from accounts.services import apikey_for_task, apikey_revoke, apikey_rotate, apikeys_expire_due
from core import local_cache
from tests.conftest import api_client, make_key, make_user
from tests.tasks.conftest import wait_until


def events(user, kind):
    return SecurityEvent.objects.filter(user=user, kind=kind)


@pytest.mark.django_db
def test_a_created_key_is_shown_once_stored_as_a_hash_and_authenticates(alice):
    created = api_client(alice).post(
        "/api/v1/keys", {"name": "ci bot", "scopes": ["account:read", "keys:manage"]}, format="json"
    )

    assert created.status_code == 201
    full_key = created.json()["key"]
    key = ApiKey.objects.get(pk=created.json()["id"])
    assert full_key.startswith(f"sb_{key.key_id}_")
    assert created.json()["prefix"] == f"sb_{key.key_id}"
    _, secret = parse_key(full_key)
    assert secret not in str(ApiKey.objects.filter(pk=key.pk).values().get())
    listed = api_client(alice).get("/api/v1/keys").json()["results"]
    assert [item["prefix"] for item in listed] == [key.prefix]
    assert "key" not in listed[0]
    assert "key" not in api_client(alice).get(f"/api/v1/keys/{key.pk}").json()

    me = api_client(key=full_key).get("/api/v1/me", REMOTE_ADDR="10.1.2.3")

    assert me.status_code == 200
    assert me.json()["username"] == "alice"
    assert me.json()["scopes"] == ["account:read", "keys:manage"]
    key.refresh_from_db()
    assert key.last_used_at is not None and key.last_used_ip == "10.1.2.3"
    assert events(alice, SecurityEvent.Kind.KEY_CREATED).get().api_key == key


@pytest.mark.django_db
def test_rotation_gives_a_new_secret_and_the_old_one_works_only_during_the_grace_period(alice):
    old_key = make_key(alice)
    key = ApiKey.objects.get(user=alice)

    rotated = api_client(key=old_key).post(f"/api/v1/keys/{key.pk}/rotate", {"grace_hours": 0.0005}, format="json")

    assert rotated.status_code == 200
    new_key = rotated.json()["key"]
    assert new_key != old_key and new_key.startswith(key.prefix + "_")
    assert api_client(key=new_key).get("/api/v1/me").status_code == 200
    assert api_client(key=old_key).get("/api/v1/me").status_code == 200, "old key refused during its grace"

    time.sleep(1.9)  # the grace period (1.8 s) ends

    assert api_client(key=old_key).get("/api/v1/me").status_code == 401
    assert api_client(key=new_key).get("/api/v1/me").status_code == 200
    assert events(alice, SecurityEvent.Kind.KEY_ROTATED).count() == 1
    assert events(alice, SecurityEvent.Kind.KEY_REJECTED).get().detail["reason"] == "rotated_out"


@pytest.mark.django_db
def test_the_default_grace_period_comes_from_settings(alice, settings):
    settings.API_KEY_ROTATION_GRACE_HOURS = 24
    make_key(alice)
    key = ApiKey.objects.get(user=alice)

    key, _ = apikey_rotate(key=key, actor=alice)

    assert timedelta(hours=23, minutes=59) < key.previous_valid_until - timezone.now() <= timedelta(hours=24)


@pytest.mark.django_db
def test_a_revoked_key_stops_at_once_and_cannot_be_rotated(alice):
    full_key = make_key(alice)
    key = ApiKey.objects.get(user=alice)
    assert api_client(key=full_key).get("/api/v1/me").status_code == 200

    revoked = api_client(alice).post(f"/api/v1/keys/{key.pk}/revoke")

    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert api_client(key=full_key).get("/api/v1/me").status_code == 401
    assert api_client(alice).post(f"/api/v1/keys/{key.pk}/rotate").status_code == 409
    assert events(alice, SecurityEvent.Kind.KEY_REVOKED).get().actor == alice


@pytest.mark.django_db
def test_a_task_reads_its_key_with_the_role_once_per_process_and_again_once_the_key_changes(
    alice, django_assert_num_queries
):
    make_key(alice)
    key = ApiKey.objects.get(user=alice)
    apikey_for_task(pk=key.pk)
    wait_until(lambda: local_cache._cache.listening)  # entries are kept once the listener is subscribed
    first = apikey_for_task(pk=key.pk)

    with django_assert_num_queries(0):
        again = apikey_for_task(pk=key.pk)

    assert again is first and (again.user, again.user.role, again.revoked_at) == (alice, "member", None)
    apikey_revoke(key=key, actor=alice)
    assert apikey_for_task(pk=key.pk).revoked_at is not None
    alice.groups.clear()  # her role taken away: every key of hers is read again
    assert apikey_for_task(pk=key.pk).user.role is None


@pytest.mark.django_db
def test_a_key_past_its_expiry_is_refused_and_the_expiry_job_marks_it_expired(alice):
    full_key = make_key(alice, expires_at=timezone.now() + timedelta(seconds=1.5))
    assert api_client(key=full_key).get("/api/v1/me").status_code == 200

    time.sleep(1.6)

    assert api_client(key=full_key).get("/api/v1/me").status_code == 401
    assert apikeys_expire_due() == 1
    assert apikeys_expire_due() == 0
    key = ApiKey.objects.get(user=alice)
    assert key.status == "expired" and key.revoke_reason == "expired"
    assert events(alice, SecurityEvent.Kind.KEY_EXPIRED).count() == 1


@pytest.mark.django_db
def test_unknown_revoked_expired_and_malformed_keys_get_the_same_401_and_the_reason_is_recorded(alice):
    revoked = make_key(alice, name="revoked")
    apikey_revoke(key=ApiKey.objects.get(name="revoked"), actor=alice)
    expired = make_key(alice, name="expired", expires_at=timezone.now() + timedelta(milliseconds=300))
    good = make_key(alice, name="good")
    time.sleep(0.4)
    key_id = good.split("_")[1]
    attempts = {
        "revoked": revoked,
        "expired": expired,
        "wrong_secret": f"sb_{key_id}_{'A' * 43}",
        "unknown": f"sb_{'a' * 12}_{'A' * 43}",
        "malformed": "not-a-key",
    }

    bodies = {}
    for reason, raw in attempts.items():
        response = api_client(key=raw).get("/api/v1/me")
        assert response.status_code == 401, reason
        assert response["WWW-Authenticate"].startswith("Bearer")
        bodies[reason] = {k: v for k, v in response.json().items() if k != "request_id"}

    assert len({str(body) for body in bodies.values()}) == 1, bodies
    recorded = set(
        SecurityEvent.objects.filter(kind=SecurityEvent.Kind.KEY_REJECTED).values_list("detail__reason", flat=True)
    )
    assert recorded == set(attempts)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer a b", "Bearer sb_", "Bearer " + "x" * 5000, "bearer sb_ÿÿÿÿÿÿÿÿÿÿÿÿ_" + "A" * 43],
)
def test_odd_authorization_headers_get_a_401_never_a_500(client, header):
    response = client.get("/api/v1/me", HTTP_AUTHORIZATION=header)

    assert response.status_code == 401


@pytest.mark.django_db
def test_a_key_in_the_query_string_is_refused(alice):
    full_key = make_key(alice)

    for query in (f"?api_key={full_key}", f"?anything={full_key}"):
        response = api_client().get("/api/v1/me" + query)
        assert response.status_code == 400
        assert "query string" in response.json()["errors"][0]["detail"]


@pytest.mark.django_db
def test_a_request_without_credentials_gets_401_with_a_bearer_challenge(client):
    response = client.get("/api/v1/me")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="switchboard"'
    assert response.json()["errors"][0]["code"] == "not_authenticated"


@pytest.mark.django_db
def test_scopes_are_enforced_and_a_key_cannot_mint_a_broader_key(alice):
    reader = make_key(alice, scopes=["account:read"])
    manager = make_key(alice, scopes=["keys:manage"])

    assert api_client(key=reader).get("/api/v1/me").status_code == 200
    denied = api_client(key=reader).get("/api/v1/keys")
    assert denied.status_code == 403
    assert "keys:manage" in denied.json()["errors"][0]["detail"]
    assert api_client(key=reader).patch("/api/v1/me", {"first_name": "A"}, format="json").status_code == 403

    broader = api_client(key=manager).post("/api/v1/keys", {"name": "x", "scopes": ["users:manage"]}, format="json")
    assert broader.status_code == 403
    same = api_client(key=manager).post("/api/v1/keys", {"name": "x", "scopes": ["keys:manage"]}, format="json")
    assert same.status_code == 201


@pytest.mark.django_db
def test_bad_key_input_gets_a_clear_400_and_creates_nothing(alice):
    client = api_client(alice)

    for body, field in [
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["root"]}, "scopes.0"),
        ({"scopes": ["account:read"]}, "name"),
        ({"name": "x", "scopes": ["account:read"], "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ]:
        response = client.post("/api/v1/keys", body, format="json")
        assert response.status_code == 400, body
        assert response.json()["errors"][0]["attr"] == field

    assert not ApiKey.objects.exists()


@pytest.mark.django_db
def test_a_member_cannot_list_another_users_keys_by_asking_for_them(alice, charlie):
    make_key(alice)

    assert api_client(charlie).get(f"/api/v1/keys?user={alice.pk}").json()["results"] == []


@pytest.mark.django_db
def test_operators_create_list_and_revoke_keys_of_lower_roles_but_never_see_their_secrets(alice, operator):
    client = api_client(operator)

    created = client.post(
        "/api/v1/keys", {"name": "for alice", "scopes": ["account:read"], "user": alice.pk}, format="json"
    )

    assert created.status_code == 201
    assert created.json()["user"] == alice.pk
    assert [k["name"] for k in client.get(f"/api/v1/keys?user={alice.pk}").json()["results"]] == ["for alice"]
    assert client.post(f"/api/v1/keys/{created.json()['id']}/rotate").status_code == 404, "rotation shows the secret"
    assert client.post(f"/api/v1/keys/{created.json()['id']}/revoke").status_code == 200
    event = events(alice, SecurityEvent.Kind.KEY_CREATED).get()
    assert event.actor == operator


@pytest.mark.django_db
def test_an_operator_cannot_create_keys_for_an_admin_or_another_operator(operator, admin_user):
    other_operator = make_user("otto", role="operator")
    client = api_client(operator)

    for target in (admin_user, other_operator):
        response = client.post(
            "/api/v1/keys", {"name": "escalate", "scopes": ["users:manage"], "user": target.pk}, format="json"
        )
        assert response.status_code == 403
    assert not ApiKey.objects.filter(user__in=[admin_user, other_operator]).exists()


@pytest.mark.django_db
def test_a_narrow_key_cannot_rotate_a_broader_key_nor_mint_one_that_outlives_it(alice):
    manager = make_key(alice, scopes=["keys:manage"], expires_at=timezone.now() + timedelta(hours=1))
    make_key(alice, name="broad", scopes=["account:write", "memory:write"])
    broad = ApiKey.objects.get(name="broad")

    rotate = api_client(key=manager).post(f"/api/v1/keys/{broad.pk}/rotate")
    minted = api_client(key=manager).post("/api/v1/keys", {"name": "child", "scopes": ["keys:manage"]}, format="json")

    assert rotate.status_code == 403
    broad.refresh_from_db()
    assert broad.rotated_at is None
    assert minted.status_code == 201
    child = ApiKey.objects.get(name="child")
    assert (
        child.expires_at is not None
        and child.expires_at <= ApiKey.objects.get(scopes=["keys:manage"], name="test key").expires_at
    )


@pytest.mark.django_db
def test_a_flood_of_bad_keys_is_recorded_once_a_minute_per_address_and_reason(alice):
    for _ in range(20):
        api_client(key=f"sb_{'a' * 12}_{'B' * 43}").get("/api/v1/me")

    assert SecurityEvent.objects.filter(kind=SecurityEvent.Kind.KEY_REJECTED).count() == 1


@pytest.mark.django_db
def test_members_cannot_create_keys_for_someone_else(alice, bob):
    response = api_client(alice).post(
        "/api/v1/keys", {"name": "for bob", "scopes": ["account:read"], "user": bob.pk}, format="json"
    )

    assert response.status_code == 403
    assert not ApiKey.objects.filter(user=bob).exists()


@pytest.mark.django_db
def test_a_deactivated_users_keys_stop_working(alice, admin_user):
    full_key = make_key(alice)

    api_client(admin_user).patch(f"/api/v1/users/{alice.pk}", {"is_active": False}, format="json")

    assert api_client(key=full_key).get("/api/v1/me").status_code == 401
    assert events(alice, SecurityEvent.Kind.KEY_REJECTED).get().detail["reason"] == "user_inactive"


@pytest.mark.django_db
def test_listing_keys_takes_a_fixed_number_of_queries(alice, django_assert_max_num_queries):
    for n in range(5):
        make_key(alice, name=f"key {n}")
    full_key = make_key(alice)
    api_client(key=full_key).get("/api/v1/keys")  # the first request reads the key into the process's cache

    with django_assert_max_num_queries(6):
        response = api_client(key=full_key).get("/api/v1/keys")

    assert len(response.json()["results"]) == 6
