"""National identifiers: US SSN, UK NINO, French NIR, German Steuer-ID, Spanish DNI/NIE, Italian codice fiscale,
Dutch BSN, Indian Aadhaar. Each is validated by python-stdnum (check digits and the issuing rules) except the
NINO, whose rules (prefixes never issued) are written here.

A number written in the identifier's usual grouping is taken as it is; a bare run of digits (nine digits are
also an order number) only when a word naming the identifier stands before it.
"""

import re

from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.in_ import aadhaar
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.us import ssn

from agents.guards.context import context_words, glued_after, glued_before, near
from agents.guards.registry import detector
from agents.guards.text import Text

RANK = 60


def _spans(pattern: re.Pattern, text: Text, valid, digits: int, *, bare: re.Pattern | None = None, context=None):
    """Spans of `pattern` (and of `bare` when a `context` word stands before) around numbers of at least
    `digits` digits, that `valid` accepts, not glued to a letter or digit on either side."""
    base = text.base
    for candidates, needs_context in ((pattern, False), (bare, True)):
        if candidates is None or (needs_context and not text.hits(context)):
            continue
        matches = text.number_matches(candidates, digits) if digits else candidates.finditer(base)
        for match in matches:
            start, end = match.span()
            if glued_before(base, start) or glued_after(base, end):
                continue
            if (start > 0 and base[start - 1] in "-./") or (end < len(base) and base[end] in "-/"):
                continue  # part of a date, a path or a longer reference
            if needs_context and not near(text, context, start, 40):
                continue
            if valid(match.group()):
                yield start, end


_SSN = re.compile(r"[0-9]{3}([- ])[0-9]{2}\1[0-9]{4}")


def _ssn_valid(value: str) -> bool:
    return ssn.is_valid(value.replace(" ", "-"))


_NINE_DIGITS = re.compile(r"[0-9]{9}")
_SSN_CONTEXT = context_words("context.us_ssn", ["ssn", "social security", "ss#", "ss #"])


@detector("national_id.us_ssn", rank=RANK, reach=11)
def find_us_ssn(text: Text):
    yield from _spans(_SSN, text, _ssn_valid, 9, bare=_NINE_DIGITS, context=_SSN_CONTEXT)


# National Insurance numbers: two letters (not D, F, I, Q, U, V; the second not O), six digits, A-D.
_NINO = re.compile(r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]", re.IGNORECASE)
_NINO_NEVER_ISSUED = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}


@detector("national_id.uk_nino", rank=RANK, reach=13)
def find_uk_nino(text: Text):
    yield from _spans(_NINO, text, lambda value: value[:2].upper() not in _NINO_NEVER_ISSUED, 6)


# NIR (numéro de sécurité sociale): sex, year, month, department (2A/2B for Corsica), commune, order, key.
_NIR = re.compile(r"[12378] ?[0-9]{2} ?[0-9]{2} ?(?:[0-9]{2}|2[AB]) ?[0-9]{3} ?[0-9]{3} ?[0-9]{2}")


@detector("national_id.fr_nir", rank=RANK, reach=21)
def find_fr_nir(text: Text):
    yield from _spans(_NIR, text, nir.is_valid, 6)


# Steuerliche Identifikationsnummer: eleven digits, often written 2-3-3-3.
_IDNR = re.compile(r"[1-9][0-9] ?[0-9]{3} ?[0-9]{3} ?[0-9]{3}")
_IDNR_GROUPED = re.compile(r"[1-9][0-9] [0-9]{3} [0-9]{3} [0-9]{3}")
_ELEVEN_DIGITS = re.compile(r"[1-9][0-9]{10}")
_IDNR_CONTEXT = context_words(
    "context.de_idnr",
    ["steuer-id", "steuerid", "steuer id", "steuernummer", "identifikationsnummer", "idnr", "tax id", "tin"],
)


@detector("national_id.de_steuer_id", rank=RANK, reach=14)
def find_de_steuer_id(text: Text):
    yield from _spans(_IDNR_GROUPED, text, idnr.is_valid, 11, bare=_ELEVEN_DIGITS, context=_IDNR_CONTEXT)


# DNI: eight digits and a check letter; NIE: X, Y or Z, seven digits and a check letter.
_DNI = re.compile(r"[0-9]{2}\.?[0-9]{3}\.?[0-9]{3}[- ]?[A-Z]")  # also 12.345.678-Z
_NIE = re.compile(r"[XYZ][- ]?[0-9]{7}[- ]?[A-Z]")


@detector("national_id.es_dni", rank=RANK, reach=11)
def find_es_dni(text: Text):
    yield from _spans(_DNI, text, lambda value: dni.is_valid(value.replace(".", "")), 8)
    yield from _spans(_NIE, text, nie.is_valid, 7)


# Written in capitals; the letters L-V stand for digits in the rare codes changed to avoid a clash.
_CODICE_FISCALE = re.compile(r"[A-Z]{6}[0-9LMNP-V]{2}[ABCDEHLMPRST][0-9LMNP-V]{2}[A-Z][0-9LMNP-V]{3}[A-Z]")


@detector("national_id.it_codice_fiscale", rank=RANK)
def find_it_codice_fiscale(text: Text):
    yield from _spans(_CODICE_FISCALE, text, codicefiscale.is_valid, 7)


# BSN: nine digits passing the "elfproef"; so many nine-digit numbers pass that a bare one needs its name.
_BSN_GROUPED = re.compile(r"[0-9]{4}\.[0-9]{2}\.[0-9]{3}")
_BSN_CONTEXT = context_words(
    "context.nl_bsn", ["bsn", "burgerservicenummer", "sofinummer", "sofi-nummer", "citizen service number"]
)


@detector("national_id.nl_bsn", rank=RANK, reach=11)
def find_nl_bsn(text: Text):
    if not text.hits(_BSN_CONTEXT):
        return
    for pattern in (_BSN_GROUPED, _NINE_DIGITS):
        for start, end in _spans(pattern, text, bsn.is_valid, 9):
            if near(text, _BSN_CONTEXT, start, 40):
                yield start, end


# Aadhaar: twelve digits (not starting with 0 or 1) with a Verhoeff check digit, written 4-4-4.
_AADHAAR = re.compile(r"[2-9][0-9]{3}([ -])[0-9]{4}\1[0-9]{4}")
_TWELVE_DIGITS = re.compile(r"[2-9][0-9]{11}")
_AADHAAR_CONTEXT = context_words("context.in_aadhaar", ["aadhaar", "aadhar", "uidai", "uid", "आधार"])


@detector("national_id.in_aadhaar", rank=RANK, reach=14)
def find_in_aadhaar(text: Text):
    yield from _spans(_AADHAAR, text, aadhaar.is_valid, 12, bare=_TWELVE_DIGITS, context=_AADHAAR_CONTEXT)
