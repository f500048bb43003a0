"""Content guards: detectors of personal data, secrets, prompt injection and blocked terms, the policies that
block, redact or flag what they find, and the stream guard. Offline and in-process; see docs/guardrails.md.

    from agents.guards import Policy, StreamGuard, apply, scan

    scan(text)                      # [Finding("email", 10, 27), ...]: every detector, overlaps resolved
    apply(policy, text)             # Outcome(text=redacted, verdicts=[Verdict("email", "redact", 1)], blocked=False)
    StreamGuard(policy).feed(chunk) # the same over a stream, holding back a window

Findings and verdicts never carry the matched text.
"""

from agents.guards import credentials, injection, national, personal  # noqa: F401  (they register the detectors)
from agents.guards.findings import Finding
from agents.guards.policy import ACTIONS, PATTERN, Outcome, Policy, Verdict, apply, placeholder
from agents.guards.registry import DETECTORS, expand, groups, scan
from agents.guards.stream import Blocked, StreamGuard
from agents.guards.terms import BLOCKED_TERM, BlockedTerms, blocked_terms

__all__ = [
    "ACTIONS",
    "BLOCKED_TERM",
    "DETECTORS",
    "Blocked",
    "BlockedTerms",
    "Finding",
    "Outcome",
    "PATTERN",
    "Policy",
    "StreamGuard",
    "Verdict",
    "apply",
    "blocked_terms",
    "expand",
    "groups",
    "placeholder",
    "scan",
]
