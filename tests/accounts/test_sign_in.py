import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.models import Preferences, SecurityEvent
from tests.conftest import PASSWORD, api_client, make_user

User = get_user_model()


def kinds(**filters):
    return list(SecurityEvent.objects.filter(**filters).order_by("id").values_list("kind", flat=True))


@pytest.mark.django_db
def test_signing_up_over_the_api_makes_a_member_with_argon2_password_and_default_preferences(client):
    response = client.post(
        "/api/v1/auth/signup",
        {"username": "dora", "email": "dora@example.com", "password": PASSWORD},
        content_type="application/json",
        HTTP_USER_AGENT="curl/8",
    )

    assert response.status_code == 201
    assert response.json()["role"] == "member"
    dora = User.objects.get(username="dora")
    assert Preferences.objects.filter(user=dora).exists()
    event = SecurityEvent.objects.get(user=dora, kind=SecurityEvent.Kind.SIGNUP)
    assert event.user_agent == "curl/8" and event.request_id == response["X-Request-ID"]


def test_production_hashes_passwords_with_argon2():
    from platform_site import settings as production_settings

    assert production_settings.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"


@pytest.mark.django_db
def test_signup_refuses_weak_passwords_and_taken_names_and_keeps_nothing(client, alice):
    weak = client.post(
        "/api/v1/auth/signup",
        {"username": "eve", "email": "eve@example.com", "password": "password"},
        content_type="application/json",
    )
    taken = client.post(
        "/api/v1/auth/signup",
        {"username": "ALICE", "email": "a2@example.com", "password": PASSWORD},
        content_type="application/json",
    )

    assert weak.status_code == 400 and weak.json()["errors"][0]["attr"] == "password"
    assert "too common" in " ".join(error["detail"] for error in weak.json()["errors"])
    assert taken.status_code == 400 and taken.json()["errors"][0]["attr"] == "username"
    assert not User.objects.filter(username__in=["eve", "ALICE"]).exists()


@pytest.mark.django_db
def test_signup_can_be_closed(client, settings):
    settings.REGISTRATION_OPEN = False

    response = client.post(
        "/api/v1/auth/signup",
        {"username": "dora", "email": "dora@example.com", "password": PASSWORD},
        content_type="application/json",
    )

    assert response.status_code == 403
    assert client.get("/accounts/signup/").status_code == 403


@pytest.mark.django_db
def test_api_login_starts_a_session_and_logout_ends_it_with_events(alice):
    client = api_client()

    assert (
        client.post("/api/v1/auth/login", {"username": "alice", "password": PASSWORD}, format="json").status_code == 200
    )
    assert client.get("/api/v1/me").json()["username"] == "alice"
    assert client.post("/api/v1/auth/logout").status_code == 204
    assert client.get("/api/v1/me").status_code == 401
    assert kinds(user=alice) == ["signup", "login_succeeded", "logout"]


@pytest.mark.django_db
def test_a_failed_login_is_recorded_with_the_address_and_user_agent(alice):
    response = api_client().post(
        "/api/v1/auth/login",
        {"username": "alice", "password": "nope"},
        format="json",
        REMOTE_ADDR="203.0.113.9",
        HTTP_USER_AGENT="bot/1",
    )

    assert response.status_code == 401
    event = SecurityEvent.objects.get(kind=SecurityEvent.Kind.LOGIN_FAILED)
    assert (event.user, event.ip_address, event.user_agent, event.detail) == (
        alice,
        "203.0.113.9",
        "bot/1",
        {"username": "alice"},
    )


def login(client, username, password, **headers):
    return client.post("/accounts/login/", {"username": username, "password": password}, **headers)


@pytest.mark.django_db
def test_repeated_failures_lock_out_the_account_even_with_the_right_password(client, alice, settings):
    settings.AXES_FAILURE_LIMIT = 3

    for n in range(3):
        login(client, "alice", "wrong", REMOTE_ADDR=f"198.51.100.{n}")
    locked = login(client, "alice", PASSWORD, REMOTE_ADDR="198.51.100.77")

    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content
    assert "_auth_user_id" not in client.session
    assert SecurityEvent.objects.filter(kind=SecurityEvent.Kind.LOGIN_LOCKED_OUT, user=alice).exists()
    assert SecurityEvent.objects.filter(kind=SecurityEvent.Kind.LOGIN_FAILED, user=alice).count() >= 3
    api = api_client().post("/api/v1/auth/login", {"username": "alice", "password": PASSWORD}, format="json")
    assert api.status_code == 429 and "Retry-After" in api


@pytest.mark.django_db
def test_a_forged_forwarded_for_neither_escapes_the_lockout_nor_locks_out_someone_else(client, alice, settings):
    # Given one trusted proxy (at 10.0.0.1) that appends the address it saw to X-Forwarded-For
    settings.TRUSTED_PROXY_COUNT = 1
    settings.AXES_FAILURE_LIMIT = 3
    attacker, victim = "203.0.113.66", "198.51.100.20"
    make_user("victim")

    # When the attacker guesses different accounts, each time forging the victim's address in front
    for n in range(3):
        login(
            client,
            f"guess{n}",
            "wrong",
            REMOTE_ADDR="10.0.0.1",
            HTTP_X_FORWARDED_FOR=f"{victim}, {attacker}",
        )

    # Then the attacker's own address is locked out whatever it forges next
    blocked = login(client, "alice", PASSWORD, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=f"192.0.2.1, {attacker}")
    assert blocked.status_code == 429
    # And the victim, whose address was forged, still logs in
    allowed = login(client, "victim", PASSWORD, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=victim)
    assert allowed.status_code == 302
    assert set(SecurityEvent.objects.filter(kind="login_failed").values_list("ip_address", flat=True)) == {attacker}


@pytest.mark.django_db
def test_login_attempts_are_slowed_per_address_before_any_lockout(client, alice, settings):
    settings.LOGIN_RATE = "3/m"

    statuses = [login(client, f"user{n}", "wrong", REMOTE_ADDR="203.0.113.5").status_code for n in range(4)]
    other_address = login(client, "alice", PASSWORD, REMOTE_ADDR="203.0.113.6")

    assert statuses == [200, 200, 200, 429]
    assert other_address.status_code == 302


@pytest.mark.django_db
def test_login_attempts_are_slowed_per_account_across_addresses(alice, settings):
    settings.LOGIN_RATE = "3/m"
    client = api_client()

    statuses = [
        client.post(
            "/api/v1/auth/login",
            {"username": "alice", "password": "wrong"},
            format="json",
            REMOTE_ADDR=f"203.0.113.{n}",
        ).status_code
        for n in range(4)
    ]

    assert statuses == [401, 401, 401, 429]


@pytest.mark.django_db
def test_password_change_over_the_api_checks_the_old_password_and_validators(alice):
    client = api_client(alice)

    wrong_old = client.post(
        "/api/v1/auth/password", {"old_password": "x", "new_password": "N3w-passphrase!"}, format="json"
    )
    weak_new = client.post("/api/v1/auth/password", {"old_password": PASSWORD, "new_password": "123"}, format="json")
    changed = client.post(
        "/api/v1/auth/password", {"old_password": PASSWORD, "new_password": "N3w-passphrase!"}, format="json"
    )

    assert (wrong_old.status_code, weak_new.status_code, changed.status_code) == (400, 400, 204)
    assert client.get("/api/v1/me").status_code == 200, "the session survives its own password change"
    alice.refresh_from_db()
    assert alice.check_password("N3w-passphrase!")
    assert kinds(user=alice, kind="password_changed") == ["password_changed"]


@pytest.mark.django_db
def test_password_reset_over_the_api_mails_a_link_whose_token_sets_a_new_password(alice, mailoutbox):
    client = api_client()

    assert client.post("/api/v1/auth/password-reset", {"email": "nobody@example.com"}, format="json").status_code == 202
    assert client.post("/api/v1/auth/password-reset", {"email": "alice@example.com"}, format="json").status_code == 202

    assert len(mailoutbox) == 1
    uid, token = re.search(r"/password/reset/([^/]+)/([^/]+)/", mailoutbox[0].body).groups()
    bad = client.post(
        "/api/v1/auth/password-reset/confirm",
        {"uid": uid, "token": "bad-token", "new_password": "N3w-passphrase!"},
        format="json",
    )
    good = client.post(
        "/api/v1/auth/password-reset/confirm",
        {"uid": uid, "token": token, "new_password": "N3w-passphrase!"},
        format="json",
    )
    again = client.post(
        "/api/v1/auth/password-reset/confirm",
        {"uid": uid, "token": token, "new_password": "An0ther-passphrase!"},
        format="json",
    )

    assert (bad.status_code, good.status_code, again.status_code) == (400, 204, 400)
    alice.refresh_from_db()
    assert alice.check_password("N3w-passphrase!")
    assert kinds(user=alice, kind__startswith="password_reset") == ["password_reset_requested", "password_reset"]


@pytest.mark.django_db
def test_password_reset_in_the_browser(client, alice, mailoutbox):
    client.post("/accounts/password/reset/", {"email": "alice@example.com"})
    link = re.search(r"http://testserver(\S+)", mailoutbox[0].body).group(1)

    form_page = client.get(link, follow=True)
    done = client.post(
        form_page.redirect_chain[-1][0], {"new_password1": "N3w-passphrase!", "new_password2": "N3w-passphrase!"}
    )

    assert done.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("N3w-passphrase!")
    assert kinds(user=alice, kind="password_reset") == ["password_reset"]


@pytest.mark.django_db
def test_with_redis_unreachable_logins_are_refused_with_a_503_not_let_through(client, alice, settings, tmp_path):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"unix://{tmp_path}/no-redis.sock",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }

    page = login(client, "alice", PASSWORD)
    api_caller = api_client()
    api_caller.raise_request_exception = False  # a 5xx is also reported to Django's error log, as it should
    api = api_caller.post("/api/v1/auth/login", {"username": "alice", "password": PASSWORD}, format="json")

    assert page.status_code == 503 and b"unavailable right now" in page.content
    assert api.status_code == 503 and api.json()["errors"][0]["code"] == "service_unavailable"
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_logging_in_to_ones_own_account_does_not_clear_failures_against_another(alice, settings):
    # Given an attacker who has an account of their own and guesses alice's password in between
    settings.AXES_FAILURE_LIMIT = 3
    make_user("mallory")
    attacker = {"REMOTE_ADDR": "203.0.113.7"}
    for _ in range(3):
        login(Client(), "alice", "wrong", **attacker)
        login(Client(), "mallory", PASSWORD, **attacker)

    # Then the three failures still count: alice's account is locked, even from elsewhere
    assert login(Client(), "alice", PASSWORD, REMOTE_ADDR="198.51.100.9").status_code == 429


@pytest.mark.django_db
def test_the_api_login_takes_json_only_so_a_cross_site_form_cannot_sign_someone_in(alice):
    form_post = api_client().post("/api/v1/auth/login", {"username": "alice", "password": PASSWORD})

    assert form_post.status_code == 415


@pytest.mark.django_db
def test_passwords_keep_their_spaces(client):
    spaced = "  a long passphrase  "
    api_client().post(
        "/api/v1/auth/signup", {"username": "sam", "email": "sam@example.com", "password": spaced}, format="json"
    )

    assert login(client, "sam", spaced).status_code == 302
