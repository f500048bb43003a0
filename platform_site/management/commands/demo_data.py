import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.services import user_set_role
from agents.models import Agent, AgentType
from agents.services.agents import agent_create
from platform_site import embedded
from workflows.services.workflows import EXAMPLE_AGENTS, workflow_examples_install

DEMO_USERS = (
    # username, is operator
    ("operator", True),
    ("demo", False),
)
ROLE_OF = {True: "admin", False: "member"}


def credentials_file():
    return embedded.VAR_DIR / "demo-credentials.txt"


class Command(BaseCommand):
    help = "Create the demo operator and user once (development only) and print their credentials."

    def handle(self, *args, **options):
        if settings.PRODUCTION:
            raise CommandError("demo data is never loaded in production")
        User = get_user_model()
        known = dict(self._read_credentials())
        demo_names = [name for name, _ in DEMO_USERS]
        existing = set(User.objects.filter(username__in=demo_names).values_list("username", flat=True))
        created = []
        for username, is_operator in DEMO_USERS:
            if username in existing:
                continue
            password = secrets.token_urlsafe(12)
            user = User.objects.create_user(
                username=username,
                email=f"{username}@example.com",
                password=password,
                is_staff=is_operator,
                is_superuser=is_operator,
            )
            user_set_role(user=user, role=ROLE_OF[is_operator], actor=None)
            known[username] = password
            existing.add(username)
            created.append(username)
        if created:
            self._write_credentials(known)
        self._demo_agent(User.objects.get(username="demo"))
        for username, password in known.items():
            if username in existing:
                self.stdout.write(f"  {username:<9} password: {password}")

    def _demo_agent(self, user):
        """Agents on the built-in echo provider, so the demo user can chat at once, and the example
        workflows with the agents they name."""
        agent_type = AgentType.objects.filter(slug="assistant").first()
        if agent_type is None:
            return
        if not Agent.objects.filter(owner=user).exists():
            agent_create(owner=user, agent_type=agent_type, name="Echo helper", system_prompt="You are helpful.")
        for name in EXAMPLE_AGENTS:
            if not Agent.objects.filter(owner=user, name=name).exists():
                agent_create(owner=user, agent_type=agent_type, name=name, system_prompt=f"You are the {name}.")
        workflow_examples_install(owner=user)

    def _read_credentials(self):
        path = credentials_file()
        if not path.exists():
            return []
        return [tuple(line.split(" ", 1)) for line in path.read_text().splitlines() if " " in line]

    def _write_credentials(self, known):
        path = credentials_file()
        path.write_text("".join(f"{username} {password}\n" for username, password in known.items()))
        path.chmod(0o600)
