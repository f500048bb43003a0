"""The normalised definition, the only form the engine reads: every default written out, every duration in
seconds, routes and joins spelled as the engine uses them. It is built from a valid definition, and
normalising it again changes nothing, so a stored definition can be normalised anew when defaults change."""

import copy
import heapq
import re

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_TIMED_KINDS = ("agent", "memory", "workflow")  # the kinds with a 300 s timeout unless they say otherwise
DEFAULT_TIMEOUT = 300.0
_INPUT_TYPES = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)


def seconds(duration) -> float:
    """A duration as float seconds: a number of seconds, or text such as "500ms", "30s", "5m", "2h", "1d"."""
    if isinstance(duration, int | float) and not isinstance(duration, bool):
        return float(duration)
    match = _DURATION.match(duration) if isinstance(duration, str) else None
    if match is None:
        raise ValueError(f"not a duration: {duration!r}")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _optional_seconds(duration) -> float | None:
    return None if duration is None else seconds(duration)


def _condition(value) -> str | None:
    """A condition as CEL text: a bare YAML boolean becomes "true"/"false"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def normalise(definition: dict) -> dict:
    """The definition with its defaults filled (see docs/workflows.md, "The normalised definition").
    Expects a valid definition; does not change its argument."""
    source = copy.deepcopy(definition)
    result = {"version": source["version"], "name": source["name"]}
    if "description" in source:
        result["description"] = source["description"]
    result["inputs"] = {name: _input(spec) for name, spec in (source.get("inputs") or {}).items()}
    result["steps"] = [_step(spec) for spec in source["steps"]]
    result["outputs"] = source.get("outputs") or {}
    budget = source.get("budget")
    result["budget"] = None if budget is None else {"tokens": budget.get("tokens"), "usd": budget.get("usd")}
    result["on_failure"] = source.get("on_failure", "stop")
    return result


def _input(spec: dict) -> dict:
    result = {}
    if "default" in spec:
        inferred = next((name for kind, name in _INPUT_TYPES if isinstance(spec["default"], kind)), "string")
    else:
        inferred = "string"
    result["type"] = spec.get("type", inferred)
    if "description" in spec:
        result["description"] = spec["description"]
    result["required"] = spec.get("required", "default" not in spec)
    if "default" in spec:
        result["default"] = spec["default"]
    return result


def _step(spec: dict) -> dict:
    kind = spec["kind"]
    result = {"id": spec["id"], "kind": kind}
    for optional in ("name", "description"):
        if optional in spec:
            result[optional] = spec[optional]
    result["needs"] = list(spec.get("needs", []))
    result["if"] = _condition(spec.get("if"))
    retries = spec.get("retries") or {}
    result["retries"] = {
        "max": int(retries.get("max", 0)),
        "backoff": seconds(retries.get("backoff", 1)),
        "factor": float(retries.get("factor", 2)),
        "max_delay": seconds(retries.get("max_delay", 60)),
    }
    timeout = spec.get("timeout")
    result["timeout"] = seconds(timeout) if timeout is not None else DEFAULT_TIMEOUT if kind in _TIMED_KINDS else None
    result.update(_KIND_FIELDS[kind](spec))
    return result


def _agent(spec: dict) -> dict:
    result = {"agent": spec["agent"]}
    if "messages" in spec:
        result["messages"] = spec["messages"]
    else:
        result["input"] = spec["input"]
    result["options"] = spec.get("options") or {}
    return result


def _switch(spec: dict) -> dict:
    cases = [{"when": _condition(case["when"]), "steps": list(case["steps"])} for case in spec["cases"]]
    default = list(spec.get("default", []))
    return {"cases": cases, "default": default, "routes": _unique([*(i for c in cases for i in c["steps"]), *default])}


def _parallel(spec: dict) -> dict:
    branches = [_step(branch) for branch in spec["branches"]]
    join = spec.get("join", "all")
    at_least = len(branches) if join == "all" else 1 if join == "any" else int(join["at_least"])
    return {"branches": branches, "join": join, "at_least": at_least}


def _map(spec: dict) -> dict:
    return {
        "items": spec["items"],
        "step": _step(spec["step"]),
        "max_concurrency": spec.get("max_concurrency", 4),
        "on_error": spec.get("on_error", "stop"),
    }


def _transform(spec: dict) -> dict:
    return {"output": spec["output"]}


def _memory(spec: dict) -> dict:
    result = {"action": spec["action"], "namespace": spec["namespace"]}
    if spec["action"] == "search":
        result.update(query=spec["query"], k=spec.get("k", 5), filters=spec.get("filters") or {})
    else:
        result.update(
            content=spec["content"],
            metadata=spec.get("metadata") or {},
            expires_in=_optional_seconds(spec.get("expires_in")),
        )
    return result


def _approval(spec: dict) -> dict:
    approvers = spec["approvers"]
    given = spec.get("branches") or {}
    branches = {decision: list(given.get(decision, [])) for decision in ("approved", "rejected", "expired")}
    return {
        "approvers": {"users": list(approvers.get("users") or []), "role": approvers.get("role")},
        "required": spec.get("required", 1),
        "expires_in": seconds(spec.get("expires_in", "1d")),
        "context": spec.get("context"),
        "branches": branches,
        "routes": _unique([target for targets in branches.values() for target in targets]),
    }


def _wait(spec: dict) -> dict:
    if "for" in spec:
        return {"for": seconds(spec["for"])}
    if "until" in spec:
        return {"until": spec["until"]}
    return {"event": spec["event"]}


def _workflow(spec: dict) -> dict:
    return {"workflow": spec["workflow"], "inputs": spec.get("inputs") or {}}


_KIND_FIELDS = {
    "agent": _agent,
    "switch": _switch,
    "parallel": _parallel,
    "map": _map,
    "transform": _transform,
    "memory": _memory,
    "approval": _approval,
    "wait": _wait,
    "workflow": _workflow,
}


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def graph_order(definition: dict) -> list[str]:
    """The top-level step ids in an order where every step comes after the steps it needs; among steps that
    are ready together, the one written first comes first. Raises ValueError on a cycle."""
    steps = definition["steps"]
    position = {step["id"]: index for index, step in enumerate(steps)}
    waiting = {step["id"]: {need for need in step.get("needs", []) if need in position} for step in steps}
    dependents: dict[str, list[str]] = {name: [] for name in position}
    for name, needs in waiting.items():
        for need in needs:
            dependents[need].append(name)
    ready = [index for index, step in enumerate(steps) if not waiting[step["id"]]]
    heapq.heapify(ready)
    order = []
    while ready:
        name = steps[heapq.heappop(ready)]["id"]
        order.append(name)
        for dependent in dependents[name]:
            waiting[dependent].discard(name)
            if not waiting[dependent]:
                heapq.heappush(ready, position[dependent])
    if len(order) != len(steps):
        stuck = [step["id"] for step in steps if step["id"] not in order]
        raise ValueError(f"the needs of these steps form a cycle: {', '.join(stuck)}")
    return order
