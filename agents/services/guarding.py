"""Content policies in the invocation pipeline: which policy applies, and the policy applied to a request's
messages, to an answer (whole or streamed) and to what traces may show.

    spec = await policy_for(agent_type_id)           # the type's ContentPolicy, else the platform default
    messages, found = guard_messages(spec, messages)  # every text part, tool result and tool-call argument
    completion, found = guard_completion(spec, completion)
    found.raise_if_blocked("input")                   # ContentBlocked: 422, the detector and where, never the text
    stream = AnswerGuard(spec)                        # the same over a streamed answer (agents.guards.StreamGuard)

The policies are read once per process (core.local_cache, dropped everywhere when an operator changes one:
agents.invalidation) so a cache hit reads no row. `CONTENT_BLOCKLIST` (settings) is added to every policy as
block patterns (the detector `blocklist`). The built-in detectors run first; external guard services
(agents.services.external_guards) then see the already-redacted texts. What is found is counted as
`Seen(detector, action, where, count)`, recorded with the run (agents.recording), never with the text.
"""

import json
import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from django.conf import settings
from django.db.models import Prefetch

from agents.guards import PATTERN, Blocked, Policy, StreamGuard, apply
from agents.models import ContentPolicy, PolicyGuard
from agents.providers import Completion
from core import local_cache
from core.exceptions import Refused, Unavailable

logger = logging.getLogger("switchboard.guards")

INPUT, OUTPUT, TOOL_ARGUMENTS, TOOL_RESULT, STREAM = "input", "output", "tool_arguments", "tool_result", "stream"
# What traces never show in clear, whatever the policy says (OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT).
TRACE_REDACTED = ("email", "phone", "card", "iban", "ip", "national_id", "secret")


class ContentBlocked(Refused):
    """A guard blocked the text: 422 naming the detector and where (`guard` in the body), never the text.
    A CONTENT_BLOCKLIST match keeps the code it always had, `refused`."""

    code = "content_blocked"

    def __init__(self, *, detector: str, where: str, place: str, direction: str):
        what = "input" if direction == INPUT else "answer"
        super().__init__(f"The {what} was blocked by the content policy: {detector} in {place}.")
        self.detector, self.where, self.place = detector, where, place
        if detector == PATTERN:
            self.code = "refused"
        self.extra_body = {"guard": {"detector": detector, "where": where, "place": place}}


class GuardUnavailable(Unavailable):
    """An external guard of a fail-closed policy did not answer in time, or answered nonsense: 503."""

    code = "guard_unavailable"


class Seen(NamedTuple):
    """One verdict as the run records it: never the matched text."""

    detector: str
    action: str  # block, redact, flag, or error (an external guard that failed open)
    where: str  # input, output, tool_arguments, tool_result, stream
    count: int


@dataclass(frozen=True)
class External:
    """An external guard service as a policy applies it."""

    name: str
    url: str
    secret_encrypted: str
    timeout_ms: int
    directions: str
    fail_open: bool

    def checks(self, direction: str) -> bool:
        return self.directions in (direction, "both")


@dataclass
class GuardSpec:
    """One content policy as the pipeline reads it."""

    policy: Policy  # the operator's detectors and blocked terms
    guards: tuple[External, ...] = ()
    _with_patterns: dict = field(default_factory=dict, repr=False)

    def effective(self) -> Policy:
        """The policy with the CONTENT_BLOCKLIST patterns as they are now (kept per list)."""
        patterns = tuple(settings.CONTENT_BLOCKLIST)
        if not patterns:
            return self.policy
        kept = self._with_patterns.get(patterns)
        if kept is None:
            policy = self.policy
            kept = Policy(actions=policy.actions, blocked_terms=policy.blocked_terms, patterns=patterns)
            self._with_patterns = {patterns: kept}  # the list changes in tests only: keep the last one
        return kept

    def patterns_only(self) -> Policy | None:
        patterns = tuple(settings.CONTENT_BLOCKLIST)
        return Policy(patterns=patterns) if patterns else None

    def external(self, direction: str) -> list[External]:
        return [guard for guard in self.guards if guard.checks(direction)]

    @property
    def idle(self) -> bool:
        """Nothing to do (no detector, term, pattern or external guard): the pipeline skips its guard steps."""
        return self.effective().empty and not self.guards


EMPTY = GuardSpec(Policy())


# --- which policy ----------------------------------------------------------------------------------------


def _spec_of(row: ContentPolicy) -> GuardSpec:
    actions = dict(row.actions or {})
    terms = tuple(row.terms())
    if terms:
        actions["blocked_term"] = row.blocked_terms_action
    try:
        policy = Policy(actions=actions, blocked_terms=terms)
    except ValueError as error:  # saved around the admin's validation: keep what is valid, say what is not
        logger.error("content policy %s: %s; its invalid entries are ignored", row.pk, error)
        valid = {}
        for name, action in actions.items():
            try:
                Policy(actions={name: action})
            except ValueError:
                continue
            valid[name] = action
        policy = Policy(actions=valid, blocked_terms=terms)
    guards = tuple(
        External(
            name=link.service.name,
            url=link.service.url,
            secret_encrypted=link.service.secret_encrypted,
            timeout_ms=link.service.timeout_ms,
            directions=link.service.directions,
            fail_open=link.fail_mode == PolicyGuard.FailMode.OPEN,
        )
        for link in row.policy_guards.all()
        if link.service.is_active
    )
    return GuardSpec(policy, guards)


def _load() -> dict:
    links = Prefetch("policy_guards", queryset=PolicyGuard.objects.select_related("service").order_by("id"))
    return {row.agent_type_id: _spec_of(row) for row in ContentPolicy.objects.prefetch_related(links)}


def _pick(table: dict, agent_type_id) -> GuardSpec:
    return table.get(agent_type_id) or table.get(None) or EMPTY


async def policy_for(agent_type_id: int) -> GuardSpec:
    """The agent type's policy, else the platform default, else nothing: read once per process."""
    return _pick(await local_cache.aget("guardpolicies", "all", load=_load), agent_type_id)


def policy_for_sync(agent_type_id: int) -> GuardSpec:
    return _pick(local_cache.get("guardpolicies", "all", load=_load), agent_type_id)


# --- what a pass found -----------------------------------------------------------------------------------


class Found:
    """What the guards found over one request or answer: verdicts by (detector, action, where) and the
    first block (detector, where, place)."""

    def __init__(self):
        self.counts: Counter = Counter()
        self.blocked: tuple[str, str, str] | None = None

    def add(self, detector: str, action: str, where: str, count: int = 1) -> None:
        self.counts[(detector, action, where)] += count

    def block(self, detector: str, where: str, place: str) -> None:
        if self.blocked is None:
            self.blocked = (detector, where, place)

    def extend(self, other: "Found") -> None:
        self.counts.update(other.counts)
        if other.blocked is not None:
            self.block(*other.blocked)

    def seen(self) -> list[Seen]:
        return [Seen(d, a, w, n) for (d, a, w), n in sorted(self.counts.items())]

    def raise_if_blocked(self, direction: str) -> None:
        if self.blocked is not None:
            detector, where, place = self.blocked
            raise ContentBlocked(detector=detector, where=where, place=place, direction=direction)

    def text(self, policy: Policy, text: str, where: str, place: str) -> str:
        """`text` with the policy applied: what may go on (redacted; blocked findings replaced too)."""
        if not text or policy.empty:
            return text
        outcome = apply(policy, text)
        for verdict in outcome.verdicts:
            self.add(verdict.detector, verdict.action, where, verdict.count)
        if outcome.blocked:
            self.block(next(v.detector for v in outcome.verdicts if v.action == "block"), where, place)
        return outcome.text

    def arguments(self, spec: GuardSpec, arguments: str, place: str) -> str:
        """Tool-call arguments (JSON text): the policy applied inside each string value of the parsed JSON,
        so the arguments stay valid JSON; the blocklist patterns over the raw text (they may span a key and
        its value). Text that is not JSON is guarded as text."""
        try:
            parsed = json.loads(arguments)
        except ValueError:
            return self.text(spec.effective(), arguments, TOOL_ARGUMENTS, place)
        patterns = spec.patterns_only()
        if patterns is not None:
            self.text(patterns, arguments, TOOL_ARGUMENTS, place)
        if spec.policy.empty:
            return arguments
        changed = [False]
        guarded = self._values(spec.policy, parsed, place, changed)
        return json.dumps(guarded, ensure_ascii=False) if changed[0] else arguments

    def _values(self, policy: Policy, value, place: str, changed: list):
        if isinstance(value, str):
            guarded = self.text(policy, value, TOOL_ARGUMENTS, place)
            changed[0] = changed[0] or guarded != value
            return guarded
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**6:  # a card as a number
            guarded = self.text(policy, str(value), TOOL_ARGUMENTS, place)
            if guarded != str(value):
                changed[0] = True
                return guarded
            return value
        if isinstance(value, list):
            return [self._values(policy, item, place, changed) for item in value]
        if isinstance(value, dict):
            return {key: self._values(policy, item, place, changed) for key, item in value.items()}
        return value


# --- messages and answers ---------------------------------------------------------------------------------


def message_texts(messages: list[dict]) -> list[tuple[str, str, str, tuple]]:
    """Every guarded text of a clean conversation: (where, place, kind, address), kind "text" or "arguments"."""
    slots = []
    for i, message in enumerate(messages):
        where = TOOL_RESULT if message["role"] == "tool" else INPUT
        content = message.get("content")
        if isinstance(content, str):
            slots.append((where, f"messages[{i}].content", "text", (i, None)))
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if part["type"] == "text":
                    slots.append((where, f"messages[{i}].content[{j}].text", "text", (i, j)))
        for k, _ in enumerate(message.get("tool_calls", ())):
            slots.append((TOOL_ARGUMENTS, f"messages[{i}].tool_calls[{k}].function.arguments", "arguments", (i, k)))
    return slots


def read_slot(messages: list[dict], kind: str, address: tuple) -> str:
    i, j = address
    if kind == "arguments":
        return messages[i]["tool_calls"][j]["function"]["arguments"]
    return messages[i]["content"] if j is None else messages[i]["content"][j]["text"]


def write_slot(messages: list[dict], kind: str, address: tuple, text: str) -> None:
    """Replace one text in `messages` (a list of its own), copying the containers on the way."""
    i, j = address
    message = messages[i] = dict(messages[i])
    if kind == "arguments":
        calls = message["tool_calls"] = list(message["tool_calls"])
        call = calls[j] = dict(calls[j])
        call["function"] = {**call["function"], "arguments": text}
    elif j is None:
        message["content"] = text
    else:
        parts = message["content"] = list(message["content"])
        parts[j] = {**parts[j], "text": text}


def guard_messages(spec: GuardSpec, messages: list[dict]) -> tuple[list[dict], Found]:
    """The built-in detectors over every text of the conversation; the redacted conversation (a new list
    where anything changed) and what was found. A block is in `found.blocked`: the caller raises it after
    keeping the redacted conversation (what the refused run records)."""
    found = Found()
    policy = spec.effective()
    if policy.empty:
        return messages, found
    guarded = list(messages)
    for where, place, kind, address in message_texts(messages):
        text = read_slot(messages, kind, address)
        new = found.arguments(spec, text, place) if kind == "arguments" else found.text(policy, text, where, place)
        if new != text:
            write_slot(guarded, kind, address, new)
    return guarded, found


def guard_completion(spec: GuardSpec, completion: Completion) -> tuple[Completion, Found]:
    """The built-in detectors over an answer: its text and its tool calls' arguments."""
    found = Found()
    policy = spec.effective()
    if policy.empty:
        return completion, found
    text = found.text(policy, completion.text, OUTPUT, "the answer")
    calls = []
    for index, call in enumerate(completion.tool_calls):
        arguments = call["function"]["arguments"]
        new = found.arguments(spec, arguments, f"tool_calls[{index}].function.arguments")
        calls.append(call if new == arguments else {**call, "function": {**call["function"], "arguments": new}})
    if text == completion.text and calls == completion.tool_calls:
        return completion, found
    return replace(completion, text=text, tool_calls=calls), found


def completion_texts(completion: Completion) -> list[tuple[str, str, str]]:
    """(where, place, text) of an answer, for the external guards."""
    texts = [(OUTPUT, "the answer", completion.text)] if completion.text else []
    texts += [
        (TOOL_ARGUMENTS, f"tool_calls[{i}].function.arguments", call["function"]["arguments"])
        for i, call in enumerate(completion.tool_calls)
    ]
    return texts


def with_completion_texts(completion: Completion, texts: list[str]) -> Completion:
    """The answer with the texts `completion_texts` gave, replaced in the same order."""
    texts = list(texts)
    text = texts.pop(0) if completion.text else completion.text
    calls = [{**call, "function": {**call["function"], "arguments": texts.pop(0)}} for call in completion.tool_calls]
    return replace(completion, text=text, tool_calls=calls)


# --- streams ---------------------------------------------------------------------------------------------


class AnswerGuard:
    """The policy over a streamed answer: the text through one StreamGuard, each tool call's arguments
    through one of their own (the raw JSON: placeholders hold no quote and no finding spans one, so the
    arguments stay valid JSON). What they release is what may be sent; `Blocked` carries what may still be
    sent before the error event. With an output external guard the whole answer is held (`holds_all`):
    the external guard sees it whole before any of it is sent."""

    def __init__(self, spec: GuardSpec):
        self.policy = spec.effective()
        self.active = not self.policy.empty
        self.holds_all = bool(spec.external(OUTPUT))
        self.text = StreamGuard(self.policy) if self.active else None
        self.arguments: dict[int, StreamGuard] = {}

    def feed_text(self, piece: str) -> str:
        return self.text.feed(piece) if self.active else piece

    def feed_arguments(self, index: int, piece: str) -> str:
        if not self.active:
            return piece
        guard = self.arguments.get(index)
        if guard is None:
            guard = self.arguments[index] = StreamGuard(self.policy)
        return guard.feed(piece)

    def close_text(self) -> str:
        return self.text.close() if self.active else ""

    def close_arguments(self) -> dict[int, str]:
        return {index: guard.close() for index, guard in sorted(self.arguments.items())}

    def found(self) -> Found:
        """What was released (and what blocked), as verdicts: the text's `stream`, the arguments'."""
        found = Found()
        if not self.active:
            return found
        for verdict in self.text.verdicts:
            found.add(verdict.detector, verdict.action, STREAM, verdict.count)
        for guard in self.arguments.values():
            for verdict in guard.verdicts:
                found.add(verdict.detector, verdict.action, TOOL_ARGUMENTS, verdict.count)
        return found

    @staticmethod
    def blocked_by(blocked: Blocked) -> str:
        return next((v.detector for v in blocked.verdicts if v.action == "block"), PATTERN)


# --- traces ----------------------------------------------------------------------------------------------


def trace_policy(spec: GuardSpec) -> Policy:
    """What message content in a trace goes through: the policy's redactions, and every personal-data and
    secret detector redacted even where the policy only flags them (or does not look). Kept per policy."""
    policy = spec.effective()
    kept = spec._with_patterns.get("trace")
    if kept is None or kept[0] is not policy:
        kept = spec._with_patterns["trace"] = (policy, _trace_policy(policy))
    return kept[1]


def _trace_policy(policy: Policy) -> Policy:
    actions = {name: "redact" for name in TRACE_REDACTED}
    for name, action in policy.actions.items():
        if action in ("block", "redact") or name.partition(".")[0] in TRACE_REDACTED:
            actions[name] = "redact"
    if policy.blocked_terms:
        actions["blocked_term"] = "redact"
    return Policy(actions=actions, blocked_terms=policy.blocked_terms)


def for_trace(policy: Policy, text: str) -> str:
    return apply(policy, text).text if text else text
