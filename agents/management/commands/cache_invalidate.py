from django.core.management.base import BaseCommand, CommandError
from django.http import Http404

from agents.services.catalog import cache_invalidate


class Command(BaseCommand):
    help = "Invalidate cached agent answers: one entry, an agent's, an agent type's, or all (each O(1))."

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--key", help="one entry: the X-Cache-Key of a response")
        target.add_argument("--agent", type=int, help="every answer of this agent (id)")
        target.add_argument("--agent-type", help="every answer of agents of this type (slug)")
        target.add_argument("--all", action="store_true", help="every cached answer")

    def handle(self, *args, key, agent, agent_type, all, **options):
        scope = "entry" if key else "agent" if agent else "agent_type" if agent_type else "all"
        try:
            cache_invalidate(scope=scope, key=key or "", agent=agent, agent_type=agent_type or "")
        except Http404 as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"Invalidated: {scope}.")
