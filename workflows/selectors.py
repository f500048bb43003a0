"""Reads of workflows, runs and approvals, each scoped to who is asking; what they may not see is a 404."""

from django.db.models import Q, QuerySet

from accounts.selectors import owned_get, owned_or_shared, owned_or_shared_get
from workflows.models import Approval, StepRun, Workflow, WorkflowRun

WORKFLOWS = Workflow.objects.select_related("owner", "current_version")
RUNS = WorkflowRun.objects.select_related("workflow", "version", "owner")


def workflow_list(*, user) -> QuerySet[Workflow]:
    return owned_or_shared(user=user, queryset=WORKFLOWS)


def workflow_get(*, user, pk, level: str = "view") -> Workflow:
    """A workflow the user owns or that is shared with them at `level` (view or use)."""
    return owned_or_shared_get(user=user, queryset=WORKFLOWS, pk=pk, level=level)


def workflow_get_owned(*, user, pk) -> Workflow:
    return owned_get(user=user, queryset=WORKFLOWS, pk=pk)


def run_list(*, user) -> QuerySet[WorkflowRun]:
    """The runs the user started, and the runs of the user's workflows."""
    return RUNS.filter(Q(owner=user) | Q(workflow__owner=user))


def run_get(*, user, pk) -> WorkflowRun:
    from django.http import Http404

    run = run_list(user=user).filter(pk=pk).first()
    if run is None:
        raise Http404("No such workflow run.")
    return run


def run_steps(*, run: WorkflowRun) -> QuerySet[StepRun]:
    return run.steps.order_by("id")


def approvals_for(*, user) -> QuerySet[Approval]:
    """Open approvals the user may decide: named, or of the user's role or one below it."""
    from accounts.models import ROLES

    below = ROLES[ROLES.index(user.role) :] if user.role in ROLES else ()
    return (
        Approval.objects.filter(status=Approval.Status.OPEN)
        .filter(Q(approvers=user) | Q(role__in=below) & ~Q(role=""))
        .select_related("run__workflow", "step")
        .prefetch_related("decisions__user")
        .distinct()
        .order_by("expires_at")
    )


def approval_get(*, user, pk) -> Approval:
    """An approval the user may decide (or named in, or decided), or one of a run the user may see."""
    from django.http import Http404

    approval = (
        Approval.objects.select_related("run__workflow", "step")
        .prefetch_related("decisions__user")
        .filter(pk=pk)
        .filter(
            Q(pk__in=approvals_for(user=user).values("pk"))
            | Q(approvers=user)
            | Q(decisions__user=user)
            | Q(run__in=run_list(user=user))
        )
        .distinct()
        .first()
    )
    if approval is None:
        raise Http404("No such approval.")
    return approval


# --- what a definition may name (the validator's resolver, and the engine at run time) -------------------


def agent_usable_named(*, user, name: str):
    """The user's own agent of that name, else one shared with them for use ('owner/name' picks the owner)."""
    from agents.selectors import agents_usable

    usable = agents_usable(user=user)
    if "/" in name:
        owner, _, name = name.partition("/")
        return usable.filter(owner__username=owner, name=name).first()
    return usable.filter(owner=user, name=name).first() or usable.filter(name=name).order_by("id").first()


def workflow_usable_named(*, user, name: str):
    usable = owned_or_shared(user=user, queryset=WORKFLOWS, level="use")
    if "/" in name:
        owner, _, name = name.partition("/")
        return usable.filter(owner__username=owner, name=name).first()
    return usable.filter(owner=user, name=name).first() or usable.filter(name=name).order_by("id").first()


class OwnerResolver:
    """What a definition saved by `user` may name: agents and workflows they may use, their namespaces."""

    def __init__(self, user):
        self.user = user

    def agent(self, name: str) -> bool:
        return agent_usable_named(user=self.user, name=name) is not None

    def workflow(self, name: str) -> bool:
        return workflow_usable_named(user=self.user, name=name) is not None

    def namespace(self, name: str) -> bool:
        from memory.models import MemoryNamespace

        return name == "default" or MemoryNamespace.objects.filter(owner=self.user, name=name).exists()
