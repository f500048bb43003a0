"""Approvals: a step that waits for people. Who may decide (named users, or a role and those above it),
how many approvals it needs (one rejection rejects), an expiry with its own branch; decided in the
browser, over the API or from a signed single-use link sent by email and webhook. Each decision is in the
audit trail (django-auditlog) and resumes the run in the same transaction."""

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from accounts.models import ROLES
from core.exceptions import Conflict
from workflows.engine.execution import step_resume
from workflows.engine.scheduling import lock_run, record
from workflows.models import Approval, ApprovalDecision, StepRun

logger = logging.getLogger("switchboard.workflows")
LINK_SALT = "workflows.approval-link"
NOTIFY_AT_MOST = 50  # people of a role told by email; the rest decide from their approvals list


def approval_open(*, step: StepRun, run, spec: dict, context: str, expires_at) -> Approval:
    """Inside the transaction that makes the step wait: the approval, and who is told."""
    approvers = spec["approvers"]
    users = list(get_user_model().objects.filter(username__in=approvers.get("users", []), is_active=True))
    approval = Approval.objects.create(
        step=step,
        run=run,
        role=approvers.get("role") or "",
        required=spec.get("required") or 1,
        context=context,
        expires_at=expires_at,
    )
    approval.approvers.set(users)
    links = {user.username: approval_link(approval=approval, user=user) for user in deciders(approval)[:NOTIFY_AT_MOST]}
    record(run, "approval.requested", step=step.key, approval=approval.pk, webhook={"links": links})
    transaction.on_commit(lambda: _email(approval, links))
    return approval


def deciders(approval: Approval) -> list:
    named = list(approval.approvers.all())
    if not approval.role:
        return named
    roles = ROLES[: ROLES.index(approval.role) + 1]
    by_role = (
        get_user_model()
        .objects.filter(Q(groups__name__in=roles) | Q(is_superuser=True), is_active=True)
        .distinct()
        .order_by("id")[:NOTIFY_AT_MOST]
    )
    return named + [user for user in by_role if user not in named]


def may_decide(approval: Approval, user) -> bool:
    if not user.is_authenticated:
        return False
    if approval.approvers.filter(pk=user.pk).exists():
        return True
    return bool(approval.role) and user.role in ROLES and ROLES.index(user.role) <= ROLES.index(approval.role)


def approval_link(*, approval: Approval, user) -> str:
    token = signing.dumps({"approval": approval.pk, "user": user.pk}, salt=LINK_SALT)
    return settings.PUBLIC_URL.rstrip("/") + reverse("approval_link", args=[token])


def approval_from_link(token: str) -> tuple[Approval, object]:
    """The approval and the person a link was sent to; a link altered, or for an approval gone, is a 404."""
    try:
        data = signing.loads(token, salt=LINK_SALT)
        approval = Approval.objects.select_related("run__workflow", "step").get(pk=data["approval"])
        user = get_user_model().objects.get(pk=data["user"], is_active=True)
    except (signing.BadSignature, KeyError, TypeError, Approval.DoesNotExist, get_user_model().DoesNotExist):
        raise Http404("This approval link is not valid.") from None
    return approval, user


@transaction.atomic
def approval_decide(*, approval: Approval, user, decision: str, comment: str = "", via: str) -> Approval:
    """Record one person's decision; when it settles the approval, the run goes on at once."""
    if decision not in ApprovalDecision.Decision.values:
        raise ValidationError({"decision": "approve or reject."})
    lock_run(approval.run_id)
    approval = Approval.objects.select_for_update().get(pk=approval.pk)
    if not may_decide(approval, user):
        raise PermissionDenied("You are not one of this approval's approvers.")
    if approval.status != Approval.Status.OPEN:
        raise Conflict(f"This approval is {approval.get_status_display().lower()} already.")
    if approval.expires_at <= timezone.now():
        raise Conflict("This approval has expired.")
    try:
        with transaction.atomic():
            ApprovalDecision.objects.create(approval=approval, user=user, decision=decision, comment=comment, via=via)
    except IntegrityError:
        raise Conflict("You have decided on this approval already.") from None
    record(approval.run, "approval.decided", step=approval.step.key, user=user.username, decision=decision, via=via)
    approvals = approval.decisions.filter(decision=ApprovalDecision.Decision.APPROVE).count()
    if decision == ApprovalDecision.Decision.REJECT:
        _settle(approval, Approval.Status.REJECTED)
    elif approvals >= approval.required:
        _settle(approval, Approval.Status.APPROVED)
    return approval


def approval_expire(*, step: StepRun) -> None:
    approval = Approval.objects.select_for_update().filter(step=step, status=Approval.Status.OPEN).first()
    if approval is not None:
        _settle(approval, Approval.Status.EXPIRED)


def _settle(approval: Approval, status: str) -> None:
    from workflows.engine.definitions import specs_of

    approval.status, approval.decided_at = status, timezone.now()
    approval.save(update_fields=["status", "decided_at"])
    spec = specs_of(lock_run(approval.run_id))[approval.step.step_id]
    branch = {"approved": "approved", "rejected": "rejected", "expired": "expired"}[status]
    output = {
        "decision": branch,
        "decisions": [
            {"user": decision.user.username, "decision": decision.decision, "comment": decision.comment}
            for decision in approval.decisions.select_related("user")
        ],
        "steps": (spec.get("branches") or {}).get(branch, []),
    }
    step_resume(step_id=approval.step_id, output=output)


def _email(approval: Approval, links: dict) -> None:
    users = {user.username: user for user in deciders(approval)[:NOTIFY_AT_MOST]}
    for username, link in links.items():
        user = users.get(username)
        if user is None or not user.email:
            continue
        try:
            send_mail(
                f"Approval needed: {approval.run.workflow.name}",
                f"{approval.context}\n\nDecide before {approval.expires_at:%Y-%m-%d %H:%M} UTC: {link}\n",
                settings.DEFAULT_FROM_EMAIL,
                [user.email],
            )
        except Exception:
            logger.exception("approval email not sent", extra={"approval": approval.pk})
