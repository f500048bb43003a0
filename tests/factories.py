"""Test data with factory-boy. Objects users make are made the way the platform makes them (through its
services), so a factory never builds a state the platform could not reach; catalog rows, which operators
enter in the admin, and records only the platform's own machinery writes are plain model rows.

    AgentFactory(owner=alice)              MemoryFactory.create_batch(30, owner=alice)
"""

from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from tests.conftest import PASSWORD


class ServiceFactory(factory.Factory):
    """A factory whose `_create` calls one of the platform's services."""

    class Meta:
        abstract = True

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return cls.service(**kwargs)


class UserFactory(ServiceFactory):
    class Meta:
        model = dict

    username = factory.Sequence(lambda n: f"user{n}")
    role = "member"

    @staticmethod
    def service(*, username, role):
        from accounts.services import user_register, user_set_role

        user = user_register(username=username, email=f"{username}@example.com", password=PASSWORD)
        if role != user.role:
            user_set_role(user=user, role=role, actor=None)
        return user


class ApiKeyFactory(ServiceFactory):
    class Meta:
        model = dict

    name = factory.Sequence(lambda n: f"key {n}")
    scopes = ("account:read", "keys:manage")

    @staticmethod
    def service(*, owner, name, scopes):
        from accounts.services import apikey_create

        key, _ = apikey_create(user=owner, name=name, scopes=list(scopes), actor=owner)
        return key


class SecurityEventFactory(ServiceFactory):
    class Meta:
        model = dict

    kind = "login_succeeded"

    @staticmethod
    def service(*, user, kind):
        from accounts.services import security_event_record

        return security_event_record(kind=kind, actor=user, user=user)


class AgentFactory(ServiceFactory):
    """An agent on the built-in `assistant` type (the echo model), unless given another type."""

    class Meta:
        model = dict

    name = factory.Sequence(lambda n: f"agent {n}")
    agent_type = None
    use_memory = False

    @staticmethod
    def service(*, owner, name, agent_type, use_memory):
        from agents.models import AgentType
        from agents.services.agents import agent_create

        agent_type = agent_type or AgentType.objects.get(slug="assistant")
        return agent_create(owner=owner, agent_type=agent_type, name=name, use_memory=use_memory)


class RunFactory(ServiceFactory):
    """A run, made by invoking the agent through the pipeline."""

    class Meta:
        model = dict

    text = factory.Sequence(lambda n: f"question {n}")

    @staticmethod
    def service(*, agent, user, text):
        from asgiref.sync import async_to_sync

        from agents.services.invocation import agent_invoke

        return async_to_sync(agent_invoke)(user=user, agent=agent, messages=[{"role": "user", "content": text}]).run


class MemoryFactory(ServiceFactory):
    class Meta:
        model = dict

    content = factory.Sequence(lambda n: f"remembered fact number {n}")
    namespace = "default"

    @staticmethod
    def service(*, owner, content, namespace):
        from memory.services import memory_create

        return memory_create(owner=owner, content=content, namespace=namespace)


class NamespaceFactory(ServiceFactory):
    class Meta:
        model = dict

    name = factory.Sequence(lambda n: f"space{n}")

    @staticmethod
    def service(*, owner, name):
        from memory.services import namespace_create

        return namespace_create(owner=owner, name=name)


class TaskFactory(ServiceFactory):
    """A background task (a memory import), queued: in a test without transactions it is never sent."""

    class Meta:
        model = dict

    @staticmethod
    def service(*, owner):
        from memory.services import memory_import_start

        record, _ = memory_import_start(owner=owner, lines='{"content": "imported"}')
        return record


class WebhookEndpointFactory(ServiceFactory):
    class Meta:
        model = dict

    url = "http://127.0.0.2:9/hooks"  # the test settings allow this host

    @staticmethod
    def service(*, owner, url):
        from tasks.services.webhooks import webhook_endpoint_create

        endpoint, _ = webhook_endpoint_create(owner=owner, url=url, events=["task.succeeded"])
        return endpoint


class WebhookDeliveryFactory(ServiceFactory):
    """A delivery of a test event with one failed attempt recorded (attempts are written by the worker)."""

    class Meta:
        model = dict

    @staticmethod
    def service(*, endpoint):
        from tasks.models import WebhookAttempt
        from tasks.services.webhooks import webhooks_emit_to

        [delivery] = webhooks_emit_to(endpoint=endpoint, event_type="webhook.ping", data={"endpoint": endpoint.pk})
        WebhookAttempt.objects.create(
            delivery=delivery, number=1, started_at=timezone.now(), status_code=500, error="boom"
        )
        return delivery


TWO_STEPS = """
version: 1
name: two-steps
inputs:
  word: {type: string, default: "hi"}
steps:
  - id: first
    kind: transform
    output: "${inputs.word}"
  - id: second
    kind: transform
    needs: [first]
    output: "${steps.first.output + '!'}"
outputs:
  said: "${steps.second.output}"
"""

APPROVAL = """
version: 1
name: needs-approval
steps:
  - id: review
    kind: approval
    approvers: {users: [bob]}
    context: "Go ahead?"
"""


class WorkflowFactory(ServiceFactory):
    class Meta:
        model = dict

    name = factory.Sequence(lambda n: f"workflow-{n}")
    source = TWO_STEPS

    @staticmethod
    def service(*, owner, name, source):
        from workflows.services.workflows import workflow_create

        return workflow_create(owner=owner, name=name, source=source)


def run_here(run):
    """Run a run's queued steps in this process, as a worker would (in a test without transactions the
    tasks are never sent), until none is left."""
    from workflows.engine.execution import step_execute

    while step := run.steps.filter(status="queued").first():
        step_execute(step_id=step.pk, attempt=step.attempt)
    run.refresh_from_db()
    return run


class WorkflowRunFactory(ServiceFactory):
    """A finished run (its steps run in this process)."""

    class Meta:
        model = dict

    @staticmethod
    def service(*, workflow, user):
        from workflows.services.runs import run_start

        run, _ = run_start(workflow=workflow, user=user, inputs={})
        return run_here(run)


class ApprovalFactory(ServiceFactory):
    """An open approval of bob's on a run of the owner's."""

    class Meta:
        model = dict

    @staticmethod
    def service(*, owner):
        from workflows.services.runs import run_start

        workflow = WorkflowFactory(owner=owner, source=APPROVAL)
        run, _ = run_start(workflow=workflow, user=owner, inputs={})
        return run_here(run).approvals.get()


# --- the catalog and the roll-up: rows operators or beat jobs write -------------------------------------


class ProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "agents.Provider"

    name = factory.Sequence(lambda n: f"provider-{n}")
    kind = "echo"


class LanguageModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "agents.LanguageModel"

    name = factory.Sequence(lambda n: f"model-{n}")
    provider = factory.SubFactory(ProviderFactory)
    provider_model = "echo"
    input_price_per_mtok = Decimal("1")
    output_price_per_mtok = Decimal("2")


class AgentTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "agents.AgentType"

    slug = factory.Sequence(lambda n: f"type-{n}")
    default_model = factory.SubFactory(LanguageModelFactory)


class UsageDailyFactory(factory.django.DjangoModelFactory):
    """One day's roll-up row, each on an earlier day."""

    class Meta:
        model = "quotas.UsageDaily"

    day = factory.Sequence(lambda n: timezone.now().date() - timedelta(days=n % 300))
    agent_type = "assistant"
    model = "echo"
    requests = 3
    input_tokens = 30
    output_tokens = 60
