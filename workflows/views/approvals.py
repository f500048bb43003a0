"""The approvals you may decide, and the signed single-use links that decide one without signing in."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from core.exceptions import DomainError
from workflows import selectors
from workflows.forms import DecisionForm
from workflows.models import ApprovalDecision
from workflows.services.approvals import approval_decide, approval_from_link, may_decide


@login_required
def approvals(request):
    found = list(
        selectors.approvals_for(user=request.user).select_related("run__owner").prefetch_related("decisions__user")
    )
    visible = set(
        selectors.run_list(user=request.user).filter(pk__in=[a.run_id for a in found]).values_list("pk", flat=True)
    )
    for approval in found:
        approval.run_visible = approval.run_id in visible
        approval.decided_by_me = any(decision.user_id == request.user.pk for decision in approval.decisions.all())
    return render(request, "workflows/approvals.html", {"approvals": found, "form": DecisionForm()})


@login_required
@permission_required("workflows.view_workflowrun", raise_exception=True)
@require_POST
def approval_decide_view(request, pk):
    approval = selectors.approval_get(user=request.user, pk=pk)
    form = DecisionForm(request.POST)
    comment = form.cleaned_data["comment"] if form.is_valid() else ""
    decision = request.POST.get("decision", "")
    try:
        approval_decide(
            approval=approval, user=request.user, decision=decision, comment=comment, via=ApprovalDecision.Via.BROWSER
        )
    except (DomainError, PermissionDenied) as error:
        messages.error(request, str(error))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        word = "Approved" if decision == ApprovalDecision.Decision.APPROVE else "Rejected"
        messages.success(request, f"{word}: {approval.run.workflow.name}, step {approval.step.key}.")
    return redirect("approvals")


@require_http_methods(["GET", "POST"])
def approval_link(request, token):
    """A decision from a signed single-use link (email, webhook): no sign-in, the link names the person."""
    approval, user = approval_from_link(token)
    decided = approval.decisions.filter(user=user).first()
    if request.method == "POST" and decided is None:
        decision = request.POST.get("decision")
        try:
            approval_decide(
                approval=approval,
                user=user,
                decision=decision,
                comment=request.POST.get("comment", "")[:1000],
                via=ApprovalDecision.Via.LINK,
            )
        except (DomainError, PermissionDenied) as error:
            messages.error(request, str(error))
        except ValidationError:
            messages.error(request, "Choose Approve or Reject.")
        else:
            messages.success(request, "Thank you: your decision is recorded.")
        return redirect(request.path)
    approval.refresh_from_db()
    context = {
        "approval": approval,
        "person": user,
        "decided": decided or approval.decisions.filter(user=user).first(),
        "may_decide": may_decide(approval, user),
    }
    return render(
        request, "workflows/approval_link.html", context, status=410 if decided and request.method == "POST" else 200
    )
