"""Alerts from the command line: run one evaluation round (what the beat job does), list the open alerts.

manage.py alerts evaluate      (opens, repeats and resolves alerts and sends their notifications; prints the round)
manage.py alerts open          (one line per open alert: opened at, severity, rule, subject, summary, silence)
manage.py alerts silence ID... --hours N --by USERNAME    (--hours 0 ends the silence)
"""

import json
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from monitoring.models import Alert
from monitoring.selectors import alerts_open
from monitoring.services import alerts_evaluate, alerts_silence


class Command(BaseCommand):
    help = "Evaluate the alert rules once, or list the open alerts."

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="command", required=True)
        commands.add_parser("evaluate", help="one evaluation round, as the beat job runs it")
        commands.add_parser("open", help="list the open alerts")
        silence = commands.add_parser("silence", help="silence open alerts for a while (they send nothing)")
        silence.add_argument("alert_ids", nargs="+", type=int, metavar="ID")
        silence.add_argument("--hours", type=float, required=True, help="how long; 0 ends the silence")
        silence.add_argument("--by", required=True, help="the operator's username, kept with the silence")

    def handle(self, *args, command, **options):
        if command == "silence":
            return self._silence(**options)
        if command == "evaluate":
            done = alerts_evaluate()
            self.stdout.write(json.dumps(done.as_dict() if done else {"skipped": "another round is running"}))
            return
        now = timezone.now()
        for alert in alerts_open():
            silenced = f"  (silenced until {alert.silenced_until:%Y-%m-%d %H:%M})" if alert.silenced(now) else ""
            self.stdout.write(
                f"{alert.pk}  {alert.opened_at:%Y-%m-%d %H:%M:%S}  {alert.rule.severity:8}  {alert.rule}  "
                f"{alert.subject}  {alert.summary}{silenced}"
            )

    def _silence(self, *, alert_ids, hours, by, **options):
        user = get_user_model().objects.filter(username=by, is_active=True).first()
        if user is None or not user.has_perm("monitoring.change_alertrule"):
            raise CommandError(f"{by!r} is not an active user who may manage alert rules.")
        if not 0 <= hours <= 24 * 30:
            raise CommandError("--hours must be between 0 and 720 (30 days).")
        until = timezone.now() + timedelta(hours=hours) if hours else None
        count = alerts_silence(alerts=Alert.objects.filter(pk__in=alert_ids), user=user, until=until)
        self.stdout.write(
            f"{count} open alert(s) " + (f"silenced until {until:%Y-%m-%d %H:%M} UTC" if until else "notify again")
        )
