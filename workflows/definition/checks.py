"""The rules a JSON Schema cannot say: ids unique across the whole definition, references to steps that
exist, routes whose targets need their router, no cycles, no step that can never run, expressions that
compile, and names the owner can use (through a Resolver). Every check reads the data defensively, since
it runs beside the schema on documents the schema may have refused, so that all problems come out at once."""

from collections import deque
from dataclasses import dataclass
from typing import Protocol

from workflows.definition.problems import Parts, Positions, Problem, path_of
from workflows.expressions import ExpressionError, check_expression, check_template

NAMES = ("inputs", "steps", "run")
NAMES_IN_MAP = ("inputs", "steps", "item", "run")
# What validating costs grows with these, so a hostile upload is refused before it costs seconds: the
# schema takes about a millisecond a step, compiling CEL up to 40 microseconds a character (of the text from
# a template's first ${ on).
MAX_STEPS = 500
MAX_EXPRESSION_CHARS = 32 * 1024


class Resolver(Protocol):
    """What the owner of a definition may use; implemented over the database by the workflows services."""

    def agent(self, name: str) -> bool: ...

    def workflow(self, name: str) -> bool: ...

    def namespace(self, name: str) -> bool: ...


@dataclass
class _Step:
    parts: Parts
    spec: dict
    top: bool
    in_map: bool  # a map's step (or inside one): its expressions may read `item`
    parent: "_Step | None"

    @property
    def id(self) -> str | None:
        value = self.spec.get("id")
        return value if isinstance(value, str) else None

    @property
    def kind(self):
        return self.spec.get("kind")


def check(data: dict, positions: Positions, resolver: Resolver | None) -> list[Problem]:
    steps = _collect(data)
    top = {}
    for step in steps:
        if step.top and step.id is not None:
            top.setdefault(step.id, step)
    problems = _ids(steps, positions)
    problems += _needs(steps, top, positions)
    problems += _routes(steps, top, positions)
    cycles, cycle_problems = _cycles(top, positions)
    problems += cycle_problems
    problems += _unreachable(steps, top, cycles, positions)
    problems += _limits(steps, positions)
    problems += _expressions(data, steps, positions)
    if resolver is not None:
        problems += _resolved(steps, positions, resolver)
    return problems


def step_count(data: dict) -> int:
    """How many steps a document has, nested ones included."""
    return len(_collect(data))


def _collect(data: dict) -> list[_Step]:
    """Every step that is a mapping, top-level first in document order, each followed by its nested ones."""
    found: list[_Step] = []

    def visit(spec, parts: Parts, top: bool, in_map: bool, parent):
        if not isinstance(spec, dict):
            return
        step = _Step(parts, spec, top, in_map, parent)
        found.append(step)
        branches = spec.get("branches")
        if spec.get("kind") == "parallel" and isinstance(branches, list):
            for index, branch in enumerate(branches):
                visit(branch, (*parts, "branches", index), False, in_map, step)
        if spec.get("kind") == "map":
            visit(spec.get("step"), (*parts, "step"), False, True, step)

    steps = data.get("steps")
    for index, spec in enumerate(steps if isinstance(steps, list) else []):
        visit(spec, ("steps", index), True, False, None)
    return found


def _strings(value) -> list[tuple[int, str]]:
    return (
        [(index, item) for index, item in enumerate(value) if isinstance(item, str)] if isinstance(value, list) else []
    )


def _needs_of(step: _Step) -> list[tuple[int, str]]:
    return _strings(step.spec.get("needs"))


def _routes_of(step: _Step) -> list[tuple[Parts, str, object]]:
    """(where, target, label) for each route of a switch (label: case index or "default") or an approval
    (label: the decision)."""
    spec, routes = step.spec, []
    if step.kind == "switch":
        cases = spec.get("cases")
        for case_index, case in enumerate(cases if isinstance(cases, list) else []):
            if isinstance(case, dict):
                for index, target in _strings(case.get("steps")):
                    routes.append((("cases", case_index, "steps", index), target, case_index))
        for index, target in _strings(spec.get("default")):
            routes.append((("default", index), target, "default"))
    elif step.kind == "approval" and isinstance(spec.get("branches"), dict):
        for decision in ("approved", "rejected", "expired"):
            for index, target in _strings(spec["branches"].get(decision)):
                routes.append((("branches", decision, index), target, decision))
    return routes


def _ids(steps: list[_Step], positions: Positions) -> list[Problem]:
    problems, first = [], {}
    for step in steps:
        if step.id is None:
            continue
        if step.id in first:
            message = f"the id '{step.id}' is already used by the step at {path_of(first[step.id].parts)}"
            problems.append(positions.problem((*step.parts, "id"), "duplicate_id", message))
        else:
            first[step.id] = step
    return problems


def _unknown(target: str, nested: dict, what: str) -> str:
    if target in nested:
        return f"'{target}' is a nested step (at {path_of(nested[target].parts)}); {what} name top-level steps only"
    return f"there is no step '{target}'"


def _nested(steps: list[_Step]) -> dict:
    return {step.id: step for step in reversed(steps) if not step.top and step.id is not None}


def _needs(steps: list[_Step], top: dict, positions: Positions) -> list[Problem]:
    problems, nested = [], _nested(steps)
    for step in steps:
        if not step.top:
            if "needs" in step.spec:
                owner = step.parent.id or "its parent"
                message = f"a nested step cannot have needs: put them on '{owner}', the step it belongs to"
                problems.append(positions.problem((*step.parts, "needs"), "nested_needs", message, key=True))
            continue
        for index, need in _needs_of(step):
            if need not in top:
                message = _unknown(need, nested, "needs")
                problems.append(positions.problem((*step.parts, "needs", index), "unknown_step", message))
    return problems


def _routes(steps: list[_Step], top: dict, positions: Positions) -> list[Problem]:
    problems, nested = [], _nested(steps)
    for step in steps:
        for where, target, _label in _routes_of(step):
            parts = (*step.parts, *where)
            if target not in top:
                problems.append(positions.problem(parts, "unknown_step", _unknown(target, nested, "routes")))
            elif step.id is not None and step.id not in {need for _, need in _needs_of(top[target])}:
                message = f"'{target}' is routed by '{step.id}' but does not need it: add '{step.id}' to the needs of '{target}'"
                problems.append(positions.problem(parts, "route_without_need", message))
    return problems


def _cycles(top: dict, positions: Positions) -> tuple[set[str], list[Problem]]:
    """The top-level steps caught in a cycle of needs, and one problem per cycle naming its members."""
    edges = {name: [need for _, need in _needs_of(step) if need in top] for name, step in top.items()}
    order = {name: index for index, name in enumerate(top)}
    members, problems = set(), []
    for component in _strongly_connected(edges):
        if len(component) == 1 and component[0] not in edges[component[0]]:
            continue
        members |= set(component)
        start = min(component, key=order.__getitem__)
        path = _shortest_cycle(start, edges, set(component))
        shown = path if len(path) <= 12 else [*path[:10], f"... ({len(path) - 11} more)", path[-1]]
        loop = " → ".join([*shown, start])
        message = f"'{start}' needs itself" if len(path) == 1 else f"these steps need each other in a cycle: {loop}"
        others = sorted(set(component) - set(path), key=order.__getitem__)
        if others:
            message += f" (also caught in it: {', '.join(others)})"
        step = top[start]
        after = path[1] if len(path) > 1 else start
        index = next(index for index, need in _needs_of(step) if need == after)
        problems.append(positions.problem((*step.parts, "needs", index), "cycle", message))
    return members, problems


def _strongly_connected(edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm without recursion (a long chain of needs must not hit Python's recursion limit)."""
    index_of, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for root in edges:
        if root in index_of:
            continue
        work = [(root, iter(edges[root]))]
        index_of[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index_of:
                    index_of[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index_of[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index_of[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                found.append(component)
    return found


def _shortest_cycle(start: str, edges: dict[str, list[str]], within: set[str]) -> list[str]:
    previous, queue = {start: None}, deque([start])
    while queue:
        node = queue.popleft()
        for child in edges[node]:
            if child == start:
                path = [node]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                return list(reversed(path))
            if child in within and child not in previous:
                previous[child] = node
                queue.append(child)
    return [start]


def _always(value, literal: bool) -> bool:
    """A condition written as the literal true or false (bare or as CEL text)."""
    if isinstance(value, bool):
        return value is literal
    return isinstance(value, str) and value.strip() == ("true" if literal else "false")


def _dead_labels(step: _Step) -> dict:
    """The routes of a switch that can never be taken, by label, with why."""
    cases = step.spec.get("cases")
    if step.kind != "switch" or not isinstance(cases, list):
        return {}
    dead, first_true = {}, None
    for index, case in enumerate(cases):
        when = case.get("when") if isinstance(case, dict) else None
        if first_true is not None:
            dead[index] = f"case {index} comes after case {first_true}, whose when is always true"
        elif _always(when, False):
            dead[index] = f"the when of case {index} is always false"
        elif _always(when, True):
            first_true = index
    if first_true is not None:
        dead["default"] = f"the default comes after case {first_true}, whose when is always true"
    return dead


def _unreachable(steps: list[_Step], top: dict, cycles: set[str], positions: Positions) -> list[Problem]:
    """Steps that can never run, by the engine's rules: a step waits for all its needs; it is skipped when
    its `if` is false, when a switch or approval it needs routes elsewhere, or when every step it needs was
    skipped. So a step can never run when a need can never finish (a cycle, an unknown step), when its `if`
    is the literal false, when it is routed only by switch cases that can never be taken, or when every
    step it needs can never run. One pass in needs-first order: a long chain stays linear."""
    problems = []
    needs = {name: _needs_of(step) for name, step in top.items()}
    order = _needs_first(top, needs)
    dead_labels = {name: _dead_labels(step) for name, step in top.items()}

    # What is left out of the needs-first order never finishes: a cycle, a step naming an unknown step (it
    # has its unknown_step problem), and everything that needs one of those (reported here).
    finishing = set(order)
    names_unknown = {name for name in top if any(need not in top for _, need in needs[name])}
    blocked = [name for name in top if name not in finishing and name not in cycles and name not in names_unknown]
    for name in blocked:
        index, need = next((index, need) for index, need in needs[name] if need not in finishing)
        if need in cycles:
            why = "is caught in a cycle"
        elif need in names_unknown:
            why = "needs a step that does not exist"
        else:
            why = "can never run either"
        message = f"'{name}' can never run: it needs '{need}', which {why}"
        problems.append(positions.problem((*top[name].parts, "needs", index), "unreachable", message))

    for step in top.values():
        for label, why in dead_labels[step.id].items():
            if label == "default" and not step.spec.get("default"):
                continue
            where = ("default",) if label == "default" else ("cases", label)
            problems.append(positions.problem((*step.parts, *where), "unreachable", f"never taken: {why}"))

    dead: set[str] = set()
    for name in order:
        step = top[name]
        why, where, key = None, None, False
        if _always(step.spec.get("if"), False):
            why, where = "its if is always false", (*step.parts, "if")
        else:
            for _, router in needs[name]:
                labels = [label for _, target, label in _routes_of(top[router]) if target == name]
                if labels and all(label in dead_labels[router] for label in labels):
                    why, where = f"'{router}' routes it only through cases that are never taken", (*step.parts, "id")
                    break
        known = [need for _, need in needs[name]]
        if why is None and known and all(need in dead for need in known):
            why, where, key = f"every step it needs ({', '.join(known)}) can never run", (*step.parts, "needs"), True
        if why is not None:
            dead.add(name)
            problems.append(positions.problem(where, "unreachable", f"'{name}' can never run: {why}", key=key))

    for step in steps:
        if not step.top and _always(step.spec.get("if"), False):
            message = f"'{step.id or 'this step'}' can never run: its if is always false"
            problems.append(positions.problem((*step.parts, "if"), "unreachable", message))
    return problems


def _needs_first(top: dict, needs: dict) -> list[str]:
    """The top-level steps whose needs all exist and lead to no cycle, each after what it needs (Kahn)."""
    waiting = {name: {need for _, need in needs[name]} for name in top}
    dependents: dict[str, list[str]] = {name: [] for name in top}
    for name, wanted in waiting.items():
        for need in wanted:
            if need in dependents:
                dependents[need].append(name)
    ready = deque(name for name, wanted in waiting.items() if not wanted)
    order = []
    while ready:
        name = ready.popleft()
        order.append(name)
        for dependent in dependents[name]:
            waiting[dependent].discard(name)
            if not waiting[dependent]:
                ready.append(dependent)
    return order


def _limits(steps: list[_Step], positions: Positions) -> list[Problem]:
    """Numbers that depend on other fields: a join larger than the branches, approvals nobody can give."""
    problems = []
    for step in steps:
        spec = step.spec
        join, branches = spec.get("join"), spec.get("branches")
        if step.kind == "parallel" and isinstance(join, dict) and isinstance(branches, list):
            wanted = join.get("at_least")
            if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted > len(branches):
                message = f"the join waits for {wanted} branches to succeed, but there are only {len(branches)}"
                problems.append(positions.problem((*step.parts, "join", "at_least"), "join", message))
        approvers, required = spec.get("approvers"), spec.get("required")
        if step.kind == "approval" and isinstance(approvers, dict) and "role" not in approvers:
            users = approvers.get("users")
            if isinstance(users, list) and isinstance(required, int) and not isinstance(required, bool):
                if required > len(users):
                    message = f"{required} approvals are required, but only {len(users)} {'user' if len(users) == 1 else 'users'} may approve"
                    problems.append(positions.problem((*step.parts, "required"), "approvers", message))
    return problems


def _expressions(data: dict, steps: list[_Step], positions: Positions) -> list[Problem]:
    problems, spent = [], [0]

    def checked(check, value, parts: Parts, names):
        if isinstance(value, str) and (check is check_expression or "${" in value):
            cost = len(value) if check is check_expression else len(value) - value.index("${")
            spent[0] += cost
            if spent[0] > MAX_EXPRESSION_CHARS:
                if spent[0] - cost <= MAX_EXPRESSION_CHARS:
                    message = f"the expressions and templates hold more than {MAX_EXPRESSION_CHARS // 1024} KB of text; those after this one are not checked"
                    problems.append(positions.problem(parts, "too_large", message))
                return
            try:
                check(value, names=names)
            except ExpressionError as error:
                problems.append(positions.problem(parts, "expression", str(error)))

    def values(value, parts: Parts, names):
        if isinstance(value, str):
            checked(check_template, value, parts, names)
        elif isinstance(value, dict):
            for key, item in value.items():
                values(item, (*parts, key), names)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                values(item, (*parts, index), names)

    for step in steps:
        spec, parts = step.spec, step.parts
        names = NAMES_IN_MAP if step.in_map else NAMES
        checked(check_expression, spec.get("if"), (*parts, "if"), names)
        if step.kind == "switch" and isinstance(spec.get("cases"), list):
            for index, case in enumerate(spec["cases"]):
                if isinstance(case, dict):
                    checked(check_expression, case.get("when"), (*parts, "cases", index, "when"), names)
        elif step.kind == "map":
            checked(check_expression, spec.get("items"), (*parts, "items"), names)
        elif step.kind == "agent":
            checked(check_template, spec.get("input"), (*parts, "input"), names)
            messages = spec.get("messages")
            for index, message in enumerate(messages if isinstance(messages, list) else []):
                if isinstance(message, dict):
                    checked(check_template, message.get("content"), (*parts, "messages", index, "content"), names)
        elif step.kind == "transform":
            values(spec.get("output"), (*parts, "output"), names)
        elif step.kind == "memory":
            checked(check_template, spec.get("query"), (*parts, "query"), names)
            checked(check_template, spec.get("content"), (*parts, "content"), names)
            values(spec.get("filters"), (*parts, "filters"), names)
            values(spec.get("metadata"), (*parts, "metadata"), names)
        elif step.kind == "approval":
            checked(check_template, spec.get("context"), (*parts, "context"), names)
        elif step.kind == "wait":
            checked(check_template, spec.get("until"), (*parts, "until"), names)
        elif step.kind == "workflow":
            values(spec.get("inputs"), (*parts, "inputs"), names)
    values(data.get("outputs"), ("outputs",), NAMES)
    return problems


def _resolved(steps: list[_Step], positions: Positions, resolver: Resolver) -> list[Problem]:
    """Agents, workflows and memory namespaces the owner cannot use; each distinct name is asked once."""
    problems, answers = [], {}
    asks = {
        "agent": ("agent", "unknown_agent", "you have no agent named '{}' (of your own or shared with you for use)"),
        "workflow": (
            "workflow",
            "unknown_workflow",
            "you have no workflow named '{}' (of your own or shared with you for use)",
        ),
        "memory": ("namespace", "unknown_namespace", "you have no memory namespace named '{}'"),
    }
    for step in steps:
        if step.kind not in asks:
            continue
        method, code, message = asks[step.kind]
        field = "namespace" if step.kind == "memory" else step.kind
        name = step.spec.get(field)
        if not isinstance(name, str) or not name:
            continue
        if (method, name) not in answers:
            answers[method, name] = bool(getattr(resolver, method)(name))
        if not answers[method, name]:
            problems.append(positions.problem((*step.parts, field), code, message.format(name)))
    return problems
