"""Verify the tamper-evident security-event trail (what the daily beat job does).

manage.py security_trail verify     exits 0 when the chain is intact, 1 naming the first broken link
"""

from django.core.management.base import BaseCommand, CommandError

from accounts.trail import trail_verify


class Command(BaseCommand):
    help = "Verify the security-event chain and name its first broken link."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["verify"])

    def handle(self, *args, action, **options):
        check = trail_verify()
        if not check.ok:
            raise CommandError(
                f"The security-event trail is broken at {check.problem} ({check.events} events checked)."
            )
        self.stdout.write(f"The security-event trail is intact: {check.events} events, up to #{check.head_sequence}.")
