"""Content guards in the admin: operators set policies (an action per family or detector, blocked terms,
external guards), add guard services (the secret stored encrypted, private addresses refused), and read every
verdict, filtered by detector and action and on its run's page, never with the matched text."""

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from agents.models import AgentRun, ContentPolicy, GuardService, GuardVerdict, PolicyGuard
from core.encryption import decrypt
from tests.agents.conftest import ask
from tests.agents.test_guard_pipeline import EMAIL, KEY, set_policy
from tests.conftest import api_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


def policy_form(agent_type, guards=(), **fields) -> dict:
    form = {
        "agent_type": agent_type.pk if agent_type else "",
        "description": "",
        "overrides": "",
        "blocked_terms": "",
        "blocked_terms_action": "block",
        "policy_guards-TOTAL_FORMS": str(len(guards)),
        "policy_guards-INITIAL_FORMS": "0",
        "policy_guards-MIN_NUM_FORMS": "0",
        "policy_guards-MAX_NUM_FORMS": "1000",
    }
    for index, (service, fail_mode) in enumerate(guards):
        form[f"policy_guards-{index}-service"] = service.pk
        form[f"policy_guards-{index}-fail_mode"] = fail_mode
    return {**form, **fields}


def test_an_operator_sets_a_policy_in_the_admin_and_the_next_call_follows_it(staff, alice, agent, fake_llm):
    ContentPolicy.objects.filter(agent_type=agent.agent_type).delete()
    service = GuardService.objects.create(name="acme", url="https://guard.example.com/check", secret_encrypted="x")
    page = staff.get(reverse("admin:agents_contentpolicy_add"))

    response = staff.post(
        reverse("admin:agents_contentpolicy_add"),
        policy_form(
            agent.agent_type,
            guards=[(service, "open")],
            family_email="redact",
            family_secret="block",
            overrides="secret.jwt = flag",
            blocked_terms="Project Nightingale\n\nFalcon",
            blocked_terms_action="redact",
        ),
    )

    assert page.status_code == 200 and "family_email" in page.content.decode()
    assert response.status_code == 302, response.content.decode()[:3000]
    policy = ContentPolicy.objects.get(agent_type=agent.agent_type)
    assert policy.actions == {"email": "redact", "secret": "block", "secret.jwt": "flag"}
    assert policy.terms() == ["Project Nightingale", "Falcon"]
    assert PolicyGuard.objects.get(policy=policy).fail_mode == "open"
    PolicyGuard.objects.all().delete()  # (the example service is not reachable from here)
    assert (
        ask(api_client(alice), agent, f"{EMAIL} about Falcon").json()["output"] == "echo: [EMAIL] about [BLOCKED_TERM]"
    )
    edit = staff.get(reverse("admin:agents_contentpolicy_change", args=[policy.pk])).content.decode()
    assert "secret.jwt = flag" in edit


def test_an_unknown_detector_and_a_second_platform_default_are_refused_on_the_form(staff, agent):
    set_policy(None, secret="redact")

    unknown = staff.post(
        reverse("admin:agents_contentpolicy_add"), policy_form(agent.agent_type, overrides="secret.nope = block")
    )
    badly_written = staff.post(reverse("admin:agents_contentpolicy_add"), policy_form(agent.agent_type, overrides="x"))
    second_default = staff.post(reverse("admin:agents_contentpolicy_add"), policy_form(None, family_email="flag"))

    assert unknown.status_code == 200 and "Unknown detector" in unknown.content.decode()
    assert "Line 1" in badly_written.content.decode()
    assert "platform default" in second_default.content.decode()
    assert ContentPolicy.objects.filter(agent_type=None).count() == 1
    assert not ContentPolicy.objects.filter(agent_type=agent.agent_type).exists()


def test_a_guard_service_gets_a_secret_shown_once_and_stored_encrypted_and_no_private_address(staff):
    # (127.0.0.2 is the one loopback address the test settings allow, as WEBHOOK_ALLOWED_HOSTS would a host)
    added = staff.post(
        reverse("admin:agents_guardservice_add"),
        {
            "name": "acme",
            "url": "http://127.0.0.2:9/check",
            "timeout_ms": 500,
            "directions": "both",
            "is_active": "on",
            "description": "",
            "secret": "",
        },
    )
    private = staff.post(
        reverse("admin:agents_guardservice_add"),
        {"name": "inside", "url": "http://10.0.0.5/check", "timeout_ms": 500, "directions": "both", "secret": ""},
    )

    assert added.status_code == 302
    [shown] = [str(message) for message in get_messages(added.wsgi_request) if "whsec_" in str(message)]
    secret = shown.split("shown this once: ")[1]
    service = GuardService.objects.get(name="acme")
    assert secret not in service.secret_encrypted and decrypt(service.secret_encrypted) == secret
    page = staff.get(reverse("admin:agents_guardservice_change", args=[service.pk])).content.decode()
    assert secret not in page
    assert private.status_code == 200 and "non-public address" in private.content.decode()
    assert not GuardService.objects.filter(name="inside").exists()


def rows(page: str) -> str:
    """The result table of a change list page."""
    return page.split("<tbody>")[1].split("</tbody>")[0]


def test_operators_read_verdicts_filtered_by_detector_and_action_and_on_the_run_never_the_text(
    staff, alice, agent, fake_llm
):
    set_policy(agent.agent_type, email="redact", secret="block")
    ask(api_client(alice), agent, f"mail {EMAIL}")
    ask(api_client(alice), agent, f"use {KEY}")
    blocked = AgentRun.objects.get(status="refused")

    every = staff.get(reverse("admin:agents_guardverdict_changelist")).content.decode()
    emails = staff.get(reverse("admin:agents_guardverdict_changelist") + "?detector=email").content.decode()
    blocks = staff.get(reverse("admin:agents_guardverdict_changelist") + "?action__exact=block").content.decode()
    run_page = staff.get(reverse("admin:agents_agentrun_change", args=[blocked.pk])).content.decode()

    assert "secret.github_token" in every and "email" in every
    assert "secret.github_token" not in rows(emails) and "email" in rows(emails)
    assert "email" not in rows(blocks) and "secret.github_token" in rows(blocks)
    assert "secret.github_token" in run_page and "Blocked" in run_page
    for page in (every, emails, blocks, run_page):
        assert EMAIL not in page and KEY not in page
    assert staff.get(reverse("admin:agents_guardverdict_add")).status_code == 403
    verdict = GuardVerdict.objects.first()
    assert (
        staff.post(reverse("admin:agents_guardverdict_delete", args=[verdict.pk]), {"post": "yes"}).status_code == 403
    )
