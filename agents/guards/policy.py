"""Policies and their application: which detectors run, what each does (block, redact, flag), and the outcome.

    policy = Policy.from_dict({"actions": {"secret": "block", "card": "redact", "injection": "flag"},
                               "blocked_terms": ["Project Nightingale"]})
    outcome = apply(policy, text)  # Outcome(text=redacted text, verdicts=[Verdict(...)], blocked=bool)

A policy names detectors or whole families (`secret`, `national_id`); a detector's own entry beats its
family's. `patterns` are regular expressions (case-insensitive) whose matches are blocked as the detector
`blocklist`: the platform's CONTENT_BLOCKLIST, added to every policy by the pipeline. Overlapping findings are resolved by the stronger action first (so a blocked term inside an
e-mail address still blocks), then the longest, then the most specific detector. Redaction replaces each
finding by its family's placeholder, `[EMAIL]`, `[SECRET]`, `[NATIONAL_ID]`...; a blocked finding is replaced
too, so the outcome's text is safe to log or store whatever the caller does next. Verdicts carry the
detector, the action and a count, never the matched text.
"""

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

from agents.guards.findings import Finding, resolve
from agents.guards.registry import DETECTORS, expand, find_all, to_original
from agents.guards.terms import BLOCKED_TERM, BlockedTerms, blocked_terms
from agents.guards.text import Text

ACTIONS = ("block", "redact", "flag")
PATTERN = "blocklist"  # the detector name of a match of one of a policy's `patterns` (always blocked)
_SEVERITY = {"block": 3, "redact": 2, "flag": 1}


def placeholder(detector: str) -> str:
    """`[EMAIL]` for "email", `[SECRET]` for "secret.github_token", `[BLOCKED_TERM]` for "blocked_term"."""
    return f"[{detector.partition('.')[0].upper()}]"


class Verdict(NamedTuple):
    detector: str
    action: str
    count: int


class Outcome(NamedTuple):
    text: str  # the text with every blocked or redacted finding replaced by its placeholder
    verdicts: list[Verdict]  # (detector, action, count) in detector order
    blocked: bool  # a finding whose action is "block" was found: the caller refuses the text
    findings: list[Finding] = []  # offsets in the original text (no matched text)


@dataclass(frozen=True)
class Policy:
    """Detector (or family) -> action, and the operator's blocked terms (acted on as `actions["blocked_term"]`,
    "block" unless set)."""

    actions: dict[str, str] = field(default_factory=dict)
    blocked_terms: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()

    def __post_init__(self):
        for name, action in self.actions.items():
            if action not in ACTIONS:
                raise ValueError(f"Unknown action {action!r} for {name!r}; use one of {', '.join(ACTIONS)}.")
            if name != BLOCKED_TERM:
                expand([name])  # raises ValueError naming the unknown detector
        object.__setattr__(self, "blocked_terms", tuple(self.blocked_terms))
        object.__setattr__(self, "patterns", tuple(self.patterns))

    @classmethod
    def from_dict(cls, data: dict) -> "Policy":
        """A policy from its stored form, `{"actions": {...}, "blocked_terms": [...]}`; ValueError when wrong."""
        if not isinstance(data, dict) or not set(data) <= {"actions", "blocked_terms"}:
            raise ValueError('A policy is an object with "actions" and "blocked_terms".')
        actions, terms = data.get("actions") or {}, data.get("blocked_terms") or []
        if not isinstance(actions, dict) or not isinstance(terms, list | tuple):
            raise ValueError('"actions" is an object of detector -> action and "blocked_terms" a list of strings.')
        if not all(isinstance(term, str) for term in terms):
            raise ValueError('"blocked_terms" is a list of strings.')
        return cls(actions=dict(actions), blocked_terms=tuple(terms))

    def to_dict(self) -> dict:
        return {"actions": dict(self.actions), "blocked_terms": list(self.blocked_terms)}

    def action(self, detector: str) -> str | None:
        if detector == PATTERN:
            return "block" if self.patterns else None
        if detector in self.actions:
            return self.actions[detector]
        if detector == BLOCKED_TERM:
            return "block" if self.blocked_terms else None
        return self.actions.get(detector.partition(".")[0])

    @cached_property
    def detectors(self) -> tuple[str, ...]:
        """The built-in detectors this policy runs (those with an action)."""
        return tuple(name for name in DETECTORS if self.action(name))

    @cached_property
    def terms(self) -> BlockedTerms | None:
        if not self.blocked_terms or not self.action(BLOCKED_TERM):
            return None
        return blocked_terms(self.blocked_terms)

    @cached_property
    def compiled_patterns(self) -> tuple[re.Pattern, ...]:
        return tuple(re.compile(pattern, re.IGNORECASE) for pattern in self.patterns)

    @cached_property
    def reach(self) -> int:
        """The longest match with white space inside that this policy's detectors and terms can make (a
        pattern is taken to match at most its own length, plus a little)."""
        return max(
            [DETECTORS[name].reach for name in self.detectors]
            + [self.terms.reach if self.terms else 0]
            + [len(pattern) + 16 for pattern in self.patterns]
        )

    @property
    def empty(self) -> bool:
        """Nothing to look for: applying it changes nothing (the pipeline skips it)."""
        return not self.detectors and self.terms is None and not self.patterns

    def rank(self, finding: Finding):
        """Stronger action first, then the longest, then the most specific detector."""
        known = DETECTORS.get(finding.detector)
        return (
            _SEVERITY[self.action(finding.detector)],
            finding.end - finding.start,
            known.rank if known else 0,
        )


def findings(policy: Policy, text: Text) -> list[Finding]:
    """The policy's findings in `text` (a prepared `Text`), resolved, in `text.base` offsets. A finding that lost
    to an overlapping one but is to be hidden too widens the winner to cover both: no piece of it stays."""
    found = find_all(text, policy.detectors, policy.terms)
    for pattern in policy.compiled_patterns:
        found.extend(Finding(PATTERN, m.start(), m.end()) for m in pattern.finditer(text.base) if m.end() > m.start())
    kept = resolve(found, policy.rank)
    if len(kept) == len(found):
        return kept
    hidden = sorted((f for f in found if policy.action(f.detector) != "flag"), key=lambda f: f.start)
    widened, i = [], 0
    for finding in kept:
        start, end = finding.start, finding.end
        if policy.action(finding.detector) != "flag":
            while i < len(hidden) and hidden[i].start < end:
                if hidden[i].end > start:
                    start, end = min(start, hidden[i].start), max(end, hidden[i].end)
                i += 1
        if widened and start < widened[-1].end:  # two winners now overlap: one finding covers both
            previous = widened.pop()
            start, finding = min(start, previous.start), previous
        widened.append(Finding(finding.detector, start, max(end, finding.end)))
    return widened


def redact(text: str, findings_: list[Finding], policy: Policy) -> str:
    """`text` with each blocked or redacted finding (in text order, not overlapping) replaced by its placeholder."""
    pieces, position = [], 0
    for finding in findings_:
        if policy.action(finding.detector) == "flag":
            continue
        pieces.append(text[position : finding.start])
        pieces.append(placeholder(finding.detector))
        position = finding.end
    pieces.append(text[position:])
    return "".join(pieces)


def verdicts(policy: Policy, findings_: list[Finding]) -> list[Verdict]:
    counts = Counter(finding.detector for finding in findings_)
    return [Verdict(name, policy.action(name), count) for name, count in sorted(counts.items())]


def apply(policy: Policy, text: str) -> Outcome:
    """Run the policy over `text`: what may go on (redacted), what was found, and whether it must be refused."""
    prepared = Text(text)
    found = to_original(prepared, findings(policy, prepared))
    return Outcome(
        text=redact(text, found, policy) if found else text,
        verdicts=verdicts(policy, found),
        blocked=any(policy.action(f.detector) == "block" for f in found),
        findings=found,
    )
