"""Alerts from the command line: run one evaluation round (what the beat job does), list the open alerts.

manage.py alerts evaluate      (opens, repeats and resolves alerts and sends their notifications; prints the round)
manage.py alerts open          (one line per open alert: opened at, severity, rule, subject, summary)
"""

import json

from django.core.management.base import BaseCommand

from monitoring.selectors import alerts_open
from monitoring.services import alerts_evaluate


class Command(BaseCommand):
    help = "Evaluate the alert rules once, or list the open alerts."

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="command", required=True)
        commands.add_parser("evaluate", help="one evaluation round, as the beat job runs it")
        commands.add_parser("open", help="list the open alerts")

    def handle(self, *args, command, **options):
        if command == "evaluate":
            done = alerts_evaluate()
            self.stdout.write(json.dumps(done.as_dict() if done else {"skipped": "another round is running"}))
            return
        for alert in alerts_open():
            self.stdout.write(
                f"{alert.opened_at:%Y-%m-%d %H:%M:%S}  {alert.rule.severity:8}  {alert.rule}  {alert.subject}  "
                f"{alert.summary}"
            )
