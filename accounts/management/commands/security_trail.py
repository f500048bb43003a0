"""Verify the tamper-evident security-event trail (what the daily beat job does), or seal it again with the
current key after a rotation.

manage.py security_trail verify     exits 0 when the chain is intact, 1 naming the first broken link; says which
                                    fallback keys (SECURITY_TRAIL_KEY_FALLBACKS) still seal events
manage.py security_trail reseal     verifies, then seals the whole chain with SECURITY_TRAIL_KEY (writers wait);
                                    refuses a broken chain; leaves a `trail_resealed` security event
"""

from django.core.management.base import BaseCommand, CommandError

from accounts.trail import TrailBroken, trail_reseal, trail_verify


class Command(BaseCommand):
    help = "Verify the security-event chain and name its first broken link, or seal it again with the current key."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["verify", "reseal"])

    def handle(self, *args, action, **options):
        if action == "reseal":
            return self.reseal()
        check = trail_verify()
        if not check.ok:
            raise CommandError(
                f"The security-event trail is broken at {check.problem} ({check.events} events checked)."
            )
        self.stdout.write(f"The security-event trail is intact: {check.events} events, up to #{check.head_sequence}.")
        for index, links in enumerate(check.sealed_with[1:]):
            if links:
                self.stdout.write(
                    f"SECURITY_TRAIL_KEY_FALLBACKS[{index}] still seals {links} events: "
                    "`security_trail reseal` seals them with the current key."
                )
            else:
                self.stdout.write(f"SECURITY_TRAIL_KEY_FALLBACKS[{index}] seals no event: it can be dropped.")

    def reseal(self):
        try:
            check, event = trail_reseal()
        except TrailBroken as broken:
            raise CommandError(
                f"Not resealed: the security-event trail is broken at {broken.check.problem}. "
                "Find out what happened there first."
            ) from None
        self.stdout.write(
            f"The security-event trail is sealed with the current key: {event.detail['resealed']} links changed, "
            f"{check.events} events up to #{check.head_sequence}. Fallback keys can be dropped now."
        )
