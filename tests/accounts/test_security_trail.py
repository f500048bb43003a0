"""The tamper-evident security-event trail: events chained as they are written (concurrent writers too), and
every kind of tampering found and named by the verification, the command and the alert rule."""

import io
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from accounts.models import SecurityEvent, TrailCheck
from accounts.services import security_event_record
from accounts.tasks import verify_security_trail_task
from accounts.trail import GENESIS, trail_verify
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
    AlertRule.objects.exclude(kind="security_trail").delete()
    events = record(2, user=alice)
    sql("UPDATE accounts_securityevent SET detail = '{}' WHERE id = %s", events[0].pk)

    result = verify_security_trail_task()  # what the beat job runs
    assert result["ok"] is False and TrailCheck.objects.get().broken_at == events[0].sequence
    alerts_evaluate()
    alert = Alert.objects.get()
    assert alert.rule.name == "Security trail broken" and alert.state == "open"
    assert alert.summary.startswith(f"The security-event trail is broken at event #{events[0].sequence}")
