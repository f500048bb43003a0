"""Alert notifications as operators get them: e-mails sent (and retried) by a real worker, signed webhook
deliveries to a real receiver, the beat job's round run by the worker, and the admin pages."""

import email
import email.policy
import json
import socket
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings
from standardwebhooks import Webhook

from monitoring.models import Alert, AlertNotification, AlertRule
from monitoring.services import EmailFailed, alert_email_send, alerts_evaluate
from monitoring.tasks import alerts_evaluate_task
from quotas.models import QuotaPolicy
from quotas.services.ledger import usage_record
from tasks.services.webhooks import webhook_endpoint_create
from tests.conftest import make_user
from tests.tasks.conftest import Receiver, wait_until


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def over_budget(alice):
    """alice at 90 % of a daily budget of 10 USD, and no rule but the test's."""
    AlertRule.objects.all().delete()
    QuotaPolicy.objects.create(name="alice-daily", applies_to="user", user=alice, cost_per_day=Decimal("10"))
    usage_record(
        run_id=uuid.uuid4(),
        user=alice,
        api_key=None,
        agent_type="assistant",
        model="echo",
        input_tokens=1,
        output_tokens=1,
        cost=Decimal("9"),
        cached=False,
    )
    return QuotaPolicy.objects.get(name="alice-daily")


def mails_to(address: str, marker: str) -> list[tuple[str, str]]:
    """(subject, body) of the mails to `address` whose subject has `marker` (test settings: mail goes to files)."""
    folder = Path(settings.EMAIL_FILE_PATH)
    found = []
    for path in folder.glob("*.log") if folder.exists() else []:
        for text in path.read_text().split("-" * 79 + "\n"):
            message = email.message_from_string(text.strip(), policy=email.policy.default)
            if message["To"] == address and marker in (message["Subject"] or ""):
                found.append((message["Subject"], message.get_content()))
    return found


@pytest.mark.django_db(transaction=True)
def test_a_worker_mails_the_alert_to_every_address_of_the_rule(celery_worker, over_budget):
    marker = uuid.uuid4().hex[:8]
    rule = AlertRule.objects.create(
        name=f"Budget {marker}",
        kind="budget",
        threshold=80,
        severity="critical",
        email_to="a@example.com, b@example.com",
    )
    alerts_evaluate()

    for address in ("a@example.com", "b@example.com"):
        [(subject, body)] = wait_until(lambda address=address: mails_to(address, marker), timeout=10)
        assert subject == f"[Switchboard] OPEN critical: Budget {marker}: user alice: alice-daily cost_per_day"
        assert "alice used 90% of cost_per_day under alice-daily (9 of 10 USD)" in body
        assert f"/admin/monitoring/alert/{Alert.objects.get(rule=rule).pk}/change/" in body
    wait_until(lambda: not AlertNotification.objects.exclude(status="sent").exists(), timeout=10)
    assert AlertNotification.objects.filter(status="sent", attempts=1).count() == 2


@pytest.mark.django_db(transaction=True)
def test_an_operators_webhook_gets_the_opened_and_resolved_events_signed(celery_worker, over_budget, receiver):
    operator = make_user("olga", role="operator")
    endpoint, secret = webhook_endpoint_create(owner=operator, url=receiver.url, events=["task.succeeded"])
    rule = AlertRule.objects.create(name="Budget 80", kind="budget", threshold=80)
    rule.webhook_endpoints.add(endpoint)

    alerts_evaluate()
    over_budget.cost_per_day = Decimal("100")  # raised: 9 %
    over_budget.save()
    alerts_evaluate()

    requests = receiver.wait_for(2)
    for request in requests:
        headers = {name.lower(): value for name, value in request["headers"].items()}
        Webhook(secret).verify(request["body"], headers)  # raises if the signature is wrong
    events = sorted((json.loads(r["body"]) for r in requests), key=lambda e: e["data"]["event"])
    assert [e["type"] for e in events] == ["alert.opened", "alert.resolved"]
    opened = events[0]["data"]
    assert opened["rule"] == "Budget 80" and opened["subject"] == "user alice: alice-daily cost_per_day"
    assert (opened["value"], opened["threshold"], opened["state"]) == ("90.00", "80.00", "open")
    assert events[1]["data"]["state"] == "resolved" and events[1]["data"]["resolved_at"]
    wait_until(
        lambda: all(n.webhook_delivery.status == "succeeded" for n in AlertNotification.objects.all()), timeout=10
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db
def test_a_refused_email_is_recorded_and_retried_and_the_last_refusal_marks_it_failed(over_budget):
    AlertRule.objects.create(name="Budget 80", kind="budget", threshold=80, email_to="oncall@example.com")
    alerts_evaluate()
    notification = AlertNotification.objects.get()

    smtp = {"EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend", "EMAIL_PORT": closed_port()}
    with override_settings(EMAIL_HOST="127.0.0.1", EMAIL_TIMEOUT=2, **smtp):
        with pytest.raises(EmailFailed):  # the task tries again later
            alert_email_send(notification_id=notification.pk, last_attempt=False)
        notification.refresh_from_db()
        assert (notification.status, notification.attempts) == ("pending", 1)
        assert notification.last_error.startswith("ConnectionRefusedError")

        with pytest.raises(EmailFailed):
            alert_email_send(notification_id=notification.pk, last_attempt=True)
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("failed", 2)


@pytest.mark.django_db(transaction=True)
def test_the_beat_job_runs_a_round_on_a_worker(celery_worker, over_budget):
    AlertRule.objects.create(name="Budget 80", kind="budget", threshold=80)
    assert alerts_evaluate_task.delay().get(timeout=20) == {
        "opened": 1,
        "repeated": 0,
        "resolved": 0,
        "skipped_rules": [],
    }
    assert Alert.objects.get().state == "open"


@pytest.mark.django_db
def test_operators_manage_rules_and_read_alerts_in_the_admin(client, over_budget, django_assert_max_num_queries):
    admin = make_user("ada", role="admin")
    client.force_login(admin)
    response = client.post(
        "/admin/monitoring/alertrule/add/",
        {
            "name": "Spending",
            "kind": "budget",
            "severity": "warning",
            "is_active": "on",
            "threshold": "80",
            "window_minutes": "5",
            "min_runs": "20",
            "cooldown_minutes": "60",
            "email_to": "oncall@example.com",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    alerts_evaluate()
    alert = Alert.objects.get()

    rules_page = client.get("/admin/monitoring/alertrule/")
    assert "80 % of the limit" in rules_page.content.decode()
    with django_assert_max_num_queries(12):
        page = client.get("/admin/monitoring/alert/")
    assert alert.subject in page.content.decode()
    detail = client.get(f"/admin/monitoring/alert/{alert.pk}/change/").content.decode()
    assert "oncall@example.com" in detail and "Opened" in detail
    assert client.get("/admin/monitoring/alertnotification/").status_code == 200


@pytest.mark.django_db
def test_an_operator_silences_an_alert_from_the_admin_and_the_index_says_so(client, over_budget):
    AlertRule.objects.create(name="Budget 80", kind="budget", threshold=80, email_to="oncall@example.com")
    alerts_evaluate()
    alert = Alert.objects.get()
    operator = make_user("olga", role="operator")
    client.force_login(operator)

    response = client.post(
        "/admin/monitoring/alert/", {"action": "silence_8h", "_selected_action": [alert.pk]}, follow=True
    )

    assert "1 open alert(s) silenced until" in response.content.decode()
    alert.refresh_from_db()
    assert alert.silenced_by == operator and alert.silenced_until > alert.opened_at
    assert "(silenced until " in client.get("/admin/").content.decode()
    assert f"by {operator.username}" in client.get("/admin/monitoring/alert/").content.decode()


@pytest.mark.django_db
def test_members_cannot_see_the_alert_admin(client, alice):
    client.force_login(alice)
    assert client.get("/admin/monitoring/alert/").status_code == 302


@pytest.mark.django_db
def test_only_active_endpoints_of_staff_can_receive_alerts(client, alice):
    admin = make_user("ada", role="admin")
    staff_endpoint, _ = webhook_endpoint_create(owner=admin, url="http://127.0.0.2:9/ops", events=["task.succeeded"])
    webhook_endpoint_create(owner=alice, url="http://127.0.0.2:9/alice", events=["task.succeeded"])
    client.force_login(admin)
    form = client.get("/admin/monitoring/alertrule/add/").content.decode()
    assert "127.0.0.2:9/ops" in form
    assert "127.0.0.2:9/alice" not in form


@pytest.mark.django_db
def test_the_admin_index_lists_the_open_alerts_critical_first(client, over_budget):
    AlertRule.objects.create(name="Budget 80", kind="budget", threshold=80, severity="warning")
    AlertRule.objects.create(name="Budget 85", kind="budget", threshold=85, severity="critical")
    alerts_evaluate()
    client.force_login(make_user("ada", role="admin"))
    page = client.get("/admin/").content.decode()
    section = page[page.index('id="ops-alerts"') :]
    assert "2 open alerts" in section
    assert section.index("Budget 85") < section.index("Budget 80")
    assert "alice used 90% of cost_per_day" in section


@pytest.mark.django_db
def test_operators_manage_alert_rules_and_read_alerts_notifications_and_trail_checks(client):
    client.force_login(make_user("olga", role="operator"))
    assert client.get("/admin/monitoring/alertrule/add/").status_code == 200
    assert client.get("/admin/monitoring/alert/").status_code == 200
    assert client.get("/admin/monitoring/alertnotification/").status_code == 200
    assert client.get("/admin/accounts/trailcheck/").status_code == 200
