"""Secrets and credentials: cloud keys, private keys, service tokens, bearer tokens, passwords in assignments,
and this platform's own API keys.

Every detector here is anchored on trigger words (`AKIA`, `ghp_`, `-----BEGIN`, `password`...) found by the
shared Aho-Corasick pass, then matches its pattern at that position only: adding a format costs nothing on
text that does not contain its prefix. Where a secret sits in an assignment or a header (`password = ...`,
`Authorization: Bearer ...`, `AccountKey=...`), the finding covers the value only, so redaction keeps the name.
"""

import base64
import re

from agents.guards.context import character_classes, entropy
from agents.guards.registry import detector
from agents.guards.text import Text

RANK = 90
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _glued(base: str, start: int | None, end: int) -> bool:
    """The match is a piece of a longer token (a letter or digit before, a token character after)."""
    return (bool(start) and base[start - 1].isalnum()) or (end < len(base) and base[end] in _TOKEN_CHARS)


_TOKEN_RUN = re.compile(r"[A-Za-z0-9_-]*+")


def _anchored(name: str, pattern: str, trigger_words, *, rank: int = RANK, reach: int = 0, valid=None, inside=False):
    """A detector matching `pattern` where one of `trigger_words` starts; its group "value" (else the whole
    match) is the finding; `valid(value)` may reject it; `inside`: the match may start inside a word.

    Where a match fails, the trigger words later in the same run of token characters are skipped: they would
    fail the same way (`eyJeyJeyJ...` costs one attempt, not one per `eyJ`)."""
    compiled = re.compile(pattern)

    @detector(name, rank=rank, reach=reach, trigger_words=trigger_words)
    def find(text: Text):
        base = text.base
        skip_until = 0
        for position in text.hits(name):
            if position < skip_until:
                continue
            match = compiled.match(base, position)
            if match is None:
                skip_until = _TOKEN_RUN.match(base, position).end()
                continue
            span = match.span("value") if "value" in compiled.groupindex else match.span()
            if _glued(base, position if not inside else None, match.end()):
                continue
            if valid and not valid(base[span[0] : span[1]]):
                continue
            yield span

    return find


# Values that stand for a secret in documentation and code rather than being one.
_PLACEHOLDERS = re.compile(
    r"example|changeme|change_me|your[_-]|xxxx|\*\*\*|placeholder|redacted|dummy|sample|secret_here|token_here"
    r"|<|>|\$\{|\{\{|%\(|\$\(|process\.env|os\.environ|getenv|env\(|\.\.\.",
    re.IGNORECASE,
)


def _random_enough(value: str, *, minimum: float = 3.0) -> bool:
    return entropy(value) >= minimum and not _PLACEHOLDERS.search(value)


# --- cloud providers -----------------------------------------------------------------------------------------

_anchored(
    "secret.aws_access_key",
    r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}",
    ["akia", "asia", "abia", "acca"],
    valid=lambda value: "EXAMPLE" not in value,
)
_anchored(
    "secret.aws_secret_key",
    r"(?i:aws_?secret_?(?:access_?)?key|secret_?access_?key|aws[ ._-]secret(?:[ ._-](?:access[ ._-])?key)?)"
    r"[\"']?[ \t]{0,8}(?:=|:|=>)[ \t]{0,8}[\"']?(?P<value>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
    ["aws_secret", "awssecret", "secret_access_key", "secretaccesskey", "aws secret", "aws.secret", "aws-secret"],
    reach=64,
    valid=lambda value: _random_enough(value, minimum=3.5) and "EXAMPLE" not in value,
)
_anchored("secret.google_api_key", r"AIza[0-9A-Za-z_-]{35}", ["aiza"])
# A service-account key file: the private key sits in JSON, its newlines escaped.
_anchored(
    "secret.gcp_service_account",
    r"\"private_key\"[ \t]{0,8}:[ \t]{0,8}\""
    r"(?P<value>-----BEGIN PRIVATE KEY-----(?:\\n|[A-Za-z0-9+/=]){1,8000}?-----END PRIVATE KEY-----(?:\\n)?)\"",
    ['"private_key"'],
    rank=RANK + 5,
)
# Storage accounts' AccountKey (64 bytes), Service Bus and Event Hubs' SharedAccessKey (32 bytes).
_anchored(
    "secret.azure_connection_string",
    r"(?i:AccountKey=|SharedAccessKey=)(?P<value>[A-Za-z0-9+/]{86}==|[A-Za-z0-9+/]{42,43}=)",
    ["accountkey=", "sharedaccesskey="],
)


@detector("secret.azure_sas_signature", rank=RANK, trigger_words=["sig="])
def find_azure_sas(text: Text):
    """The signature of a shared access signature URL (`...?sv=...&sig=...`): whoever holds it has the access."""
    base = text.base
    for position in text.hits("secret.azure_sas_signature"):
        if position == 0 or base[position - 1] not in "?&":
            continue
        match = _SAS_SIGNATURE.match(base, position)
        if match and not _glued(base, position, match.end()):
            yield match.span("value")


_SAS_SIGNATURE = re.compile(r"sig=(?P<value>(?:[A-Za-z0-9+/]|%2[BbFf]|%3[Dd]){40,120})")

# --- code hosts, chat, payments, model providers ---------------------------------------------------------------

_anchored(
    "secret.github_token",
    r"gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}",
    ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
    valid=_random_enough,
)
_anchored(
    "secret.gitlab_token",
    r"gl(?:pat|dt|rt|ptt|ft|soat|cbt|imt|oas|wt|agent)-[A-Za-z0-9_.-]{20,80}",
    ["glpat-", "gldt-", "glrt-", "glptt-", "glft-", "glsoat-", "glcbt-", "glimt-", "gloas-", "glwt-", "glagent-"],
    valid=_random_enough,
)
_anchored(
    "secret.slack_token",
    r"xox[abposre]-(?:[0-9A-Za-z]{2,60}-){1,4}[0-9A-Za-z]{8,64}"
    r"|https://hooks\.slack\.com/(?:services|workflows|triggers)/T[A-Z0-9]{6,14}/[A-Z0-9]{6,14}/[A-Za-z0-9]{16,40}",
    ["xoxa-", "xoxb-", "xoxp-", "xoxo-", "xoxs-", "xoxr-", "xoxe-", "https://hooks.slack.com/"],
    valid=lambda value: value.startswith("https") or _random_enough(value),
)
_anchored(
    "secret.stripe_key",
    r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{24,247}|whsec_[A-Za-z0-9+/]{32,88}",
    ["sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_"],
    valid=_random_enough,
)
_anchored(
    "secret.openai_key",
    r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,250}|sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}|sk-[A-Za-z0-9]{48}",
    ["sk-"],
    valid=_random_enough,
)
_anchored(
    "secret.anthropic_key",
    r"sk-ant-(?:api|admin|oat|sid)[0-9]{2}-[A-Za-z0-9_-]{40,250}",
    ["sk-ant-"],
    rank=RANK + 1,
    valid=_random_enough,
)
# This platform's API keys: sb_<key id>_<secret> (accounts/models.py, KEY_PATTERN).
_anchored("secret.switchboard_key", r"sb_[a-z2-7]{12}_[A-Za-z0-9_-]{43}", ["sb_"], rank=RANK + 5)


# --- private keys, tokens in headers and URLs -------------------------------------------------------------------

# The body is read to the END line or, when the key is cut short, as far as it goes: a truncated private
# key is still a leak. Newlines may be real or escaped (a key inside a JSON string).
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]{1,12} ){0,3}PRIVATE KEY(?: BLOCK)?-----"
    r"(?:[A-Za-z0-9+/=]|\s|\\[nr]|(?:Proc-Type|DEK-Info|Comment|Version): [^\r\n\\]{0,200})*"
    r"(?:-----END (?:[A-Z0-9]{1,12} ){0,3}PRIVATE KEY(?: BLOCK)?-----)?"
)
_TRAILING_SPACE = re.compile(r"(?:\s|\\[nr])+$")


@detector("secret.private_key", rank=RANK, reach=64, trigger_words=["-----begin "])
def find_private_keys(text: Text):
    base = text.base
    for position in text.hits("secret.private_key"):
        match = _PRIVATE_KEY.match(base, position)
        if match is None:
            continue
        end = match.end()
        if not match.group().endswith("-----"):
            trailing = _TRAILING_SPACE.search(match.group())
            end -= len(trailing.group()) if trailing else 0
        yield position, end


_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,2000}+\.eyJ[A-Za-z0-9_-]{2,8000}+\.[A-Za-z0-9_-]{0,2000}+")


def _jwt_header(value: str) -> bool:
    header = value.partition(".")[0]
    try:
        decoded = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
    except ValueError:
        return False
    return decoded.startswith(b"{") and b'"alg"' in decoded


_anchored("secret.jwt", _JWT.pattern, ["eyj"], rank=RANK + 2, valid=_jwt_header)
_anchored(
    "secret.bearer_token",
    r"(?i:bearer)[ \t]{1,8}(?P<value>[A-Za-z0-9._~+/_-]{16,4000}=*)",
    ["bearer"],
    reach=24,
    valid=lambda value: character_classes(value) >= 2 and _random_enough(value),
)
_anchored(
    "secret.url_credentials",
    r"://[^\s:/@]{0,64}:(?P<value>[^\s/@]{3,128})@[A-Za-z0-9.-]{1,253}",
    ["://"],
    rank=RANK - 5,
    inside=True,
    valid=lambda value: not _PLACEHOLDERS.search(value) and value.lower() not in ("password", "pass", "pwd"),
)


# --- passwords and keys in assignments ------------------------------------------------------------------------

_ASSIGNED = re.compile(
    r"(?i:mot de passe)?[\w.-]{0,40}?[\"'\]]{0,2}[ \t]{0,8}(?::=|=>|=|:)[ \t]{0,8}"
    r"(?:(?P<quote>[\"'])(?P<quoted>[^\"'\s]{8,200})(?P=quote)|(?P<bare>[^\s\"'`,;)}\]<>&]{8,200}))"
)
# Not a value but code: a dotted name, a call, an index, a template, a variable; or a URL or an address.
_CODE = re.compile(r"[A-Za-z_$][\w$]*(?:(?:\.|::|->)[A-Za-z_$][\w$]*)+|.*[(\[{].*|[$%].*|.*://.*|.*@[\w-]+\..*")
_NAME = re.compile(r"[A-Za-z_][A-Za-z_]*|[A-Za-z][A-Za-z0-9]*_[A-Za-z0-9_]+")
_ASSIGNMENT_WORDS = [
    "password", "passwd", "pwd", "passphrase", "secret", "api_key", "api-key", "apikey", "access_key",
    "access_token", "auth_token", "client_secret", "private_key", "token", "credentials",
    "mot de passe", "mot_de_passe", "passwort", "kennwort", "contraseña", "contrasena", "clave",
]  # fmt: skip


@detector("secret.assignment", rank=RANK - 10, reach=64, trigger_words=_ASSIGNMENT_WORDS)
def find_assigned_secrets(text: Text):
    """`password = "..."`, `API_KEY=...`, `"client_secret": "..."`, `Passwort: ...` with a value that looks
    random: a literal, not a variable, a call, a template or a placeholder."""
    base = text.base
    examined = 0
    for position in text.hits("secret.assignment"):
        if position < examined:  # inside the value of the assignment just read
            continue
        match = _ASSIGNED.match(base, position)
        if match is None:
            continue
        examined = match.end()
        if match.group("quoted"):
            value, span = match.group("quoted"), match.span("quoted")
            if _CODE.fullmatch(value) and ("@" in value or "://" in value):
                continue
        else:
            value, span = match.group("bare"), match.span("bare")
            if _CODE.fullmatch(value) or _NAME.fullmatch(value):
                continue
        classes = character_classes(value)
        if (classes >= 3 or (classes == 2 and any(c.isdigit() for c in value))) and _random_enough(value, minimum=2.8):
            yield span
