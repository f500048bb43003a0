"""The text the detectors read: normalised once per scan, with offsets that map back to the original.

Two views of one text, of the same length so that an offset means the same character in both:
- `base`: full-width forms (`４１１１`, `＠`), other scripts' decimal digits, non-ASCII spaces and dashes turned
  into their ASCII twins, and invisible format characters (zero-width spaces and joiners, soft hyphens,
  bidirectional controls, byte-order marks) removed, so `4111<ZWSP>1111...` is still a card number;
- `folded`: `base` lowercased with accents stripped (`Précédentes` -> `precedentes`), for the word lists
  (prompt injection, blocked terms, trigger words) that must ignore case and accents.
ASCII text, the common case, skips all of it. Findings are computed on `base` and mapped back by `original_span`,
so a removed zero-width character inside a finding is covered by it (and redacted with it).
"""

import re
import unicodedata
from bisect import bisect_right
from functools import cache

import ahocorasick

# Same-length replacements: full-width ASCII (U+FF01-FF5E), spaces and dashes of other kinds.
_SPACES = "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63"
_SAME_LENGTH = re.compile(rf"[\uff01-\uff5e{_SPACES}{_DASHES}]|[^\D0-9]")  # [^\D0-9]: digits of other scripts
# Removed: invisible characters that would split a number or a word without showing.
_INVISIBLE_CHARS = "\u00ad\u034f\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff"
_INVISIBLE = re.compile(f"[{_INVISIBLE_CHARS}]+")
# One quick look for any of them first: most non-ASCII text (accented letters) has none. Two character sets,
# as one alternation costs three times as much.
_SPECIAL = re.compile(f"[\uff01-\uff5e{_SPACES}{_DASHES}{_INVISIBLE_CHARS}]")
_OTHER_DIGITS = re.compile(r"[^\D0-9]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
# Four digits or more, a few separators or one capital letter apart (a codice fiscale's 85T10A562, a Corsican
# NIR's 2A): where the number detectors look.
_NUMBER = re.compile(r"[0-9](?:[ ().\-/]{0,3}[0-9]|[A-Z](?=[0-9])){3,}")
_NOT_DIGITS = str.maketrans("", "", " ().-/ABCDEFGHIJKLMNOPQRSTUVWXYZ")
NUMBER_BEFORE, NUMBER_AFTER = 16, 16  # how far around a number its detectors may match (letters, +, check letters)


@cache
def _ascii_twin(char: str) -> str:
    if "\uff01" <= char <= "\uff5e":
        return chr(ord(char) - 0xFEE0)
    if char in _SPACES:
        return " "
    if char in _DASHES:
        return "-"
    return str(unicodedata.digit(char, 0))


@cache
def _fold_char(char: str) -> str:
    """The lowercase letter without its accents, when that is one character (else the character lowercased,
    or as it is when lowercasing would change the length: offsets must not move)."""
    stripped = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)).lower()
    if len(stripped) == 1:
        return stripped
    lowered = char.lower()
    return lowered if len(lowered) == 1 else char


def _fold(match: re.Match) -> str:
    return _fold_char(match.group())


class Text:
    """One text as the detectors see it. `folded` and the trigger-word hits are computed when first asked."""

    __slots__ = ("original", "base", "_kept", "_folded", "_hits", "_numbers")

    def __init__(self, original: str):
        self.original = original
        self._kept = None  # (normalised starts, original starts) of the runs kept, when characters were removed
        self._folded = None
        self._hits = None
        self._numbers = None
        if original.isascii():
            self.base = original
            return
        text = original
        if _SPECIAL.search(text) or _OTHER_DIGITS.search(text):
            text = _SAME_LENGTH.sub(lambda m: _ascii_twin(m.group()), text)
            if _INVISIBLE.search(text):
                text = self._remove_invisible(text)
        self.base = text

    def _remove_invisible(self, text: str) -> str:
        pieces, normalised_starts, original_starts = [], [], []
        position, length = 0, 0
        for match in _INVISIBLE.finditer(text):
            if match.start() > position:
                normalised_starts.append(length)
                original_starts.append(position)
                pieces.append(text[position : match.start()])
                length += match.start() - position
            position = match.end()
        normalised_starts.append(length)
        original_starts.append(position)
        pieces.append(text[position:])
        self._kept = (normalised_starts, original_starts)
        return "".join(pieces)

    @property
    def folded(self) -> str:
        if self._folded is None:
            base = self.base
            if base.isascii():
                self._folded = base.lower()
            else:
                lowered = base.lower()
                if len(lowered) != len(base):  # a character whose lowercase is longer (İ): one by one
                    lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in base)
                self._folded = _NON_ASCII.sub(_fold, lowered)
        return self._folded

    def hits(self, detector: str) -> list[int]:
        """Where the trigger words of `detector` start in `folded` (one Aho-Corasick pass for all detectors)."""
        if self._hits is None:
            self._hits = {}
            automaton = triggers.automaton()
            if automaton is not None:
                for end, (length, names) in automaton.iter(self.folded):
                    start = end - length + 1
                    for name in names:
                        self._hits.setdefault(name, []).append(start)
                for positions in self._hits.values():
                    positions.sort()
        return self._hits.get(detector, [])

    def numbers(self) -> list[tuple[int, int, int]]:
        """The numbers of the text, as (start, end, digits): number detectors look around them only, where
        they are long enough for them. One pass over the text serves all of them."""
        if self._numbers is None:
            self._numbers = [
                (match.start(), match.end(), len(match.group().translate(_NOT_DIGITS)))
                for match in _NUMBER.finditer(self.base)
            ]
        return self._numbers

    def number_matches(self, pattern: re.Pattern, min_digits: int = 4, min_dots: int = 0):
        """The matches of `pattern` that start around (NUMBER_BEFORE characters before it, or in it) a number of
        at least `min_digits` digits (and `min_dots` dots), each match once."""
        base = self.base
        scanned = 0
        for start, end, digits in self.numbers():
            if digits < min_digits or (min_dots and base.count(".", start, end) < min_dots):
                continue
            for match in pattern.finditer(base, max(start - NUMBER_BEFORE, scanned), end + NUMBER_AFTER):
                if match.start() > end:
                    break
                yield match
            scanned = end + 1

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The span in the original text of the span `start:end` of `base`."""
        if self._kept is None:
            return start, end
        normalised_starts, original_starts = self._kept
        run = bisect_right(normalised_starts, start) - 1
        original_start = original_starts[run] + start - normalised_starts[run]
        run = bisect_right(normalised_starts, end - 1) - 1
        original_end = original_starts[run] + end - 1 - normalised_starts[run] + 1
        return original_start, original_end


def fold(text: str) -> str:
    """A word as `Text.folded` would read it (for word lists written by hand or given by operators)."""
    return Text(unicodedata.normalize("NFC", text)).folded


class _Triggers:
    """The trigger words of every detector, in one automaton built when first used."""

    def __init__(self):
        self._words: dict[str, set[str]] = {}
        self._automaton = None

    def add(self, detector: str, words) -> None:
        for word in words:
            self._words.setdefault(fold(word), set()).add(detector)
        self._automaton = None

    def automaton(self):
        if self._automaton is None and self._words:
            automaton = ahocorasick.Automaton()
            for word, names in self._words.items():
                automaton.add_word(word, (len(word), tuple(sorted(names))))
            automaton.make_automaton()
            self._automaton = automaton
        return self._automaton


triggers = _Triggers()
