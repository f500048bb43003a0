from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Group

from accounts.models import SecurityEvent
from accounts.services import object_share
from tests.conftest import PASSWORD, api_client, make_key, make_user
from tests.isolation import ObjectKind, Route, check_isolation
from tests.sharing.models import Notebook


@pytest.mark.django_db
def test_the_four_roles_exist_with_cumulative_permissions_and_admin_holds_all():
    groups = {group.name: group for group in Group.objects.prefetch_related("permissions__content_type")}
    perms = {
        name: {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
        for name, group in groups.items()
    }

    assert set(groups) >= {"admin", "operator", "member", "viewer"}
    assert perms["viewer"] < perms["member"] < perms["operator"] < perms["admin"]
    assert "sharing.view_notebook" in perms["viewer"] and "sharing.use_notebook" not in perms["viewer"]
    assert "sharing.use_notebook" in perms["member"]
    assert "accounts.view_securityevent" in perms["operator"] and "accounts.view_securityevent" not in perms["member"]
    assert "accounts.manage_roles" in perms["admin"] and "accounts.manage_roles" not in perms["operator"]


@pytest.mark.django_db
@pytest.mark.urls("tests.sharing.urls")
def test_a_viewer_can_read_but_not_use_and_a_member_can_use():
    viewer, member = make_user("vic", role="viewer"), make_user("mia")
    own_by_viewer = Notebook.objects.create(owner=viewer, title="v")
    own_by_member = Notebook.objects.create(owner=member, title="m")

    assert api_client(viewer).get(f"/api/v1/notebooks/{own_by_viewer.pk}").status_code == 200
    refused = api_client(viewer).post(f"/api/v1/notebooks/{own_by_viewer.pk}/use")
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["detail"] == "Your role does not allow this."
    assert api_client(viewer).post("/api/v1/notebooks", {"title": "new"}, format="json").status_code == 403
    assert api_client(member).post(f"/api/v1/notebooks/{own_by_member.pk}/use").json() == {"used": "m"}


@pytest.mark.django_db
@pytest.mark.urls("tests.sharing.urls")
def test_a_key_needs_the_scope_and_its_owner_the_role():
    viewer = make_user("vic", role="viewer")
    notebook = Notebook.objects.create(owner=viewer, title="v")
    invoke_key = make_key(viewer, scopes=["agents:invoke", "agents:read"])

    assert api_client(key=invoke_key).get(f"/api/v1/notebooks/{notebook.pk}").status_code == 200
    assert api_client(key=invoke_key).post(f"/api/v1/notebooks/{notebook.pk}/use").status_code == 403


NOTEBOOKS = ObjectKind(
    name="notebook",
    make=lambda cast: Notebook.objects.create(owner=cast.alice, title="plans"),
    routes=[
        Route("notebook-detail"),
        Route("notebook-detail", "patch", {"title": "changed"}),
        Route("notebook-use", "post", {}, shared="use"),
        Route("notebook-shares", shared="owner"),
        Route("notebook-shares", "post", {"user": "charlie", "level": "use"}),
        Route("notebook-unshare", "delete", kwargs={"username": "bob"}),
    ],
    scopes=("agents:read", "agents:write", "agents:invoke"),
    list_route="notebook-list",
    share=lambda obj, owner, user, level: object_share(obj=obj, owner=owner, user=user, level=level),
)


@pytest.mark.django_db
@pytest.mark.urls("tests.sharing.urls")
def test_the_isolation_battery_holds_for_a_shareable_model_of_any_app(alice, bob, charlie):
    check_isolation(NOTEBOOKS, SimpleNamespace(alice=alice, bob=bob, charlie=charlie))


@pytest.mark.django_db
@pytest.mark.urls("tests.sharing.urls")
def test_an_owner_shares_for_view_or_use_and_revokes(alice, bob, charlie):
    notebook = Notebook.objects.create(owner=alice, title="plans")
    owner = api_client(alice)

    # Not shared: bob sees nothing
    assert api_client(bob).get(f"/api/v1/notebooks/{notebook.pk}").status_code == 404

    # Shared for view: bob reads it and sees it listed, but cannot use, change or re-share it
    assert owner.post(
        f"/api/v1/notebooks/{notebook.pk}/shares", {"user": "bob", "level": "view"}, format="json"
    ).json() == [{"user": "bob", "level": "view"}]
    assert api_client(bob).post(f"/api/v1/notebooks/{notebook.pk}/use").status_code == 404
    assert [n["id"] for n in api_client(bob).get("/api/v1/notebooks").json()] == [notebook.pk]

    # Raised to use: bob can use it
    owner.post(f"/api/v1/notebooks/{notebook.pk}/shares", {"user": "bob", "level": "use"}, format="json")
    assert api_client(bob).post(f"/api/v1/notebooks/{notebook.pk}/use").status_code == 200
    assert owner.get(f"/api/v1/notebooks/{notebook.pk}/shares").json() == [{"user": "bob", "level": "use"}]

    # Revoked: gone for bob at once
    assert owner.delete(f"/api/v1/notebooks/{notebook.pk}/shares/bob").status_code == 204
    assert api_client(bob).get(f"/api/v1/notebooks/{notebook.pk}").status_code == 404
    assert api_client(bob).post(f"/api/v1/notebooks/{notebook.pk}/use").status_code == 404
    granted, revoked = SecurityEvent.objects.filter(kind__startswith="permission_", user=bob).order_by("id")[1:]
    assert (granted.kind, granted.detail["level"], revoked.kind) == ("permission_granted", "use", "permission_revoked")
    assert granted.actor == alice and granted.detail["object"] == f"sharing.notebook:{notebook.pk}"


@pytest.mark.django_db
@pytest.mark.urls("tests.sharing.urls")
def test_a_role_permission_never_widens_access_to_other_peoples_objects(alice):
    operator = make_user("olga", role="operator")
    notebook = Notebook.objects.create(owner=alice, title="private")

    assert api_client(operator).get(f"/api/v1/notebooks/{notebook.pk}").status_code == 404
    assert api_client(operator).get("/api/v1/notebooks").json() == []


@pytest.mark.django_db
def test_only_admins_change_roles_and_the_change_is_recorded(alice, operator, admin_user):
    assert api_client(alice).get("/api/v1/users").status_code == 403
    assert api_client(operator).get("/api/v1/users").status_code == 200
    assert (
        api_client(operator).patch(f"/api/v1/users/{alice.pk}", {"role": "operator"}, format="json").status_code == 403
    )

    response = api_client(admin_user).patch(
        f"/api/v1/users/{alice.pk}", {"role": "viewer"}, format="json", REMOTE_ADDR="192.0.2.4"
    )

    assert response.status_code == 200 and response.json()["role"] == "viewer"
    alice.refresh_from_db()
    assert alice.role == "viewer" and list(alice.groups.values_list("name", flat=True)) == ["viewer"]
    event = SecurityEvent.objects.get(kind=SecurityEvent.Kind.ROLE_CHANGED, user=alice)
    assert (event.actor, event.ip_address, event.detail) == (
        admin_user,
        "192.0.2.4",
        {"previous": "member", "role": "viewer"},
    )


@pytest.mark.django_db
def test_operators_become_staff_and_lose_it_with_the_role(alice, admin_user):
    client = api_client(admin_user)

    client.patch(f"/api/v1/users/{alice.pk}", {"role": "operator"}, format="json")
    alice.refresh_from_db()
    assert alice.is_staff
    client.patch(f"/api/v1/users/{alice.pk}", {"role": "member"}, format="json")
    alice.refresh_from_db()
    assert not alice.is_staff


@pytest.mark.django_db
def test_the_last_admin_cannot_demote_or_deactivate_themself(admin_user):
    client = api_client(admin_user)

    demote = client.patch(f"/api/v1/users/{admin_user.pk}", {"role": "member"}, format="json")
    deactivate = client.patch(f"/api/v1/users/{admin_user.pk}", {"is_active": False}, format="json")

    assert demote.status_code == 409 and deactivate.status_code == 409
    admin_user.refresh_from_db()
    assert admin_user.role == "admin" and admin_user.is_active


@pytest.mark.django_db
def test_admins_create_users_with_a_role_and_list_roles(admin_user):
    created = api_client(admin_user).post(
        "/api/v1/users",
        {"username": "newop", "email": "newop@example.com", "password": "S0me-long-passphrase", "role": "operator"},
        format="json",
    )

    assert created.status_code == 201 and created.json()["role"] == "operator"
    roles = api_client(admin_user).get("/api/v1/roles").json()
    assert [role["name"] for role in roles] == ["admin", "operator", "member", "viewer"]


@pytest.mark.django_db
def test_me_shows_the_role_and_an_email_change_needs_the_password_and_is_recorded(alice, bob):
    client = api_client(alice)

    assert client.get("/api/v1/me").json()["role"] == "member"
    no_password = client.patch("/api/v1/me", {"email": "mine@example.com"}, format="json")
    taken = client.patch("/api/v1/me", {"email": "bob@example.com", "current_password": PASSWORD}, format="json")
    changed = client.patch(
        "/api/v1/me", {"first_name": "Alice", "email": "alice@new.example", "current_password": PASSWORD}, format="json"
    )
    renamed = client.patch("/api/v1/me", {"first_name": "Al"}, format="json")

    assert no_password.status_code == 400 and no_password.json()["errors"][0]["attr"] == "current_password"
    assert taken.status_code == 400 and taken.json()["errors"][0]["attr"] == "email"
    assert changed.status_code == 200 and changed.json()["email"] == "alice@new.example"
    assert renamed.status_code == 200, "names change without the password"
    event = SecurityEvent.objects.get(kind="email_changed", user=alice)
    assert event.detail == {"previous": "alice@example.com"}


@pytest.mark.django_db
def test_an_admin_changes_a_role_in_the_django_admin_through_the_role_service(client, alice, admin_user):
    client.force_login(admin_user)
    page = client.get(f"/admin/accounts/user/{alice.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form[name].value() or "" for name in form.fields if name not in ("password", "is_superuser")}

    response = client.post(f"/admin/accounts/user/{alice.pk}/change/", {**data, "role": "operator", "is_active": "on"})

    assert response.status_code == 302, response.content[:2000]
    alice.refresh_from_db()
    assert alice.role == "operator" and alice.is_staff
    assert SecurityEvent.objects.get(kind="role_changed", user=alice).actor == admin_user


@pytest.mark.django_db
def test_operators_browse_security_events_and_the_audit_trail_read_only_in_the_admin(client, alice, operator):
    client.force_login(operator)

    assert client.get("/admin/accounts/securityevent/?kind__exact=signup").status_code == 200
    assert client.get("/admin/auditlog/logentry/").status_code == 200
    event = SecurityEvent.objects.filter(user=alice).first()
    detail = client.get(f"/admin/accounts/securityevent/{event.pk}/change/")
    assert detail.status_code == 200
    assert b"<title>Signed up" in detail.content and b"View security event" in detail.content
    assert b'name="_save"' not in detail.content
    assert client.post(f"/admin/accounts/securityevent/{event.pk}/delete/").status_code == 403
    assert client.get("/admin/accounts/user/add/").status_code == 403


@pytest.mark.django_db
def test_demoting_a_superuser_takes_away_their_superuser_powers(alice, admin_user):
    from accounts.services import user_set_role

    root = make_user("root", role="admin")
    root.is_superuser = True
    root.save()

    response = api_client(admin_user).patch(f"/api/v1/users/{root.pk}", {"role": "member"}, format="json")

    assert response.status_code == 200 and response.json()["role"] == "member"
    root.refresh_from_db()
    assert not root.is_superuser and not root.has_perm("accounts.manage_roles")
    assert user_set_role  # the API went through the role service


@pytest.mark.django_db
def test_the_admin_form_cannot_deactivate_or_demote_the_last_admin(client, admin_user):
    client.force_login(admin_user)
    page = client.get(f"/admin/accounts/user/{admin_user.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form[name].value() or "" for name in form.fields if name not in ("password", "is_active")}

    response = client.post(f"/admin/accounts/user/{admin_user.pk}/change/", {**data, "role": "admin"})  # unticked

    assert response.status_code == 200 and b"last active admin" in response.content
    admin_user.refresh_from_db()
    assert admin_user.is_active and admin_user.role == "admin"


@pytest.mark.django_db(transaction=True)
def test_two_admins_demoting_each_other_at_once_leave_one_admin():
    import threading

    from django.db import connection

    from accounts.services import user_set_role
    from core.exceptions import Conflict

    first, second = make_user("ann", role="admin"), make_user("ben", role="admin")
    barrier, outcomes = threading.Barrier(2), []

    def demote(user, actor):
        barrier.wait()
        try:
            user_set_role(user=user, role="member", actor=actor)
            outcomes.append("demoted")
        except Conflict:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=demote, args=pair) for pair in [(first, second), (second, first)]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["demoted", "refused"]
    assert Group.objects.get(name="admin").user_set.count() == 1


@pytest.mark.django_db
def test_a_member_probing_other_user_ids_for_keys_learns_nothing(alice, bob):
    client = api_client(alice)

    existing = client.post("/api/v1/keys", {"name": "x", "scopes": ["account:read"], "user": bob.pk}, format="json")
    missing = client.post("/api/v1/keys", {"name": "x", "scopes": ["account:read"], "user": 999999}, format="json")

    assert existing.status_code == missing.status_code == 403
