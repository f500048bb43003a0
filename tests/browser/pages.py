"""Every page of the browser UI, the data that fills them, and the checks run on each: axe-core's rules, the
layout at phone widths, no inline script. Used by test_every_page.py.

A page is opened by a role (signed out, a member, an operator) at a path, or by an action that lands on it
(a form's answer, like a new key's secret page). `NOT_PAGES` names the URL names that are no page to check;
test_every_page.py fails when a URL name is in neither list.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.urls import reverse
from django.utils import timezone

ARTIFACTS = Path(__file__).parent / "artifacts"  # git-ignored: screenshots and axe reports
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
NARROWEST = {"width": 360, "height": 740}
FAILING_IMPACTS = {"serious", "critical"}


@dataclass(frozen=True)
class Target:
    role: str  # "visitor" (signed out), "member" or "operator"
    name: str  # the URL name, or what the page is
    path: Callable[[dict], str]  # from the role's data (ids) to the path
    then: Callable | None = None  # an action on the opened page that lands on the page to check
    ignore: tuple[str, ...] = ()  # axe rule ids not checked here (say why where they are set)

    def __str__(self):
        return f"{self.role}-{self.name}"


def url(name, *keys):
    return lambda ids: reverse(name, args=[ids[key] for key in keys])


def password_reset_link(ids):
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    from accounts.models import User

    user = User.objects.get(pk=ids["forgetful"])  # a user who never logs in, so the token stays valid
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return reverse("password_reset_confirm", args=[uid, default_token_generator.make_token(user)])


def create_key(page):
    page.get_by_label("Name").fill("phone agent")
    page.get_by_role("button", name="Create key").click()
    page.get_by_role("heading", name="Key created").wait_for()


def rotate_webhook_secret(page):
    page.get_by_role("button", name="Rotate secret").click()
    page.get_by_role("heading", name="New signing secret").wait_for()


VISITOR_PAGES = [
    Target("visitor", "login", url("login")),
    Target("visitor", "signup", url("signup")),
    Target("visitor", "password_reset", url("password_reset")),
    Target("visitor", "password_reset_done", url("password_reset_done")),
    Target("visitor", "password_reset_confirm", password_reset_link),
    Target("visitor", "password_reset_complete", url("password_reset_complete")),
]
SIGNED_IN_PAGES = [
    ("dashboard", url("dashboard"), None),
    ("status", url("status"), None),
    ("agents", url("agents"), None),
    ("agent_chat", url("agent_chat", "agent"), None),
    ("memories", url("memories"), None),
    ("memory_edit", url("memory_edit", "memory"), None),
    ("usage", url("usage"), None),
    ("keys", url("keys"), None),
    ("key_secret", url("keys"), create_key),
    ("preferences", url("preferences"), None),
    ("profile", url("profile"), None),
    ("password_change", url("password_change"), None),
    ("password_change_done", url("password_change_done"), None),
    ("security", url("security"), None),
    ("tasks", url("tasks"), None),
    ("webhooks", url("webhooks"), None),
    ("webhook_detail", url("webhook_detail", "endpoint"), None),
    ("webhook_secret", url("webhook_detail", "endpoint"), rotate_webhook_secret),
    ("not_found", lambda ids: "/agents/999999/", None),
]
# Django's admin, with our change list templates: axe-core finds nothing to exclude there (Django 5.2).
ADMIN_PAGES = [
    Target("operator", "admin:index", url("admin:index")),
    Target("operator", "admin:tasks_taskrecord_changelist", url("admin:tasks_taskrecord_changelist")),
    Target("operator", "admin:quotas_usagedaily_changelist", url("admin:quotas_usagedaily_changelist")),
]
PAGES = [
    *VISITOR_PAGES,
    *(Target(role, name, path, then) for role in ("member", "operator") for name, path, then in SIGNED_IN_PAGES),
    *ADMIN_PAGES,
    # drf-spectacular's Swagger UI (templates/drf_spectacular/swagger_ui.html adds the language and fixes its
    # colours). Swagger UI nests a copy button in each operation's toggle button: nested-interactive is
    # Swagger UI's markup, not ours.
    Target(
        "member",
        "api-docs",
        url("api-docs"),
        then=lambda page: page.locator("#swagger-ui .opblock").first.wait_for(),
        ignore=("nested-interactive",),
    ),
]

# URL names that are no page of their own: form posts that redirect, a download, JSON and text.
NOT_PAGES = {
    "logout", "key_rotate", "key_revoke", "memory_delete", "memory_namespace_share", "memory_namespace_unshare",
    "task_cancel", "webhook_action", "memory_export", "healthz", "readyz", "metrics", "schema",
}  # fmt: skip


def seed_site() -> dict:
    """Per role, the ids its pages need: a member (mia) and an operator (olga) who share a namespace each way,
    and a signed-out visitor with an account to reset."""
    from accounts.models import User
    from memory.services import namespace_share
    from tests.conftest import make_user

    ids = {"member": seed("mia", "member"), "operator": seed("olga", "operator")}
    mia, olga = User.objects.get(pk=ids["member"]["user"]), User.objects.get(pk=ids["operator"]["user"])
    namespace_share(owner=mia, name="pets", user=olga, level="view")
    namespace_share(owner=olga, name="default", user=mia, level="use")
    ids["visitor"] = {"forgetful": make_user("forgetful").pk}
    return ids


def seed(username: str, role: str) -> dict:
    """A user with some of everything the pages list, made through the platform's services."""
    from accounts.services import apikey_revoke, apikey_rotate
    from quotas.models import UsageDaily
    from tasks.models import TaskRecord, WebhookEndpoint
    from tests.conftest import make_user
    from tests.factories import (
        AgentFactory,
        ApiKeyFactory,
        MemoryFactory,
        WebhookDeliveryFactory,
        WebhookEndpointFactory,
    )

    user = make_user(username, role=role)
    keys = ApiKeyFactory.create_batch(3, owner=user)
    apikey_rotate(key=keys[0], actor=user)
    apikey_revoke(key=keys[1], actor=user)
    agent = AgentFactory(owner=user, name="Research assistant")
    memory = MemoryFactory(owner=user, content="The quarterly report is due on the first Friday of the month. " * 3)
    MemoryFactory(owner=user, content="My cat is called Miso", namespace="pets")
    long_url = "http://127.0.0.2:9/hooks/switchboard/receivers/production/task-events-for-the-data-team"
    endpoint = WebhookEndpointFactory(owner=user, url=long_url)
    WebhookDeliveryFactory(endpoint=endpoint)
    broken = WebhookEndpointFactory(owner=user)
    WebhookEndpoint.objects.filter(pk=broken.pk).update(
        is_active=False, disabled_at=timezone.now(), disabled_reason="6 deliveries in a row failed."
    )
    now = timezone.now()
    for status, extra in [
        ("succeeded", {"result": {"imported": 12, "skipped": 0}, "progress_percent": 100}),
        ("failed", {"error": "ConnectionError: the receiver at http://127.0.0.2:9/hooks did not answer " * 2}),
        ("running", {"progress_percent": 40, "progress_message": "4 of 10 batches"}),
    ]:
        TaskRecord.objects.create(kind="memory.import", owner=user, status=status, attempts=1, **extra)
    for offset in range(0, 30, 3):
        UsageDaily.objects.create(
            day=(now - timedelta(days=offset)).date(), user=user, agent_type="assistant", model="echo",
            requests=3 + offset, input_tokens=300 + 20 * offset, output_tokens=600 + 10 * offset, cost="0.0123",
        )  # fmt: skip
    return {"user": user.pk, "agent": agent.pk, "memory": memory.pk, "endpoint": endpoint.pk}


def sign_in_and_chat(page, username, ids):
    """Sign in, and leave a conversation with the agent (and so a run) to show."""
    from tests.conftest import PASSWORD

    page.goto(reverse("login"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Dashboard").wait_for()
    page.goto(reverse("agent_chat", args=[ids["agent"]]))
    page.get_by_label("Message").fill("Summarise the quarterly report in two lines, please.")
    page.get_by_role("button", name="Send").click()
    page.locator(".message.assistant").wait_for()


def axe_violations(page, ignore=()) -> list[dict]:
    """axe-core's violations on the page (all impacts), minus the rules ignored."""
    from axe_playwright_python.sync_playwright import Axe

    options = {"resultTypes": ["violations"], "rules": {rule: {"enabled": False} for rule in ignore}}
    return Axe().run(page, options=options).response["violations"]


def describe(violations) -> str:
    lines = []
    for violation in violations:
        targets = ", ".join(str(node["target"]) for node in violation["nodes"][:5])
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']} at {targets}")
    return "\n".join(lines)


def layout_problems(page) -> list[str]:
    """What makes the page wider than the screen, if anything."""
    return page.evaluate(
        """() => {
          const width = window.innerWidth;
          if (document.documentElement.scrollWidth <= width) return [];
          const wide = [...document.querySelectorAll('body *')].filter(el => el.getBoundingClientRect().right > width + 1);
          const outermost = wide.filter(el => !wide.includes(el.parentElement)).slice(0, 5);
          return [`page is ${document.documentElement.scrollWidth}px wide on a ${width}px screen`,
                  ...outermost.map(el => `${el.tagName.toLowerCase()}.${el.className} reaches ${Math.round(el.getBoundingClientRect().right)}px`)];
        }"""
    )


def inline_script(page) -> list[str]:
    """Inline scripts and event handler attributes (a Content-Security-Policy will forbid them)."""
    return page.evaluate(
        """() => [
          ...[...document.querySelectorAll('script:not([src])')].map(s => 'inline <script>: ' + s.textContent.slice(0, 60)),
          ...[...document.querySelectorAll('*')].flatMap(el => [...el.attributes]
              .filter(a => a.name.startsWith('on') || a.value.trim().startsWith('javascript:'))
              .map(a => `${el.tagName.toLowerCase()} ${a.name}="${a.value.slice(0, 40)}"`)),
        ]"""
    )


def save_report(name: str, violations) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{name}.axe.json").write_text(json.dumps(violations, indent=1))
