"""Precision and recall of the detectors on a labelled corpus (tests/guards/corpus/*.jsonl): what the tests
assert and bench/guards.py prints.

A prediction counts when its detector and its exact span match a label; per family (`secret`, `national_id`)
the detector's kind is ignored, so a JWT in a `Bearer` header found as `secret.bearer_token` is right for the
family and wrong for the kind.
"""

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from agents.guards.registry import scan
from agents.guards.terms import blocked_terms


@dataclass
class Score:
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        labelled = self.true_positives + self.false_negatives
        return self.true_positives / labelled if labelled else 1.0


def load(directory: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(directory.glob("*.jsonl")) for line in path.open(encoding="utf-8")]


def predict(example: dict) -> set[tuple[str, int, int]]:
    terms = blocked_terms(example["blocked_terms"]) if example.get("blocked_terms") else None
    return {(f.detector, f.start, f.end) for f in scan(example["text"], blocked_terms=terms)}


def expected(example: dict) -> set[tuple[str, int, int]]:
    return {(f["detector"], f["start"], f["end"]) for f in example["findings"]}


def score(examples: list[dict], *, by_family: bool = False) -> tuple[dict[str, Score], list[tuple]]:
    """Scores by detector (or family), and the mistakes: (example id, "missed" or "extra", detector, span)."""
    scores: dict[str, Score] = defaultdict(Score)
    mistakes = []

    def key(detector: str) -> str:
        return detector.partition(".")[0] if by_family else detector

    for example in examples:
        truth = {(key(d), s, e) for d, s, e in expected(example)}
        found = {(key(d), s, e) for d, s, e in predict(example)}
        for item in truth & found:
            scores[item[0]].true_positives += 1
        for item in found - truth:
            scores[item[0]].false_positives += 1
            mistakes.append((example["id"], "extra", item[0], example["text"][item[1] : item[2]]))
        for item in truth - found:
            scores[item[0]].false_negatives += 1
            mistakes.append((example["id"], "missed", item[0], example["text"][item[1] : item[2]]))
    return dict(scores), mistakes
