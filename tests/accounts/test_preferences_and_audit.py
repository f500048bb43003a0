import json
import time
from datetime import timedelta
from io import StringIO

import pytest
from auditlog.models import LogEntry
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from accounts.models import ApiKey, Preferences, SecurityEvent
from accounts.selectors import preferences_get
from tests.agents.conftest import fake_llm, model  # noqa: F401
from tests.conftest import api_client, make_key


@pytest.mark.django_db
def test_preferences_start_from_defaults_and_partial_updates_keep_the_rest(alice):
    client = api_client(alice)

    assert client.get("/api/v1/preferences").json() | {"updated_at": None} == {
        "default_agent": "",
        "default_model": "",
        "memory_enabled": True,
        "memory_retention_days": None,
        "memory_max_items": None,
        "timezone": "UTC",
        "notification_webhook": "",
        "updated_at": None,
    }
    client.patch("/api/v1/preferences", {"timezone": "Europe/Paris", "memory_retention_days": 30}, format="json")
    client.patch("/api/v1/preferences", {"memory_enabled": False}, format="json")

    preferences = preferences_get(user=alice)
    assert (preferences.timezone, preferences.memory_retention_days, preferences.memory_enabled) == (
        "Europe/Paris",
        30,
        False,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change, field",
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"memory_retention_days": 0}, "memory_retention_days"),
        ({"memory_retention_days": 100000}, "memory_retention_days"),
        ({"notification_webhook": "ftp://example.com/hook"}, "notification_webhook"),
        ({"memory_enabled": "perhaps"}, "memory_enabled"),
    ],
)
def test_invalid_preferences_get_a_400_naming_the_field_and_change_nothing(alice, change, field, model):  # noqa: F811
    client = api_client(alice)
    client.patch("/api/v1/preferences", {"timezone": "Asia/Tokyo"}, format="json")

    response = client.patch("/api/v1/preferences", {**change, "default_model": model.name}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == field
    assert (preferences_get(user=alice).timezone, preferences_get(user=alice).default_model) == ("Asia/Tokyo", "")


@pytest.mark.django_db
def test_model_changes_are_in_the_audit_trail_with_actor_and_request_id_but_no_secrets(alice):
    client = api_client(alice)

    created = client.post(
        "/api/v1/keys", {"name": "audited", "scopes": ["account:read"]}, format="json", HTTP_X_REQUEST_ID="req-audit-1"
    )
    client.patch("/api/v1/preferences", {"timezone": "Europe/Berlin"}, format="json")
    client.post(f"/api/v1/keys/{created.json()['id']}/revoke")

    key_entries = LogEntry.objects.get_for_object(ApiKey.objects.get()).order_by("id")
    assert [entry.action for entry in key_entries] == [LogEntry.Action.CREATE, LogEntry.Action.UPDATE]
    assert all(entry.actor == alice for entry in key_entries)
    assert key_entries[0].cid == "req-audit-1"
    assert "secret_hash" not in json.dumps([entry.changes for entry in key_entries])
    assert "revoked_at" in key_entries[1].changes_dict
    preference_entry = LogEntry.objects.get_for_object(Preferences.objects.get(user=alice)).latest("id")
    assert preference_entry.changes_dict["timezone"] == ["UTC", "Europe/Berlin"]


@pytest.mark.django_db
def test_api_key_requests_are_audited_under_the_keys_owner(alice):
    full_key = make_key(alice, scopes=["account:write"])

    api_client(key=full_key).patch("/api/v1/preferences", {"timezone": "Europe/Rome"}, format="json")

    entry = LogEntry.objects.get_for_object(Preferences.objects.get(user=alice)).latest("id")
    assert entry.actor == alice


@pytest.mark.django_db
def test_a_user_reads_their_own_security_events_only(alice, bob):
    alice_client = api_client(key=make_key(alice))
    make_key(bob)

    events = alice_client.get("/api/v1/security-events").json()["results"]

    assert [event["kind"] for event in events] == ["key_created", "signup"]
    assert [event["kind"] for event in alice_client.get("/api/v1/security-events?kind=signup").json()["results"]] == [
        "signup"
    ]


# --- bulk rotation and expiry --------------------------------------------------------------------------


def run_apikeys(*args):
    out, err = StringIO(), StringIO()
    call_command("apikeys", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_bulk_rotation_dry_run_changes_nothing_and_the_real_run_prints_working_keys(alice, bob):
    old_alice, old_bob = make_key(alice, name="a"), make_key(bob, name="b")

    out, err = run_apikeys("rotate", "--user", "alice", "--dry-run")
    assert out == "" and "would rotate" in err and "1 key(s)" in err
    assert ApiKey.objects.filter(rotated_at__isnull=False).count() == 0

    out, err = run_apikeys("rotate", "--user", "alice", "--grace-hours", "1")

    [line] = out.splitlines()
    rotated = json.loads(line)
    assert rotated["user"] == "alice"
    assert api_client(key=rotated["key"]).get("/api/v1/me").status_code == 200
    assert api_client(key=old_alice).get("/api/v1/me").status_code == 200, "the grace period applies"
    assert ApiKey.objects.get(name="b").rotated_at is None
    assert api_client(key=old_bob).get("/api/v1/me").status_code == 200


@pytest.mark.django_db
def test_bulk_expiry_by_age_stops_only_old_keys(alice):
    old, new = make_key(alice, name="old"), make_key(alice, name="new")
    ApiKey.objects.filter(name="old").update(created_at=timezone.now() - timedelta(days=100))

    out, err = run_apikeys("expire", "--older-than", "90d")

    assert "1 key(s) expired" in err
    assert api_client(key=old).get("/api/v1/me").status_code == 401
    assert api_client(key=new).get("/api/v1/me").status_code == 200
    assert SecurityEvent.objects.filter(kind="key_expired", api_key__name="old").exists()


def test_bad_durations_are_refused_with_a_clear_message():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="not a duration"):
        run_apikeys("expire", "--older-than", "ninety days")


def test_the_expiry_job_is_on_the_database_beat_schedule(migrated_schedule):
    task = PeriodicTask.objects.get(name="expire API keys")

    assert task.task == "accounts.expire_api_keys" and task.enabled and task.interval.period == "minutes"


@pytest.mark.django_db(transaction=True)
def test_the_worker_runs_the_expiry_job(celery_worker, alice):
    from accounts.tasks import expire_api_keys_task

    make_key(alice, expires_at=timezone.now() + timedelta(milliseconds=200))
    time.sleep(0.3)
    assert expire_api_keys_task.delay().get(timeout=30) == 1
    assert ApiKey.objects.get(user=alice).status == "expired"
