"""The detectors by name, and `scan`: every selected detector over one normalised text.

A detector is a function from a `Text` to the `(start, end)` spans it finds in `text.base`, registered with
`@detector(...)`. Names are stable (policies and recorded verdicts refer to them): a family, and for families
with several kinds a dot and the kind (`national_id.fr_nir`). A policy or a scan may name a whole family.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from agents.guards.findings import Finding, resolve
from agents.guards.text import Text, triggers


@dataclass(frozen=True)
class Detector:
    name: str
    find: Callable[[Text], Iterable[tuple[int, int]]]
    rank: int  # how specific a match is: breaks ties between overlapping findings of the same length
    reach: int  # the longest match with white space inside: the stream guard's window is at least this

    @property
    def group(self) -> str:
        return self.name.partition(".")[0]


DETECTORS: dict[str, Detector] = {}


def detector(name: str, *, rank: int, reach: int = 0, trigger_words: Iterable[str] = ()):
    """Register the decorated function as the detector `name`; `trigger_words` (matched on the folded text by
    one Aho-Corasick pass) are where `text.hits(name)` says it should look."""

    def register(find):
        DETECTORS[name] = Detector(name=name, find=find, rank=rank, reach=reach)
        if trigger_words:
            triggers.add(name, trigger_words)
        return find

    return register


def groups() -> set[str]:
    return {d.group for d in DETECTORS.values()}


def expand(names: Iterable[str]) -> list[str]:
    """Detector names for names of detectors or families; an unknown name is a ValueError that says which."""
    selected = []
    for name in names:
        if name in DETECTORS:
            selected.append(name)
        elif name in groups():
            selected.extend(d.name for d in DETECTORS.values() if d.group == name)
        else:
            raise ValueError(f"Unknown detector {name!r}; known: {', '.join(sorted(groups() | set(DETECTORS)))}.")
    return list(dict.fromkeys(selected))


def longest_rank(finding: Finding):
    """Longest wins; at equal length the more specific detector (validated formats over looser ones)."""
    return (finding.end - finding.start, DETECTORS[finding.detector].rank if finding.detector in DETECTORS else 0)


def find_all(text: Text, names: Iterable[str], blocked_terms=None) -> list[Finding]:
    """Every finding of the named detectors (and of `blocked_terms`, a `BlockedTerms`), overlaps included,
    in the offsets of `text.base`."""
    found = [Finding(name, start, end) for name in names for start, end in DETECTORS[name].find(text)]
    if blocked_terms is not None:
        found.extend(Finding("blocked_term", start, end) for start, end in blocked_terms.find(text))
    return found


def to_original(text: Text, findings: list[Finding]) -> list[Finding]:
    if text.base is text.original:
        return findings
    return [Finding(f.detector, *text.original_span(f.start, f.end)) for f in findings]


def scan(text: str, detectors: Iterable[str] | None = None, blocked_terms=None) -> list[Finding]:
    """The findings in `text` of `detectors` (names or families; all built-in detectors when None) and of
    `blocked_terms` (an `agents.guards.BlockedTerms`), overlaps resolved (the longest wins, then the most
    specific), in text order, with offsets in `text` as given."""
    names = list(DETECTORS) if detectors is None else expand(detectors)
    prepared = Text(text)
    return to_original(prepared, resolve(find_all(prepared, names, blocked_terms), longest_rank))
