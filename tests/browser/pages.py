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


def rotate_hook_secret(page):
    page.get_by_role("button", name="Rotate hook secret").click()
    page.get_by_role("heading", name="New hook secret").wait_for()


def show_definition_problems(page):
    """The editor after Validate, with a problem listed under it (and its preview form state)."""
    page.get_by_label("Name", exact=True).fill("broken")
    page.get_by_role("textbox", name="Definition").fill(
        "version: 1\nname: broken\nsteps:\n  - id: a\n    kind: transform\n    needs: [b]\n"
    )
    page.get_by_role("button", name="Validate").click()
    page.locator("#source-problems").wait_for()


def show_agent_errors(page):
    """The agent's settings refused by the server: a temperature out of range, said on its field (the browser's
    own check of the field's range is turned off, as in a browser without it)."""
    page.locator("main form").evaluate("form => { form.noValidate = true; }")
    page.get_by_label("Temperature").fill("7")
    page.get_by_role("button", name="Save").click()
    page.locator(".errorlist").first.wait_for()


def latest_run(ids) -> str:
    """The role's newest run (the chat of sign_in_and_chat made one)."""
    from agents.models import AgentRun

    return str(AgentRun.objects.filter(user_id=ids["user"]).latest("created_at").pk)


def shared_memory(ids) -> int:
    """A memory of the other role's, in a namespace shared with this one."""
    from accounts.models import User
    from memory.selectors import memory_list

    user = User.objects.get(pk=ids["user"])
    return memory_list(user=user).exclude(owner=user).values_list("pk", flat=True).first()


def failed_import(ids) -> str:
    """The role's failed import (seed's): its page lists what went wrong."""
    from tasks.models import TaskRecord

    imports = TaskRecord.objects.filter(owner_id=ids["user"], kind="memory.import", status="failed")
    return str(imports.values_list("pk", flat=True).get())


def open_a_step(page):
    """The run's diagram with a step's details open (its input, output and error)."""
    page.locator('#run-diagram [data-key="checks"]').click()
    page.get_by_role("heading", name="Step checks").wait_for()


def open_a_definition_step(page):
    page.locator('#diagram [data-key="pages"]').click()
    page.get_by_role("heading", name="Step pages").wait_for()


VISITOR_PAGES = [
    Target("visitor", "login", url("login")),
    Target("visitor", "signup", url("signup")),
    Target("visitor", "password_reset", url("password_reset")),
    Target("visitor", "password_reset_done", url("password_reset_done")),
    Target("visitor", "password_reset_confirm", password_reset_link),
    Target("visitor", "password_reset_complete", url("password_reset_complete")),
    Target("visitor", "approval_link", lambda ids: ids["approval_link"]),
]
SIGNED_IN_PAGES = [
    ("dashboard", url("dashboard"), None),
    ("status", url("status"), None),
    ("agents", url("agents"), None),
    ("agent_chat", url("agent_chat", "agent"), None),
    ("agent_chat_shared", url("agent_chat", "shared_agent"), None),  # the other role's, shared with this one
    ("agent_edit", url("agent_edit", "agent"), None),
    ("agent_edit_errors", url("agent_edit", "agent"), show_agent_errors),
    ("agent_delete", url("agent_delete", "agent"), None),
    ("agent_runs", url("agent_runs", "agent"), None),
    ("agent_run", lambda ids: reverse("agent_run", args=[latest_run(ids)]), None),
    ("memories", url("memories"), None),
    ("memory_edit", url("memory_edit", "memory"), None),
    ("memory_shared", lambda ids: reverse("memory_edit", args=[shared_memory(ids)]), None),  # read only
    ("memory_search", lambda ids: reverse("memories") + "?query=quarterly+report&archived=on", None),
    ("memory_search_errors", lambda ids: reverse("memories") + "?query=report&metadata=topic", None),
    ("memory_import", url("memory_import"), None),
    ("memory_import_status", lambda ids: reverse("memory_import_status", args=[failed_import(ids)]), None),
    ("usage", url("usage"), None),
    ("usage_by_day", lambda ids: reverse("usage") + "?group=day", None),
    ("usage_by_key", lambda ids: reverse("usage") + "?group=key", None),
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
    ("workflows", url("workflows"), None),
    ("workflow_problems", url("workflows"), show_definition_problems),
    ("workflow_detail", lambda ids: reverse("workflow_detail", args=[ids["workflow"]]) + "?from=1&to=2", None),
    ("workflow_diagram_step", url("workflow_detail", "workflow"), open_a_definition_step),
    ("workflow_hook_secret", url("workflow_detail", "workflow"), rotate_hook_secret),
    ("workflow_run", url("workflow_run", "run"), open_a_step),
    ("approvals", url("approvals"), None),
    ("not_found", lambda ids: "/agents/999999/", None),
]
# Django's admin, with our change list templates: axe-core finds nothing to exclude there (Django 5.2).
ADMIN_PAGES = [
    Target("operator", "admin:index", url("admin:index")),
    # An agent's change page (operators edit agents); static/css/admin.css underlines the breadcrumbs' links,
    # which Django's stylesheet tells from the text by colour alone.
    Target("operator", "admin:agents_agent_change", url("admin:agents_agent_change", "agent")),
    Target("operator", "admin:tasks_taskrecord_changelist", url("admin:tasks_taskrecord_changelist")),
    # Without a full count (a large table), Django's search form always shows a "Show all" link told from its
    # text by colour alone: Django's markup and stylesheet, not ours.
    Target(
        "operator",
        "admin:memory_memory_changelist",
        url("admin:memory_memory_changelist"),
        ignore=("link-in-text-block",),
    ),
    Target("operator", "admin:memory_memory_change", url("admin:memory_memory_change", "memory")),
    Target("operator", "admin:quotas_usagedaily_changelist", url("admin:quotas_usagedaily_changelist")),
    # The diagrams on the change pages of a workflow and of a run (templates/admin/workflows/).
    Target("operator", "admin:workflows_workflow_change", url("admin:workflows_workflow_change", "workflow")),
    Target("operator", "admin:workflows_workflowrun_change", url("admin:workflows_workflowrun_change", "run")),
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
    "workflow_import", "workflow_start", "workflow_export", "workflow_delete", "workflow_rollback", "workflow_share",
    "workflow_unshare", "workflow_schedule_add", "workflow_schedule_delete", "workflow_run_cancel",
    "workflow_run_rerun", "approval_decide", "memory_bulk", "agent_chat_stream", "agent_share", "agent_unshare",
}  # fmt: skip


def seed_site() -> dict:
    """Per role, the ids its pages need: a member (mia) and an operator (olga) who share a namespace each way,
    and a signed-out visitor with an account to reset."""
    from accounts.models import User
    from accounts.services import object_share
    from agents.models import Agent
    from memory.services import namespace_share
    from tests.conftest import make_user
    from workflows.models import Workflow

    ids = {"member": seed("mia", "member"), "operator": seed("olga", "operator")}
    mia, olga = User.objects.get(pk=ids["member"]["user"]), User.objects.get(pk=ids["operator"]["user"])
    namespace_share(owner=mia, name="pets", user=olga, level="view")
    namespace_share(owner=olga, name="default", user=mia, level="use")
    object_share(obj=Workflow.objects.get(pk=ids["member"]["workflow"]), owner=mia, user=olga, level="use")
    object_share(obj=Workflow.objects.get(pk=ids["operator"]["workflow"]), owner=olga, user=mia, level="view")
    object_share(obj=Agent.objects.get(pk=ids["member"]["agent"]), owner=mia, user=olga, level="use")
    object_share(obj=Agent.objects.get(pk=ids["operator"]["agent"]), owner=olga, user=mia, level="view")
    ids["member"]["shared_agent"], ids["operator"]["shared_agent"] = ids["operator"]["agent"], ids["member"]["agent"]
    ids["visitor"] = {
        "forgetful": make_user("forgetful").pk,
        "approval_link": link_path(ids["member"]["approval"], mia),
    }
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
    return {"user": user.pk, "agent": agent.pk, "memory": memory.pk, "endpoint": endpoint.pk, **seed_workflows(user)}


# A workflow of every kind of step the diagram draws but agents (no provider needed): a switch, a parallel
# step with a join, a map, an approval with branches, a step that fails (on_failure: continue), and a wait.
RELEASE_TRAIN = """version: 1
name: release-train
description: Check a release from every side, then ask for a go.
inputs:
  topic: {{type: string, description: What is released}}
  reviewers: {{type: integer, default: 3}}
  urgent: {{type: boolean, default: false}}
  labels: {{type: object, default: {{}}}}
steps:
  - id: gather
    kind: transform
    output: ["notes", "changelog", "migration guide"]
  - id: triage
    kind: switch
    needs: [gather]
    cases:
      - when: inputs.reviewers > 2
        steps: [thorough]
    default: [quick]
  - id: thorough
    kind: transform
    needs: [triage]
    output: thorough
  - id: quick
    kind: transform
    needs: [triage]
    output: quick
  - id: checks
    kind: parallel
    needs: [thorough, quick]
    join: {{at_least: 2}}
    branches:
      - {{id: lint, kind: transform, output: clean}}
      - {{id: tests, kind: transform, output: green}}
      - {{id: security, kind: transform, output: "no findings"}}
  - id: pages
    kind: map
    needs: [gather]
    items: steps.gather.output
    max_concurrency: 2
    step: {{id: proofread, kind: transform, output: "${{item}} proofread"}}
  - id: go
    kind: approval
    needs: [checks, pages]
    approvers: {{users: [{user}]}}
    context: "Release ${{inputs.topic}}?"
    branches: {{approved: [announce], rejected: [hold]}}
  - id: announce
    kind: transform
    needs: [go]
    output: "${{inputs.topic}} is out"
  - id: hold
    kind: transform
    needs: [go]
    output: held
  - id: translate
    kind: transform
    needs: [announce]
    output: "${{inputs.labels.missing}}"
outputs:
  announcement: "${{steps.announce.output}}"
on_failure: continue
"""
SIGN_OFF = """version: 1
name: sign-off
steps:
  - id: review
    kind: approval
    approvers: {{users: [{user}]}}
    context: "Sign off the quarterly report? It is due on the first Friday of the month."
  - id: remind
    kind: wait
    needs: [review]
    event: report.sent
    timeout: 2d
"""


def seed_workflows(user) -> dict:
    """A workflow with two versions and a finished run (approved by its owner, one step failed), and an open
    approval on another workflow, all through the workflows' services; steps run in this process."""
    from workflows.services.approvals import approval_decide
    from workflows.services.runs import run_start
    from workflows.services.workflows import workflow_create, workflow_save

    train = workflow_create(owner=user, name="release-train", source=RELEASE_TRAIN.format(user=user.username))
    workflow_save(
        workflow=train,
        user=user,
        source=RELEASE_TRAIN.format(user=user.username).replace("max_concurrency: 2", "max_concurrency: 3"),
        note="Proofread three pages at once.",
    )
    run, _ = run_start(workflow=train, user=user, inputs={"topic": "the spring release"})
    drive(run)
    approval_decide(approval=run.approvals.get(), user=user, decision="approve", comment="Ship it", via="browser")
    drive(run)
    sign_off = workflow_create(owner=user, name="sign-off", source=SIGN_OFF.format(user=user.username))
    waiting, _ = run_start(workflow=sign_off, user=user, inputs={})
    drive(waiting)
    return {"workflow": train.pk, "run": run.pk, "approval": waiting.approvals.get().pk}


def drive(run, timeout: float = 20):
    """Run the run's queued steps in this process until none is queued or running (a session worker, when
    one runs, may take some of them: then wait for it)."""
    import time

    from workflows.engine.execution import step_execute

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        step = run.steps.filter(status="queued").first()
        if step is not None:
            step_execute(step_id=step.pk, attempt=step.attempt)
        elif run.steps.filter(status="running").exists():
            time.sleep(0.05)
        else:
            break
    run.refresh_from_db()


def link_path(approval_id: int, user) -> str:
    """The path of an approval's signed link for `user` (the page an approver opens from the email)."""
    from urllib.parse import urlparse

    from workflows.models import Approval
    from workflows.services.approvals import approval_link

    return urlparse(approval_link(approval=Approval.objects.get(pk=approval_id), user=user)).path


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
    page.locator('.message.assistant[aria-busy="false"]').wait_for()  # the streamed answer is whole


def load_axe(context) -> None:
    """Load axe-core (the copy axe_playwright_python ships) in every page the browser context opens, as each
    document starts: once per context, instead of sending its 570 kB to each page before each check (a
    script given to the browser this way is not subject to the page's Content-Security-Policy)."""
    from axe_playwright_python.base import AXE_FILE_PATH

    context.add_init_script(path=AXE_FILE_PATH)


def axe_violations(page, ignore=()) -> list[dict]:
    """axe-core's violations on the page (all impacts), minus the rules ignored; the page's context has
    axe-core loaded (`load_axe`)."""
    options = {"resultTypes": ["violations"], "rules": {rule: {"enabled": False} for rule in ignore}}
    return page.evaluate("options => axe.run(document, options).then(results => results.violations)", options)


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
    """Inline scripts and event handler attributes (a Content-Security-Policy will forbid them). A JSON data
    block (Django's json_script) is no script: the browser does not run it, and a policy does not block it."""
    return page.evaluate(
        """() => [
          ...[...document.querySelectorAll('script:not([src]):not([type="application/json"])')].map(s => 'inline <script>: ' + s.textContent.slice(0, 60)),
          ...[...document.querySelectorAll('*')].flatMap(el => [...el.attributes]
              .filter(a => a.name.startsWith('on') || a.value.trim().startsWith('javascript:'))
              .map(a => `${el.tagName.toLowerCase()} ${a.name}="${a.value.slice(0, 40)}"`)),
        ]"""
    )


def watch_csp(page, found: list) -> None:
    """Collect what the Content-Security-Policy blocks on the page into `found`: chromium reports each
    violation on the console ("Refused to ... Content Security Policy ...") and as a securitypolicyviolation
    event, which the init script puts on the console too (a violation before any script of ours ran included)."""
    page.add_init_script(
        """document.addEventListener('securitypolicyviolation', e => console.error(
             `Content Security Policy violation on ${e.documentURI}: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`));"""
    )
    page.on(
        "console", lambda message: found.append(message.text) if "Content Security Policy" in message.text else None
    )


def save_report(name: str, violations) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{name}.axe.json").write_text(json.dumps(violations, indent=1))
