"""The detectors against the labelled corpus (tests/guards/corpus/, written by corpus/build.py)."""

from collections import Counter
from pathlib import Path

import pytest

from agents.guards import DETECTORS
from agents.guards.evaluation import load, score

CORPUS = load(Path(__file__).parent / "corpus")
# The validated formats: the goal is 0.95 precision and recall at least.
STRICT = ["card", "iban", "secret"]


def test_the_corpus_has_hundreds_of_examples_in_several_languages_and_formats():
    languages = Counter(example["language"] for example in CORPUS)
    formats = Counter(example["format"] for example in CORPUS)

    assert len(CORPUS) >= 300
    assert {"en", "fr", "de", "es"} <= set(languages)
    assert {"prose", "json", "csv", "log", "code", "markdown", "email"} <= set(formats)


def test_every_detector_has_positives_and_every_family_hard_negatives():
    labelled = {finding["detector"] for example in CORPUS for finding in example["findings"]}
    negatives = {name.partition(".")[0] for example in CORPUS for name in example.get("hard_negative_for", [])}

    assert set(DETECTORS) | {"blocked_term"} <= labelled
    assert {d.partition(".")[0] for d in DETECTORS} | {"blocked_term"} <= negatives


def test_every_label_is_the_substring_it_says():
    for example in CORPUS:
        for finding in example["findings"]:
            assert example["text"][finding["start"] : finding["end"]] == finding["match"], example["id"]


@pytest.mark.parametrize("family", STRICT)
def test_validated_formats_reach_the_goal_of_precision_and_recall(family):
    scores, mistakes = score(CORPUS, by_family=True)

    assert scores[family].precision >= 0.95, [m for m in mistakes if m[2] == family]
    assert scores[family].recall >= 0.95, [m for m in mistakes if m[2] == family]


def test_every_detector_is_scored_and_the_figures_are_reported(capsys):
    scores, _ = score(CORPUS)

    with capsys.disabled():
        print()
        for name, result in sorted(scores.items()):
            print(f"  {name:<36} precision {result.precision:.3f}  recall {result.recall:.3f}")
    assert set(DETECTORS) <= set(scores)
