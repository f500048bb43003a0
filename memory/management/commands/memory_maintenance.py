import json

from django.core.management.base import BaseCommand

from memory import maintenance


class Command(BaseCommand):
    help = "Memory upkeep: prune, archive, reindex (concurrently), reembed or stats; --dry-run says what would change."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["prune", "archive", "reindex", "reembed", "stats"])
        parser.add_argument("--dry-run", action="store_true")
        parser.add_argument("--force", action="store_true", help="reindex: rebuild every partition index")

    def handle(self, *args, action, dry_run, force, **options):
        def progress(percent, message):
            self.stderr.write(f"\r[{percent:3d}%] {message}", ending="")

        if action == "stats":
            result = maintenance.stats()
        elif action == "reindex":
            result = maintenance.reindex(dry_run=dry_run, force=force, progress=progress)
        else:
            result = getattr(maintenance, action)(dry_run=dry_run, progress=progress)
        self.stderr.write("")
        self.stdout.write(json.dumps({"action": action, "dry_run": dry_run, "result": result}, default=str))
