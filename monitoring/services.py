"""Alert evaluation and notification.

Every round (the `monitoring.evaluate` beat job) reads each active rule's source and moves each subject's alert
through its states:

    nothing --(met)--> open --(still met, cooldown passed)--> open, notified again
                       open --(no longer met, or the rule turned off)--> resolved

A subject that meets its rule again after a resolution opens a new alert. An operator may silence an open alert
for a while (`alerts_silence`): it goes through the same states and sends nothing meanwhile. One round runs at a time however many
beat or worker processes there are: it holds a PostgreSQL advisory lock for its transaction, and a round that
cannot take it does nothing. The unique constraint on open alerts backs this up. Notifications are rows written
in the round's transaction and sent after it commits: e-mails by `monitoring.send_email` (retried), webhooks as
deliveries of the tasks app (signed, retried and logged there).
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from monitoring import sources, watchdog
from monitoring.models import Alert, AlertNotification, AlertRule
from tasks.broker import send_on_commit
from tasks.services.webhooks import send_delivery_on_commit, webhooks_emit_to

logger = logging.getLogger("switchboard.monitoring")

# pg_try_advisory_xact_lock's key for the evaluation round (any constant unique to this use).
EVALUATION_LOCK = 0x5B_A1E7


@dataclass
class Round:
    """What one evaluation round did (returned by the beat job, shown by the management command)."""

    opened: list[Alert] = field(default_factory=list)
    repeated: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)
    skipped_rules: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "opened": len(self.opened),
            "repeated": len(self.repeated),
            "resolved": len(self.resolved),
            "skipped_rules": self.skipped_rules,
        }


def alerts_evaluate(*, now=None) -> Round | None:
    """One evaluation round; None when another round holds the lock (it does the work)."""
    now = now or timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [EVALUATION_LOCK])
            if not cursor.fetchone()[0]:
                return None
        done = Round()
        for rule in AlertRule.objects.filter(is_active=True).prefetch_related("webhook_endpoints"):
            readings = sources.read(rule, now)
            if readings is None:
                done.skipped_rules.append(rule.name)
                continue
            _apply(rule, readings, now, done)
        for alert in Alert.objects.filter(state=Alert.State.OPEN, rule__is_active=False).select_related("rule"):
            _resolve(alert, now, done, summary=f"The rule {alert.rule} was turned off.")
        _resend_unsent_emails(now)
    watchdog.round_done(now.timestamp())
    if done.opened or done.resolved:
        logger.info("alerts evaluated", extra=done.as_dict())
    return done


def _apply(rule: AlertRule, readings: dict[str, sources.Reading], now, done: Round) -> None:
    open_alerts = {alert.subject: alert for alert in rule.alerts.filter(state=Alert.State.OPEN)}
    readings = {subject[:200]: reading for subject, reading in readings.items()}
    for subject, reading in readings.items():
        alert = open_alerts.get(subject)
        if alert is None:
            alert = Alert.objects.create(
                rule=rule,
                subject=subject,
                value=reading.value,
                summary=reading.summary[:500],
                opened_at=now,
                last_notified_at=now,
            )
            _notify(alert, AlertNotification.Event.OPENED)
            done.opened.append(alert)
            continue
        alert.value, alert.summary = reading.value, reading.summary[:500]
        cooled = now - alert.last_notified_at >= timedelta(minutes=rule.cooldown_minutes)
        if cooled and not alert.silenced(now):
            alert.last_notified_at = now
            _notify(alert, AlertNotification.Event.REPEATED)
            done.repeated.append(alert)
        alert.save(update_fields=["value", "summary", "last_notified_at"])
    for subject, alert in open_alerts.items():
        if subject not in readings:
            _resolve(alert, now, done)


def _resolve(alert: Alert, now, done: Round, summary: str = "") -> None:
    alert.state, alert.resolved_at = Alert.State.RESOLVED, now
    if summary:
        alert.summary = summary
    alert.save(update_fields=["state", "resolved_at", "summary"])
    if not alert.silenced(now):
        _notify(alert, AlertNotification.Event.RESOLVED)
    done.resolved.append(alert)


def alerts_silence(*, alerts, user, until) -> int:
    """Silence open alerts until `until` (None: end a silence). A silenced alert still opens, updates and
    resolves as its rule says, and sends nothing meanwhile; once the silence ends, reminders follow the
    cooldown again. A crossing after it resolved is a new alert, not silenced."""
    open_alerts = [alert.pk for alert in alerts if alert.state == Alert.State.OPEN]
    changed = Alert.objects.filter(pk__in=open_alerts).update(
        silenced_until=until, silenced_by=user if until is not None else None
    )
    logger.info(
        "alerts silenced" if until else "alerts unsilenced",
        extra={"alerts": open_alerts, "until": until.isoformat() if until else None, "by": user.pk},
    )
    return changed


# --- notifications --------------------------------------------------------------------------------------


def _email_task():
    from monitoring.tasks import alert_email_task  # the task module imports this one

    return alert_email_task


def _notify(alert: Alert, event: str) -> None:
    rule = alert.rule
    for address in rule.email_addresses():
        notification = AlertNotification.objects.create(
            alert=alert, event=event, channel=AlertNotification.Channel.EMAIL, destination=address
        )
        send_on_commit(_email_task(), args=[notification.pk])
    for endpoint in rule.webhook_endpoints.all():
        if not endpoint.is_active:
            continue
        [delivery] = webhooks_emit_to(endpoint=endpoint, event_type=f"alert.{event}", data=alert_payload(alert, event))
        send_delivery_on_commit(delivery.pk)
        AlertNotification.objects.create(
            alert=alert,
            event=event,
            channel=AlertNotification.Channel.WEBHOOK,
            destination=endpoint.url[:300],
            webhook_delivery=delivery,
        )


def _resend_unsent_emails(now) -> None:
    """E-mails whose message never reached a worker (the broker was down after the round) are sent again."""
    unsent = AlertNotification.objects.filter(
        channel=AlertNotification.Channel.EMAIL,
        status=AlertNotification.Status.PENDING,
        attempts=0,
        created_at__lt=now - timedelta(minutes=2),
    ).values_list("pk", flat=True)
    for notification_id in unsent[:500]:
        send_on_commit(_email_task(), args=[notification_id])


def alert_payload(alert: Alert, event: str) -> dict:
    """The `data` of an alert.* webhook event, and what the e-mail says."""
    rule = alert.rule
    return {
        "alert": alert.pk,
        "event": event,
        "rule": rule.name,
        "kind": rule.kind,
        "severity": rule.severity,
        "subject": alert.subject,
        "state": alert.state,
        "value": str(alert.value),
        "threshold": str(rule.threshold),
        "unit": rule.unit,
        "summary": alert.summary,
        "opened_at": alert.opened_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "url": settings.PUBLIC_URL.rstrip("/") + reverse("admin:monitoring_alert_change", args=[alert.pk]),
    }


class EmailFailed(Exception):
    pass


def alert_email_send(*, notification_id: int, last_attempt: bool) -> AlertNotification:
    """Send one alert e-mail and record the attempt; EmailFailed (recorded) when the mail server refused it."""
    notification = AlertNotification.objects.select_related("alert__rule").get(pk=notification_id)
    if notification.status == AlertNotification.Status.SENT:
        return notification
    data = alert_payload(notification.alert, notification.event)
    title = {"opened": "OPEN", "repeated": "STILL OPEN", "resolved": "RESOLVED"}[notification.event]
    subject = f"[Switchboard] {title} {data['severity']}: {data['rule']}: {data['subject']}"[:250]
    body = "\n".join(
        [
            data["summary"],
            "",
            f"Rule: {data['rule']} ({notification.alert.rule.get_kind_display()}), "
            f"at or above {data['threshold']} {data['unit']}",
            f"Value: {data['value']}",
            f"Opened: {data['opened_at']}",
            f"Resolved: {data['resolved_at']}" if data["resolved_at"] else "",
            data["url"],
        ]
    )
    notification.attempts += 1
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [notification.destination])
    except Exception as error:
        notification.last_error = f"{type(error).__name__}: {error}"[:300]
        notification.status = AlertNotification.Status.FAILED if last_attempt else AlertNotification.Status.PENDING
        notification.save(update_fields=["attempts", "last_error", "status"])
        logger.warning("alert e-mail not sent (%s)", type(error).__name__, extra={"notification": notification.pk})
        raise EmailFailed(notification.last_error) from error
    notification.status, notification.sent_at = AlertNotification.Status.SENT, timezone.now()
    notification.save(update_fields=["attempts", "status", "sent_at"])
    return notification
