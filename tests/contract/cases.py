"""Every kind of object behind the API and every list, as the battery in tests/isolation.py needs them.

A new endpoint adds its routes here; tests/contract/test_routes.py fails until it does.
"""

from django.contrib.auth.models import Group, Permission

from accounts.services import object_share
from memory.services import namespace_share
from tasks.models import WebhookEndpoint
from tests.factories import (
    AgentFactory,
    AgentTypeFactory,
    ApiKeyFactory,
    ApprovalFactory,
    LanguageModelFactory,
    MemoryFactory,
    NamespaceFactory,
    RunFactory,
    SecurityEventFactory,
    TaskFactory,
    UsageDailyFactory,
    UserFactory,
    WebhookDeliveryFactory,
    WebhookEndpointFactory,
    WorkflowFactory,
    WorkflowRunFactory,
)
from tests.isolation import ListCase, ObjectKind, Route

ASK = {"messages": [{"role": "user", "content": "hello"}]}
EVERY_MINUTE = {"cron": "* * * * *", "inputs": {}}


def share_object(obj, owner, user, level):
    object_share(obj=obj, owner=owner, user=user, level=level)


def share_namespace_of(memory, owner, user, level):
    namespace_share(owner=owner, name=memory.namespace, user=user, level=level)


def own_agent(cast):
    return cast.alice.agents.first() or AgentFactory(owner=cast.alice)


def own_endpoint(cast):
    return WebhookEndpoint.objects.filter(owner=cast.alice).first() or WebhookEndpointFactory(owner=cast.alice)


def alternately(own, shared):
    """A maker that adds the reader's own objects and objects shared with them, in turn."""

    def make(cast):
        cast.made = getattr(cast, "made", 0) + 1
        return (own if cast.made % 2 else shared)(cast)

    return make


KINDS = [
    ObjectKind(
        name="apikey",
        make=lambda cast: ApiKeyFactory(owner=cast.alice),
        routes=[Route("apikey-detail"), Route("apikey-rotate", "post", {}), Route("apikey-revoke", "post", {})],
        scopes=("keys:manage",),
        list_route="apikey-list",
    ),
    ObjectKind(
        name="user",
        make=lambda cast: UserFactory(),
        routes=[Route("user-detail"), Route("user-detail", "patch", {"role": "viewer"})],
        scopes=("users:manage",),
        list_route="user-list",
        reader="admin",
        outsider_status=403,  # only admins and operators see users: the same 403 for any id
    ),
    ObjectKind(
        name="taskrecord",
        make=lambda cast: TaskFactory(owner=cast.alice),
        routes=[Route("taskrecord-detail"), Route("taskrecord-cancel", "post", {})],
        scopes=("tasks:read", "tasks:write"),
        list_route="taskrecord-list",
    ),
    ObjectKind(
        name="webhookendpoint",
        make=lambda cast: WebhookEndpointFactory(owner=cast.alice),
        routes=[
            Route("webhookendpoint-detail"),
            Route("webhookendpoint-detail", "patch", {"description": "changed"}),
            Route("webhookendpoint-detail", "delete"),
            Route("webhookendpoint-rotate-secret", "post", {}),
            Route("webhookendpoint-ping", "post", {}),
            Route("webhookendpoint-deliveries"),
        ],
        scopes=("webhooks:manage",),
        list_route="webhookendpoint-list",
    ),
    ObjectKind(
        name="agent",
        make=lambda cast: AgentFactory(owner=cast.alice),
        routes=[
            Route("agent-detail"),
            Route("agent-detail", "patch", {"name": "renamed"}),
            Route("agent-detail", "delete"),
            Route("agent-invoke", "post", ASK, shared="use"),
            Route("agent-shares", shared="owner"),
            Route("agent-shares", "post", {"user": "charlie", "level": "use"}),
            Route("agent-unshare", "delete", kwargs={"username": "bob"}),
        ],
        scopes=("agents:read", "agents:write", "agents:invoke"),
        list_route="agent-list",
        share=share_object,
    ),
    ObjectKind(
        name="agentrun",
        make=lambda cast: RunFactory(agent=own_agent(cast), user=cast.alice),
        routes=[Route("agentrun-detail")],
        scopes=("agents:read",),
        list_route="agentrun-list",
    ),
    ObjectKind(
        name="memory",
        make=lambda cast: MemoryFactory(owner=cast.alice, namespace="work"),
        routes=[
            Route("memory-detail"),
            Route("memory-detail", "patch", {"content": "changed"}),
            Route("memory-detail", "delete"),
        ],
        scopes=("memory:read", "memory:write"),
        list_route="memory-list",
        share=share_namespace_of,
    ),
    ObjectKind(
        name="memory-namespace",
        make=lambda cast: NamespaceFactory(owner=cast.alice),
        routes=[
            Route("memory-namespace-detail"),
            Route("memory-namespace-detail", "patch", {"description": "changed"}),
            Route("memory-namespace-detail", "delete"),
            Route("memory-namespace-shares", shared="owner"),
            Route("memory-namespace-shares", "post", {"user": "charlie", "level": "use"}),
            Route("memory-namespace-unshare", "delete", kwargs={"username": "bob"}),
        ],
        scopes=("memory:read", "memory:write"),
        list_route="memory-namespace-list",
        share=share_object,
    ),
    ObjectKind(
        name="workflow",
        make=lambda cast: WorkflowFactory(owner=cast.alice),
        routes=[
            Route("workflow-detail"),
            Route("workflow-detail", "patch", {"description": "changed"}),
            Route("workflow-detail", "delete"),
            Route("workflow-versions"),
            Route("workflow-version", kwargs={"number": 1}),
            Route("workflow-diff", body={"from": 1, "to": 1}),
            Route("workflow-export"),
            Route("workflow-rollback", "post", {"version": 1}),
            Route("workflow-hook-secret", "post", {}),
            Route("workflow-schedules", shared="owner"),
            Route("workflow-schedules", "post", EVERY_MINUTE),
            Route("workflow-schedule-delete", "delete", kwargs={"schedule": 1}),
            Route("workflow-start", "post", {"inputs": {}}, shared="use"),
            Route("workflow-hook", "post", {}),
            Route("workflow-shares", shared="owner"),
            Route("workflow-shares", "post", {"user": "charlie", "level": "use"}),
            Route("workflow-unshare", "delete", kwargs={"username": "bob"}),
        ],
        scopes=("workflows:read", "workflows:write", "workflows:run"),
        list_route="workflow-list",
        share=share_object,
    ),
    ObjectKind(
        name="workflowrun",
        make=lambda cast: WorkflowRunFactory(workflow=own_workflow(cast), user=cast.alice),
        routes=[
            Route("workflowrun-detail"),
            Route("workflowrun-events"),
            Route("workflow-run-stream"),
            Route("workflowrun-cancel", "post", {}),
            Route("workflowrun-rerun", "post", {"from_step": "second"}),
            Route("workflowrun-signals", "post", {"name": "go"}),
        ],
        scopes=("workflows:read", "workflows:run"),
        list_route="workflowrun-list",
    ),
    ObjectKind(
        name="approval",
        make=lambda cast: ApprovalFactory(owner=cast.alice),
        routes=[Route("approval-detail"), Route("approval-decide", "post", {"decision": "approve"})],
        scopes=("workflows:read", "workflows:run"),
    ),
]


def own_workflow(cast):
    return cast.alice.workflows.first() or WorkflowFactory(owner=cast.alice)


def _shared_workflow(cast):
    workflow = WorkflowFactory(owner=cast.bob)
    share_object(workflow, cast.bob, cast.alice, "view")
    return workflow


def _shared_agent(cast):
    agent = AgentFactory(owner=cast.bob)
    share_object(agent, cast.bob, cast.alice, "view")
    return agent


def _shared_memory(cast):
    memory = MemoryFactory(owner=cast.bob, namespace="team")
    namespace_share(owner=cast.bob, name="team", user=cast.alice, level="view")
    return memory


def _shared_namespace(cast):
    namespace = NamespaceFactory(owner=cast.bob)
    share_object(namespace, cast.bob, cast.alice, "view")
    return namespace


def _shared_with_someone(obj_of):
    def make(cast):
        obj = obj_of(cast)
        share_object(obj, cast.alice, UserFactory(), "view")

    return make


def own_namespace(cast):
    return cast.alice.memory_namespaces.first() or NamespaceFactory(owner=cast.alice)


def _role_permission(cast):
    """One more permission held by the viewer role (roles list their permissions)."""
    viewer = Group.objects.get(name="viewer")
    viewer.permissions.add(Permission.objects.exclude(group=viewer).order_by("pk").first())


def _permission_count(body):
    return sum(len(role["permissions"]) for role in body)


LISTS = [
    ListCase("apikey-list", lambda cast: ApiKeyFactory(owner=cast.alice)),
    ListCase("securityevent-list", lambda cast: SecurityEventFactory(user=cast.alice)),
    ListCase("user-list", lambda cast: UserFactory(), reader="admin"),
    ListCase("role-list", _role_permission, size=_permission_count, private=False),
    ListCase("taskrecord-list", lambda cast: TaskFactory(owner=cast.alice)),
    ListCase("webhookendpoint-list", lambda cast: WebhookEndpointFactory(owner=cast.alice)),
    ListCase(
        "webhookendpoint-deliveries",
        lambda cast: WebhookDeliveryFactory(endpoint=own_endpoint(cast)),
        route_kwargs=lambda cast: {"pk": own_endpoint(cast).pk},
    ),
    ListCase("agent-list", alternately(lambda cast: AgentFactory(owner=cast.alice), _shared_agent)),
    ListCase("agent-shares", _shared_with_someone(own_agent), route_kwargs=lambda cast: {"pk": own_agent(cast).pk}),
    ListCase("agentrun-list", lambda cast: RunFactory(agent=own_agent(cast), user=cast.alice)),
    ListCase("agenttype-list", lambda cast: AgentTypeFactory(), private=False),
    ListCase("languagemodel-list", lambda cast: LanguageModelFactory(), private=False),
    ListCase("memory-list", alternately(lambda cast: MemoryFactory(owner=cast.alice), _shared_memory)),
    ListCase("memory-namespace-list", alternately(lambda cast: NamespaceFactory(owner=cast.alice), _shared_namespace)),
    ListCase(
        "memory-namespace-shares",
        _shared_with_someone(own_namespace),
        route_kwargs=lambda cast: {"pk": own_namespace(cast).pk},
    ),
    ListCase("workflow-list", alternately(lambda cast: WorkflowFactory(owner=cast.alice), _shared_workflow)),
    ListCase(
        "workflow-shares", _shared_with_someone(own_workflow), route_kwargs=lambda cast: {"pk": own_workflow(cast).pk}
    ),
    ListCase(
        "workflow-versions",
        lambda cast: _new_version(own_workflow(cast)),
        route_kwargs=lambda cast: {"pk": own_workflow(cast).pk},
    ),
    ListCase("workflowrun-list", lambda cast: WorkflowRunFactory(workflow=own_workflow(cast), user=cast.alice)),
    ListCase(
        "workflowrun-events",
        lambda cast: _one_run_event(cast),
        route_kwargs=lambda cast: {"pk": _events_run(cast).pk},
    ),
    ListCase(
        "workflow-schedules",
        lambda cast: _new_schedule(own_workflow(cast)),
        route_kwargs=lambda cast: {"pk": own_workflow(cast).pk},
    ),
    ListCase("approval-list", lambda cast: ApprovalFactory(owner=cast.alice), reader="bob"),
    ListCase(
        "api-usage",
        lambda cast: UsageDailyFactory(user=cast.alice),
        params={"days": 366},
    ),
]


def _new_version(workflow):
    from workflows.services.workflows import workflow_save

    workflow_save(workflow=workflow, user=workflow.owner, source=workflow.current_version.source)


def _new_schedule(workflow):
    from workflows.services.schedules import schedule_create

    schedule_create(workflow=workflow, owner=workflow.owner, cron="0 3 * * *")


def _events_run(cast):
    """A run that is still running (events are posted to it)."""
    if not hasattr(cast, "events_run"):
        from workflows.services.runs import run_start

        cast.events_run, _ = run_start(workflow=WorkflowFactory(owner=cast.alice, source=WAITS), user=cast.alice)
    return cast.events_run


def _one_run_event(cast):
    from workflows.services.signals import signal_post

    signal_post(run=_events_run(cast), name="ping")


WAITS = """
version: 1
name: waits
steps:
  - id: hold
    kind: wait
    event: never
"""
