"""What each kind of step does, in a worker. A kind returns Done (the output), Wait (the step waits for
people, time, an event, a child run or its items) or Skip, or raises StepError."""

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from workflows import expressions
from workflows.engine.definitions import context_of
from workflows.models import StepRun, WorkflowRun


class StepError(Exception):
    """A step failed; `retry`: whether another attempt may succeed (a provider down, a timeout)."""

    def __init__(self, message: str, *, retry: bool = False, delay: float = 0):
        super().__init__(message)
        self.retry = retry
        self.delay = delay


@dataclass
class Done:
    output: object
    tokens: int = 0
    cost: Decimal = Decimal(0)
    agent_run_id: object = None
    input: object = None


@dataclass
class Skip:
    reason: str


@dataclass
class Wait:
    """The step waits. `then(step, run)` runs in the transaction that marks it waiting (children, approvals,
    child runs); `wake_at`: when the reaper or a timer wakes it (a timeout, an expiry, the end of a wait)."""

    wake_at: datetime | None = None
    input: object = None
    then: object = None
    children: list[dict] = field(default_factory=list)


def context_for(step: StepRun, run: WorkflowRun) -> dict:
    return context_of(run, item=step.item, has_item=step.parent_id is not None and step.index is not None)


def execute(step: StepRun, spec: dict, run: WorkflowRun):
    context = context_for(step, run)
    if step.parent_id and spec.get("if") and not expressions.is_true(spec["if"], context):
        return Skip("Its condition is false.")
    return KINDS[spec["kind"]](step, spec, run, context)


# --- the kinds ------------------------------------------------------------------------------------------


def agent_step(step, spec, run, context):
    from agents.providers import ProviderError
    from agents.services.invocation import agent_invoke
    from core.async_runner import run as run_coroutine
    from core.exceptions import DomainError, RateLimited
    from workflows.selectors import agent_usable_named

    agent = agent_usable_named(user=run.owner, name=spec["agent"])
    if agent is None:
        raise StepError(f"No agent named {spec['agent']!r} that you may use.")
    if "messages" in spec:
        messages = [
            {"role": message["role"], "content": _text(expressions.render(message["content"], context))}
            for message in spec["messages"]
        ]
    else:
        messages = [{"role": "user", "content": _text(expressions.render(spec["input"], context))}]
    options = spec.get("options") or {}
    run.owner.role  # noqa: B018  (read here, in the worker's thread, not by the pipeline on the event loop)
    call = agent_invoke(
        user=run.owner,
        agent=agent,
        messages=messages,
        idempotency_key=f"wf:{run.pk}:{step.key}:{step.attempt}",
        temperature=options.get("temperature"),
        max_tokens=options.get("max_tokens"),
        metadata={"workflow_run": str(run.pk), "step": step.key},
    )
    try:
        result = run_coroutine(asyncio.wait_for(call, spec["timeout"]) if spec.get("timeout") else call)
    except TimeoutError as error:
        raise StepError(f"Timed out after {spec['timeout']:g} s.", retry=True) from error
    except RateLimited as error:
        raise StepError(str(error), retry=True, delay=error.retry_after or 0) from error
    except ProviderError as error:
        raise StepError(str(error), retry=error.status >= 500 or error.status in (408, 429)) from error
    except DomainError as error:
        raise StepError(str(error), retry=error.transient) from error
    agent_run = result.run
    return Done(
        result.text,
        tokens=agent_run.input_tokens + agent_run.output_tokens,
        cost=agent_run.cost,
        agent_run_id=agent_run.pk,
        input={"agent": agent.name, "messages": agent_run.input},  # as the guards left them (redacted)
    )


def _text(value) -> str:
    """A template's value as the text of a message: JSON for lists and maps."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else str(value)


def switch_step(step, spec, run, context):
    for index, case in enumerate(spec["cases"]):
        if expressions.is_true(case["when"], context):
            return Done({"case": index, "steps": case["steps"]})
    default = spec.get("default") or []
    return Done({"case": "default" if default else None, "steps": default})


def transform_step(step, spec, run, context):
    return Done(expressions.render_value(spec["output"], context))


def memory_step(step, spec, run, context):
    from django.core.exceptions import ValidationError

    from memory.services import memory_create, memory_recall

    namespace = spec["namespace"]
    try:
        if spec["action"] == "write":
            content = _text(expressions.render(spec["content"], context))
            fields = {"namespace": namespace, "metadata": expressions.render_value(spec.get("metadata") or {}, context)}
            if spec.get("expires_in"):
                fields["expires_at"] = timezone.now() + timedelta(seconds=spec["expires_in"])
            memory = memory_create(owner=run.owner, content=content, **fields)
            expires = fields.get("expires_at")
            return Done(
                {"id": memory.pk}, input={"content": content, **fields, "expires_at": expires and expires.isoformat()}
            )
        query = _text(expressions.render(spec["query"], context))
        filters = {"namespace": namespace}
        if spec.get("filters"):
            filters["metadata"] = expressions.render_value(spec["filters"], context)
        hits, _ = memory_recall(user=run.owner, query=query, filters=filters, k=spec.get("k", 5), shared=None)
    except ValidationError as error:
        raise StepError("; ".join(error.messages)) from error
    output = [
        {"id": hit.memory.pk, "content": hit.memory.content, "metadata": hit.memory.metadata, "distance": hit.distance}
        for hit in hits
    ]
    return Done(output, input={"query": query, "filters": filters})


def transform_items(spec, context) -> list:
    items = expressions.evaluate(spec["items"], context)
    if not isinstance(items, list):
        raise StepError(f"`items` gave {type(items).__name__}, not a list.")
    if len(items) > 1000:
        raise StepError(f"`items` gave {len(items)} items; a map takes at most 1000.")
    return items


def map_step(step, spec, run, context):
    items = transform_items(spec, context)
    inner = spec["step"]
    children = [
        {"key": f"{step.key}[{index}]", "step_id": inner["id"], "kind": inner["kind"], "index": index, "item": item}
        for index, item in enumerate(items)
    ]
    if not children:
        return Done([])
    return Wait(children=children, input={"items": len(items)})


def parallel_step(step, spec, run, context):
    children = [
        {"key": f"{step.key}.{branch['id']}", "step_id": branch["id"], "kind": branch["kind"], "index": index}
        for index, branch in enumerate(spec["branches"])
    ]
    for child in children:  # a branch inside a map's item reads that item too
        child["item"] = step.item
    return Wait(children=children)


def approval_step(step, spec, run, context):
    from workflows.services.approvals import approval_open

    context_text = _text(expressions.render(spec["context"], context)) if spec.get("context") else ""
    expires_at = timezone.now() + timedelta(seconds=spec["expires_in"])
    return Wait(
        wake_at=expires_at,
        input={"context": context_text},
        then=lambda step, run: approval_open(
            step=step, run=run, spec=spec, context=context_text, expires_at=expires_at
        ),
    )


def wait_step(step, spec, run, context):
    from workflows.services.signals import signal_take

    now = timezone.now()
    if spec.get("for") is not None:
        return Wait(wake_at=now + timedelta(seconds=spec["for"]))
    if spec.get("until"):
        text = _text(expressions.render(spec["until"], context))
        until = parse_datetime(text)
        if until is None:
            raise StepError(f"`until` gave {text!r}, not an ISO 8601 timestamp.")
        if until.tzinfo is None:
            until = timezone.make_aware(until, timezone.utc)
        return Wait(wake_at=max(until, now))
    timeout = spec.get("timeout")
    return Wait(
        wake_at=now + timedelta(seconds=timeout) if timeout else None,
        then=lambda step, run: signal_take(step=step, run=run, name=spec["event"]),
    )


def workflow_step(step, spec, run, context):
    from workflows.selectors import workflow_usable_named
    from workflows.services.runs import run_start_child

    workflow = workflow_usable_named(user=run.owner, name=spec["workflow"])
    if workflow is None or workflow.current_version_id is None:
        raise StepError(f"No workflow named {spec['workflow']!r} that you may run.")
    inputs = expressions.render_value(spec.get("inputs") or {}, context)
    timeout = spec.get("timeout")
    return Wait(
        wake_at=timezone.now() + timedelta(seconds=timeout) if timeout else None,
        input={"workflow": workflow.name, "inputs": inputs},
        then=lambda step, run: run_start_child(workflow=workflow, parent_step=step, inputs=inputs),
    )


KINDS = {
    "agent": agent_step,
    "switch": switch_step,
    "parallel": parallel_step,
    "map": map_step,
    "transform": transform_step,
    "memory": memory_step,
    "approval": approval_step,
    "wait": wait_step,
    "workflow": workflow_step,
}
