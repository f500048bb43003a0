import json
import re
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.models import ApiKey, User
from accounts.services import apikey_revoke, apikey_rotate

DURATION = re.compile(r"^(\d+)([dhm])$")
UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_duration(text: str) -> timedelta:
    match = DURATION.match(text)
    if not match:
        raise CommandError(f"{text!r} is not a duration such as 90d, 12h or 30m")
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


class Command(BaseCommand):
    help = (
        "Rotate or expire active API keys in bulk. `rotate` prints each new key once, as a JSON line on "
        "stdout, for handing to its owner; the old secret keeps working for the grace period. `expire` "
        "stops the keys at once."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["rotate", "expire"])
        parser.add_argument(
            "--older-than",
            type=parse_duration,
            help="only keys created (or last rotated) before this long ago, e.g. 90d",
        )
        parser.add_argument("--user", help="only this user's keys (username)")
        parser.add_argument("--grace-hours", type=float, help="rotate: how long old secrets keep working")
        parser.add_argument("--dry-run", action="store_true", help="list the keys that would change; change nothing")

    def handle(self, *args, action, older_than, user, grace_hours, dry_run, **options):
        keys = ApiKey.objects.active().select_related("user").order_by("id")
        if user:
            owner = User.objects.filter(username=user).first()
            if owner is None:
                raise CommandError(f"no user named {user!r}")
            keys = keys.filter(user=owner)
        if older_than:
            cutoff = timezone.now() - older_than
            keys = keys.filter(created_at__lt=cutoff).exclude(rotated_at__gte=cutoff)
        keys = list(keys)
        verb = f"would {action}" if dry_run else f"{action}d"
        for key in keys:
            if dry_run:
                self.stderr.write(f"{verb}: {key.prefix} {key.name!r} of {key.user.username}")
                continue
            if action == "rotate":
                grace = timedelta(hours=grace_hours) if grace_hours is not None else None
                key, full_key = apikey_rotate(key=key, actor=None, grace=grace)
                self.stdout.write(json.dumps({"user": key.user.username, "name": key.name, "key": full_key}))
            else:
                apikey_revoke(key=key, actor=None, reason=ApiKey.RevokeReason.EXPIRED)
            self.stderr.write(f"{verb}: {key.prefix} {key.name!r} of {key.user.username}")
        self.stderr.write(f"{len(keys)} key(s) {verb}.")
