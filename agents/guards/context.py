"""Small checks the detectors share: what stands just before or after a match, and how random a value looks."""

import math
from bisect import bisect_left

from agents.guards.text import Text, triggers


def context_words(key: str, words) -> str:
    """Register `words` as the context words `key` (found by the shared trigger pass); returns the key."""
    triggers.add(key, words)
    return key


def near(text: Text, key: str, start: int, before: int = 40) -> bool:
    """Whether a context word of `key` starts at a word start within `before` characters before `start`."""
    hits = text.hits(key)
    if not hits:
        return False
    folded = text.folded
    i = bisect_left(hits, max(0, start - before))
    while i < len(hits) and hits[i] < start:
        position = hits[i]
        if position == 0 or not folded[position - 1].isalnum():
            return True
        i += 1
    return False


def glued_before(text: str, start: int) -> bool:
    """Whether the character before `start` is a letter or digit (the match would begin inside a word)."""
    return start > 0 and text[start - 1].isalnum()


def glued_after(text: str, end: int) -> bool:
    return end < len(text) and text[end].isalnum()


def at_word_start(folded: str, position: int) -> bool:
    return position == 0 or not folded[position - 1].isalnum()


def entropy(value: str) -> float:
    """Shannon entropy in bits per character: about 4-6 for random keys, 2-3.5 for words and names."""
    length = len(value)
    return -sum(n / length * math.log2(n / length) for n in map(value.count, set(value)))


def character_classes(value: str) -> int:
    """How many of lowercase, uppercase, digits and other characters `value` uses."""
    return (
        any(c.islower() for c in value)
        + any(c.isupper() for c in value)
        + any(c.isdigit() for c in value)
        + any(not c.isalnum() for c in value)
    )
