"""Personal data: e-mail addresses, phone numbers, payment card numbers, IBANs, IP addresses.

Each detector finds candidates with a regular expression that starts with a literal or a small character
class (so the engine skips ahead in C) and has bounded repetitions (so it is linear on any input), then
validates them: libphonenumber's metadata for phones, Luhn and issuer prefixes for cards, python-stdnum's
mod 97 and country formats for IBANs, the `ipaddress` module for IPs.
"""

import ipaddress
import re

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn

from agents.guards.context import context_words, glued_after, glued_before, near
from agents.guards.registry import detector
from agents.guards.text import Text

# --- e-mail addresses ------------------------------------------------------------------------------------

_DOMAIN = re.compile(
    r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,10}([A-Za-z]{2,24}))(?![A-Za-z0-9-]|\.[A-Za-z0-9])"
)
_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-'")
# Names like icon@2x.png or logo@3x.webp are files, not addresses.
_FILE_EXTENSIONS = frozenset(
    "png jpg jpeg gif svg webp ico bmp tif tiff css scss js mjs ts tsx jsx json yaml yml toml txt pdf html htm "
    "xml zip gz tgz whl exe dll so dylib mp3 mp4 wav mov avi csv log ini cfg sh bat map lock py rb go".split()
)


@detector("email", rank=40)
def find_emails(text: Text):
    base = text.base
    for match in _DOMAIN.finditer(base):
        at = match.start()
        start = at
        while start > 0 and at - start < 64 and base[start - 1] in _LOCAL_CHARS:
            start -= 1
        while start < at and base[start] in ".'":
            start += 1
        if start == at or (start > 0 and base[start - 1] in _LOCAL_CHARS):  # none, or longer than 64
            continue
        if match.group(2).lower() in _FILE_EXTENSIONS or base[at - 1] == ".":
            continue
        if _in_url(base, start):  # https://user:password@host: a password, not an address
            continue
        yield start, match.end()


def _in_url(base: str, start: int) -> bool:
    """Whether the match starts in the user part of a URL (before its host, so no `/` after `://`)."""
    before = base[max(0, start - 200) : start]
    word = before[max(before.rfind(c) for c in " \n\t\"'<(") + 1 :]
    scheme = word.rfind("://")
    return scheme >= 0 and "/" not in word[scheme + 3 :]


# --- payment cards -----------------------------------------------------------------------------------------

_CARD = re.compile(r"[0-9](?:[ -]?[0-9]){12,22}")
_CARD_GROUPS = re.compile(r"[ -]")


def _card_issuer_ok(digits: str) -> bool:
    """The number's length fits an issuer whose prefix it carries (ISO/IEC 7812 ranges of the major networks)."""
    length, two, four = len(digits), int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return length in (13, 16, 19)  # Visa
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return length == 16  # Mastercard
    if two in (34, 37):
        return length == 15  # American Express
    if digits.startswith("6011") or two == 65 or 644 <= int(digits[:3]) <= 649 or two == 62:
        return 16 <= length <= 19  # Discover, UnionPay
    if 3528 <= four <= 3589:
        return 16 <= length <= 19  # JCB
    if 300 <= int(digits[:3]) <= 305 or two in (36, 38, 39):
        return 14 <= length <= 19  # Diners Club
    if 2200 <= four <= 2204:
        return length == 16  # Mir
    if two in (50, 56, 57, 58, 67) or four == 6304:
        return 13 <= length <= 19  # Maestro
    return False


@detector("card", rank=80, reach=40)
def find_cards(text: Text):
    base = text.base
    for match in text.number_matches(_CARD, 13):
        start, end = match.span()
        if glued_before(base, start) or glued_after(base, end) or _after_decimal_point(base, start):
            continue
        found = _card_in(match.group(), start)
        if found:
            yield found


def _after_decimal_point(base: str, start: int) -> bool:
    """The match would continue a number: the digits after a decimal point, or after a thousands comma
    (1,234,567; but a CSV field after a number, `10442,4111 1111...`, is a field of its own)."""
    if start < 2 or not base[start - 2].isdigit():
        return False
    if base[start - 1] == ".":
        return True
    return base[start - 1] == "," and _THOUSANDS.match(base, start) is not None


_THOUSANDS = re.compile(r"[0-9]{3}(?![0-9])")


def _card_in(candidate: str, offset: int):
    """The longest run of groups of `candidate` that is a card number (a card printed beside a date, an amount
    or a reference still counts), as a span; None when there is none."""
    groups = _CARD_GROUPS.split(candidate)
    starts = [0] + [m.end() for m in _CARD_GROUPS.finditer(candidate)]
    best = None
    for first in range(len(groups)):
        stop = first
        while stop < len(groups) and len(groups[stop]) >= 3:  # cards are printed in groups of 3 digits or more
            stop += 1
        for last in range(stop - 1, first - 1, -1):
            digits = "".join(groups[first : last + 1])
            if len(digits) < 13 or (best and len(digits) <= best[0]):
                break
            if len(digits) <= 19 and _card_issuer_ok(digits) and luhn.is_valid(digits):
                best = (len(digits), starts[first], starts[last] + len(groups[last]))
                break
    return (offset + best[1], offset + best[2]) if best else None


# --- IBANs -------------------------------------------------------------------------------------------------

_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}(?:[ ]?[A-Z0-9]){11,32}")
# In lower case only after the word IBAN: a pattern starting with any letter costs four times as much in prose.
_IBAN_ANY_CASE = re.compile(r"[A-Za-z]{2}[0-9]{2}(?:[ ]?[A-Za-z0-9]){11,32}")
_IBAN_CONTEXT = context_words("context.iban", ["iban"])
# SWIFT's IBAN registry: the length of each country's IBAN.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25,
    "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18,
    "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


@detector("iban", rank=70, reach=48)
def find_ibans(text: Text):
    base = text.base
    pattern = _IBAN_ANY_CASE if text.hits(_IBAN_CONTEXT) else _IBAN
    for match in text.number_matches(pattern, 4):
        start = match.start()
        if glued_before(base, start):
            continue
        length = IBAN_LENGTHS.get(base[start : start + 2].upper())
        if length is None:
            continue
        end, count = start, 0
        while count < length and end < match.end():
            count += base[end] != " "
            end += 1
        if count < length or glued_after(base, end):
            continue
        if stdnum_iban.is_valid(base[start:end].upper()):
            yield start, end


# --- phone numbers -------------------------------------------------------------------------------------------

# Numbers without a country code are tried as national numbers of these regions, where their digits could be
# one (a cheap check first: libphonenumber's parse costs about 50 us).
_NATIONAL_FORMATS = {
    "US": re.compile(r"1?[2-9][0-9]{9}"),
    "GB": re.compile(r"0[0-9]{9,10}"),
    "FR": re.compile(r"0[1-9][0-9]{8}"),
    "DE": re.compile(r"0[1-9][0-9]{5,12}"),
    "ES": re.compile(r"[6-9][0-9]{8}"),
    "IT": re.compile(r"[03][0-9]{5,10}"),
    "NL": re.compile(r"0[1-9][0-9]{8}"),
    "IN": re.compile(r"[6-9][0-9]{9}|0[1-9][0-9]{9}"),
}
REGIONS = tuple(_NATIONAL_FORMATS)
_PHONE = re.compile(r"[+(0-9][0-9 ().\-/]{5,24}[0-9]")
# One separator at a time between digits, a country code's + first, an area code in parentheses.
_PHONE_SHAPE = re.compile(r"\+? ?(?:\([0-9]{1,4}\) ?)?[0-9](?:[0-9]|[ .\-/](?=[0-9(])|\([0-9]{1,4}\)[ .-]?)*")
_ISO_DATE = re.compile(r"[0-9]{4}[-./][0-9]{1,2}[-./][0-9]{1,2}")
# Dates, dotted numbers (versions, addresses) and the US SSN's shape are not phone numbers.
_DATE_OR_ADDRESS = re.compile(
    r"[0-9]{1,2}[-./][0-9]{1,2}[-./][0-9]{2,4}|[0-9]{1,3}(?:\.[0-9]{1,3}){2,}|[0-9]{3}-[0-9]{2}-[0-9]{4}"
)
_FRENCH_DOTTED = re.compile(r"0[1-9](?:\.[0-9]{2}){4}")  # 06.12.34.56.78, the French way
_US_GROUPS = ([3, 3, 4], [1, 3, 3, 4], [10], [11])  # (201) 555-0123, 1 201 555 0123, 2015550123
_PHONE_CONTEXT = context_words(
    "context.phone",
    "phone tel call mobile cell fax whatsapp sms contact hotline telephone téléphone tél portable appelez "
    "joindre telefon rufnummer ruf handy mobil anrufen erreichbar teléfono móvil llame llamar celular telefono "
    "cellulare chiamare telefoonnummer bel mobiel ring dial".split(),
)
_NOT_PHONE_CONTEXT = context_words(
    "context.not_phone",
    "order invoice ref reference ticket tracking account acct serial sku item case id no. nr. # "
    "commande facture référence dossier colis bestell rechnung auftrag kundennummer sendung pedido factura "
    "referencia cuenta ordine fattura bestelling factuur transaction txn batch lot build version isbn".split(),
)


@detector("phone", rank=30, reach=32)
def find_phones(text: Text):
    base = text.base
    for match in text.number_matches(_PHONE, 7):
        start, end = match.span()
        if glued_before(base, start) or _after_decimal_point(base, start) or base[start - 1 : start] in ("-", "/"):
            continue
        candidate = match.group()
        if _ISO_DATE.match(candidate):
            continue
        for _ in range(3):  # a number written beside a year or a count: try without its last groups
            if not glued_after(base, end) and not (
                base[end : end + 1] in (".", ",", "-", "/") and base[end + 1 : end + 2].isdigit()
            ):
                if _PHONE_SHAPE.fullmatch(candidate) and _is_phone(text, candidate, start):
                    yield start, end
                    break
            cut = candidate.rfind(" ")
            if cut <= 0:
                break
            candidate = candidate[:cut].rstrip(" .-/(")
            end = start + len(candidate)


def _is_phone(text: Text, candidate: str, start: int) -> bool:
    groups = _groups(candidate)
    if not 7 <= sum(groups) <= 15 or groups.count(1) > 2 or _ISO_DATE.match(candidate):
        return False
    if _DATE_OR_ADDRESS.fullmatch(candidate) and not _FRENCH_DOTTED.fullmatch(candidate):
        return False
    international = candidate[0] == "+" or candidate.startswith("00")
    told = near(text, _PHONE_CONTEXT, start, 40)
    if not international and not told:
        if near(text, _NOT_PHONE_CONTEXT, start, 24) or (start > 0 and text.base[start - 1] == "#"):
            return False
        separators = sum(not c.isdigit() for c in candidate)
        if separators < 2 and not (separators and candidate[0] in "0("):  # bare digits: an id unless said otherwise
            return False
    try:
        if international:
            number = candidate[2:] if candidate.startswith("00") else candidate
            return phonenumbers.is_valid_number(phonenumbers.parse("+" + number.lstrip("+ ")))
        national = "".join(c for c in candidate if c.isdigit())
        for region, fits in _NATIONAL_FORMATS.items():
            if not fits.fullmatch(national) or (region == "US" and groups not in _US_GROUPS):
                continue
            if phonenumbers.is_valid_number(phonenumbers.parse(candidate, region)):
                return True
    except phonenumbers.NumberParseException:
        return False
    return False


def _groups(candidate: str) -> list[int]:
    return [len(group) for group in _DIGIT_RUNS.findall(candidate)]


_DIGIT_RUNS = re.compile(r"[0-9]+")


# --- IP addresses ------------------------------------------------------------------------------------------

_IPV4 = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
_COLON_PAIR = re.compile(r":[0-9A-Fa-f]{0,4}:")
_IPV6_RUN = re.compile(r"[0-9A-Fa-f:.]{2,45}")
_HEX_COLON = frozenset("0123456789abcdefABCDEF:.")
# Dotted numbers after these words are versions or section numbers, not addresses.
_VERSION_CONTEXT = context_words(
    "context.version",
    "version ver release build firmware section chapter chapitre kapitel abschnitt capitulo article artikel "
    "paragraph figure table step rule clause § art.".split(),
)


@detector("ip", rank=50)
def find_ips(text: Text):
    base = text.base
    for match in text.number_matches(_IPV4, 4, min_dots=3):
        start, end = match.span()
        if glued_before(base, start) or glued_after(base, end) or (start > 0 and base[start - 1] == "."):
            continue
        if end < len(base) - 1 and base[end] == "." and base[end + 1].isdigit():
            continue
        if near(text, _VERSION_CONTEXT, start, 12):
            continue
        try:
            ipaddress.IPv4Address(match.group())
        except ValueError:
            continue
        yield start, end
    yield from _ipv6(base)


def _ipv6(base: str):
    covered = 0
    for match in _COLON_PAIR.finditer(base):
        if match.start() < covered:
            continue
        start = match.start()
        while start > covered and match.start() - start < 40 and base[start - 1] in _HEX_COLON:
            start -= 1
        run = _IPV6_RUN.match(base, start)
        if run is None:
            continue
        end = run.end()
        covered = max(end, match.end())
        candidate = run.group().rstrip(".")
        if start > 0 and (base[start - 1].isalnum() or base[start - 1] in "_"):
            continue
        if candidate.startswith(":") and not candidate.startswith("::"):
            candidate, start = candidate[1:], start + 1
        if glued_after(base, start + len(candidate)) or not _substantial_ipv6(candidate):
            continue
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        yield start, start + len(candidate)


def _substantial_ipv6(candidate: str) -> bool:
    """Not `a::b` or `std::` in code: the loopback, or at least four hex digits with a group of three or more."""
    if candidate == "::1":
        return True
    groups = candidate.replace(".", ":").split(":")
    return sum(len(g) for g in groups) >= 4 and max(len(g) for g in groups) >= 3
