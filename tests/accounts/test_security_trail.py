"""The tamper-evident security-event trail: events chained as they are written (concurrent writers too), and
every kind of tampering found and named by the verification, the command and the alert rule; the key rotated
with fallbacks, and the chain sealed again with the current key."""

import io
import json
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from accounts.models import SecurityEvent, TrailCheck
from accounts.services import security_event_record
from accounts.tasks import verify_security_trail_task
from accounts.trail import GENESIS, RESEALED, seal_of, trail_verify
from monitoring.models import Alert, AlertRule
from monitoring.services import alerts_evaluate
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def record(n: int, user=None) -> list[SecurityEvent]:
    return [security_event_record(kind="login_failed", user=user, attempt=i) for i in range(n)]


def sql(statement: str, *params) -> None:
    """Tampering as someone with database access would: behind the application's back."""
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def chain() -> list[SecurityEvent]:
    return list(SecurityEvent.objects.order_by("sequence"))


def test_each_event_is_sealed_as_the_next_link_of_the_chain(alice):
    record(3, user=alice)
    events = chain()
    assert [event.sequence for event in events] == list(range(1, len(events) + 1))
    assert events[0].previous_seal == GENESIS
    for before, after in zip(events, events[1:], strict=False):
        assert after.previous_seal == before.seal
    assert len({event.seal for event in events}) == len(events)
    check = trail_verify()
    assert (check.ok, check.events, check.problem) == (True, len(events), "")


def test_concurrent_writers_never_fork_the_chain(transactional_db):
    start = threading.Barrier(6)

    def write():
        start.wait()
        record(8)
        connection.close()

    threads = [threading.Thread(target=write) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    events = chain()
    assert [event.sequence for event in events] == list(range(1, 49))
    assert trail_verify().ok


def test_a_changed_event_is_named_as_the_first_broken_link(alice):
    events = record(4, user=alice)
    sql("UPDATE accounts_securityevent SET detail = '{\"attempt\": 99}' WHERE id = %s", events[2].pk)
    check = trail_verify()
    assert not check.ok
    assert check.broken_at == events[2].sequence
    assert check.problem == f"event #{events[2].sequence} (id {events[2].pk}): its content or seal was changed"


def test_a_removed_event_is_named(alice):
    events = record(4, user=alice)
    sql("DELETE FROM accounts_securityevent WHERE id = %s", events[1].pk)
    check = trail_verify()
    assert check.broken_at == events[1].sequence
    assert "it is missing" in check.problem


def test_events_removed_from_the_end_are_noticed_by_the_next_verification(alice):
    events = record(3, user=alice)
    assert trail_verify().ok
    sql("DELETE FROM accounts_securityevent WHERE id = %s", events[-1].pk)
    check = trail_verify()
    assert not check.ok
    assert check.problem == f"event #{events[-1].sequence}: it was removed: the last verification ended there"


def test_an_event_inserted_without_a_seal_is_outside_the_chain(alice):
    record(2, user=alice)
    sql(
        "INSERT INTO accounts_securityevent (kind, created_at, user_agent, request_id, detail, previous_seal, seal) "
        "VALUES ('login_succeeded', now(), '', '', '{}', '', '')"
    )
    check = trail_verify()
    assert not check.ok and "outside the chain" in check.problem


def test_a_reassigned_event_is_named_but_a_deleted_user_breaks_nothing(alice, bob):
    [event] = record(1, user=alice)
    charlie = make_user("charlie")
    record(1, user=charlie)
    charlie.delete()  # the foreign key empties; the reference sealed with the event stays
    assert trail_verify().ok

    sql("UPDATE accounts_securityevent SET user_id = %s WHERE id = %s", bob.pk, event.pk)
    check = trail_verify()
    assert check.problem == f"event #{event.sequence} (id {event.pk}): its user was changed"


def test_the_command_says_whether_the_trail_is_intact_and_where_it_breaks(alice):
    events = record(2, user=alice)
    out = io.StringIO()
    call_command("security_trail", "verify", stdout=out)
    assert out.getvalue().startswith(f"The security-event trail is intact: {len(chain())} events")

    sql("UPDATE accounts_securityevent SET ip_address = '10.0.0.1' WHERE id = %s", events[0].pk)
    with pytest.raises(CommandError, match=rf"broken at event #{events[0].sequence} \(id {events[0].pk}\)"):
        call_command("security_trail", "verify")


def test_the_daily_job_records_a_break_and_the_alert_rule_opens_until_the_trail_verifies_again(alice):
    from importlib import import_module

    from django.apps import apps

    import_module("monitoring.migrations.0002_default_rules_and_schedule").create(apps, None)  # (flushed?)
    AlertRule.objects.exclude(kind="security_trail").delete()
    events = record(2, user=alice)
    sql("UPDATE accounts_securityevent SET detail = '{}' WHERE id = %s", events[0].pk)

    result = verify_security_trail_task()  # what the beat job runs
    assert result["ok"] is False and TrailCheck.objects.get().broken_at == events[0].sequence
    alerts_evaluate()
    alert = Alert.objects.get()
    assert alert.rule.name == "Security trail broken" and alert.state == "open"
    assert alert.summary.startswith(f"The security-event trail is broken at event #{events[0].sequence}")


# --- rotating the key -----------------------------------------------------------------------------------------


def forge(event: SecurityEvent, key: bytes, **changes) -> None:
    """What someone holding `key` and the database could do: change an event and chain everything after it again."""
    previous = event.previous_seal
    for link in SecurityEvent.objects.filter(sequence__gte=event.sequence).order_by("sequence"):
        for name, value in (changes if link.pk == event.pk else {}).items():
            setattr(link, name, value)
        link.previous_seal = previous
        link.seal = previous = seal_of(link, key)
        sql(
            "UPDATE accounts_securityevent SET detail = %s, previous_seal = %s, seal = %s WHERE id = %s",
            json.dumps(link.detail),
            link.previous_seal,
            link.seal,
            link.pk,
        )


def rotated(settings, *, before: int, after: int) -> list[SecurityEvent]:
    """Events sealed with the key 'old', the key rotated to 'new' with 'old' as a fallback, then more events (the
    only events of the test: no user fixture, whose sign-up would be sealed with the default key)."""
    settings.SECURITY_TRAIL_KEY, settings.SECURITY_TRAIL_KEY_FALLBACKS = "old", []
    events = record(before)
    settings.SECURITY_TRAIL_KEY, settings.SECURITY_TRAIL_KEY_FALLBACKS = "new", ["old"]
    return events + record(after)


def test_after_a_rotation_events_sealed_with_a_fallback_key_still_verify_and_new_ones_take_the_new_key(settings):
    events = rotated(settings, before=3, after=2)

    assert events[-1].seal == seal_of(events[-1], b"new")
    check = trail_verify()
    assert check.ok
    assert check.sealed_with == [2, 3]  # links per key: the current one, then the fallback

    settings.SECURITY_TRAIL_KEY_FALLBACKS = []  # the old key forgotten before the chain was sealed again
    check = trail_verify()
    assert (check.ok, check.broken_at) == (False, 1)
    assert check.problem.endswith("its content or seal was changed")


def test_with_fallback_keys_a_changed_event_is_still_named(settings):
    events = rotated(settings, before=3, after=2)

    sql("UPDATE accounts_securityevent SET detail = '{\"attempt\": 99}' WHERE id = %s", events[1].pk)

    check = trail_verify()
    assert check.problem == f"event #{events[1].sequence} (id {events[1].pk}): its content or seal was changed"


def test_a_chain_sealed_again_with_a_key_not_in_the_list_is_broken_where_the_forgery_starts(settings):
    events = rotated(settings, before=3, after=2)

    forge(events[1], b"stolen", detail={"attempt": 99})

    check = trail_verify()
    assert (check.ok, check.broken_at) == (False, events[1].sequence)
    assert "its content or seal was changed" in check.problem


def test_reseal_seals_the_chain_with_the_current_key_records_itself_and_lets_the_fallbacks_go(settings):
    events = rotated(settings, before=3, after=2)
    out = io.StringIO()
    call_command("security_trail", "verify", stdout=out)
    assert "SECURITY_TRAIL_KEY_FALLBACKS[0] still seals 3 events" in out.getvalue()

    out = io.StringIO()
    call_command("security_trail", "reseal", stdout=out)

    assert out.getvalue().startswith("The security-event trail is sealed with the current key:")
    resealed = SecurityEvent.objects.get(kind=RESEALED)
    assert (resealed.sequence, resealed.detail) == (6, {"events": 5, "resealed": 5, "with_fallbacks": 3})
    assert all(event.seal == seal_of(event, b"new") for event in chain())
    settings.SECURITY_TRAIL_KEY_FALLBACKS = []
    out = io.StringIO()
    call_command("security_trail", "verify", stdout=out)
    assert out.getvalue().startswith(f"The security-event trail is intact: {len(chain())} events")

    # The old key, had it leaked, no longer seals anything that verifies.
    forge(events[0], b"old", detail={"attempt": 99})
    assert trail_verify().broken_at == events[0].sequence


def test_with_no_fallback_left_the_verification_says_the_fallbacks_can_be_dropped(settings):
    settings.SECURITY_TRAIL_KEY, settings.SECURITY_TRAIL_KEY_FALLBACKS = "new", ["old"]
    record(2)
    out = io.StringIO()
    call_command("security_trail", "verify", stdout=out)
    assert "SECURITY_TRAIL_KEY_FALLBACKS[0] seals no event: it can be dropped." in out.getvalue()


def test_a_chain_sealed_with_the_key_derived_from_secret_key_moves_to_a_key_of_its_own(settings, alice):
    settings.SECURITY_TRAIL_KEY = ""  # sealed with the key derived from SECRET_KEY (alice's sign-up too)
    record(2, user=alice)
    old_secret_key = settings.SECRET_KEY

    settings.SECRET_KEY = "rotated-" + old_secret_key  # SECRET_KEY rotated while the trail key is unset
    settings.SECURITY_TRAIL_KEY_FALLBACKS = [f"secret-key:{old_secret_key}"]
    record(1, user=alice)
    assert trail_verify().ok

    settings.SECURITY_TRAIL_KEY = "mine"  # then a key of its own
    settings.SECURITY_TRAIL_KEY_FALLBACKS = [f"secret-key:{settings.SECRET_KEY}", f"secret-key:{old_secret_key}"]
    record(1, user=alice)
    check = trail_verify()
    assert check.ok and check.sealed_with == [1, 1, len(chain()) - 2]

    call_command("security_trail", "reseal", stdout=io.StringIO())
    settings.SECURITY_TRAIL_KEY_FALLBACKS = []
    assert trail_verify().ok


def test_reseal_refuses_a_broken_chain_and_changes_nothing(settings):
    events = rotated(settings, before=3, after=2)
    sql("UPDATE accounts_securityevent SET detail = '{}' WHERE id = %s", events[3].pk)
    seals = [event.seal for event in chain()]

    with pytest.raises(
        CommandError, match=rf"Not resealed: the security-event trail is broken at event #{events[3].sequence}"
    ):
        call_command("security_trail", "reseal")

    assert [event.seal for event in chain()] == seals
    assert not SecurityEvent.objects.filter(kind=RESEALED).exists()
    assert TrailCheck.objects.get().broken_at == events[3].sequence


def test_reseal_refuses_a_chain_whose_last_events_were_removed_since_the_last_verification(settings):
    events = rotated(settings, before=2, after=2)
    assert trail_verify().ok
    sql("DELETE FROM accounts_securityevent WHERE id = %s", events[-1].pk)

    with pytest.raises(CommandError, match="it was removed"):
        call_command("security_trail", "reseal")
    assert not SecurityEvent.objects.filter(kind=RESEALED).exists()


def test_writers_wait_for_a_reseal_and_the_chain_stays_whole(settings, transactional_db):
    settings.SECURITY_TRAIL_KEY = "old"
    record(30)
    settings.SECURITY_TRAIL_KEY, settings.SECURITY_TRAIL_KEY_FALLBACKS = "new", ["old"]
    start = threading.Barrier(5)

    def write():
        start.wait()
        record(6)
        connection.close()

    def reseal():
        start.wait()
        call_command("security_trail", "reseal", stdout=io.StringIO())
        connection.close()

    threads = [threading.Thread(target=write) for _ in range(4)] + [threading.Thread(target=reseal)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    settings.SECURITY_TRAIL_KEY_FALLBACKS = []
    events = chain()
    assert [event.sequence for event in events] == list(range(1, 30 + 24 + 2))
    assert trail_verify().ok
