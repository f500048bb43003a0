"""External guard services: the texts a policy guards POSTed to an operator's service, which answers allow,
flag, redact or block within its time budget (docs/guardrails.md, "External guards").

    POST <url>   webhook-id, webhook-timestamp, webhook-signature (Standard Webhooks, the service's secret)
    {"type": "guard.check", "direction": "input", "agent_type": "helper", "run": "<uuid>",
     "texts": [{"where": "input", "place": "messages[0].content", "text": "..."}]}

    200 {"action": "allow"}
        {"action": "flag", "reason": "..."}
        {"action": "block", "reason": "...", "index": 0}          # index: which text (optional)
        {"action": "redact", "texts": ["...", "..."]}             # every text, in order, spans replaced

They run after the built-in detectors, on the already-redacted texts. A timeout, a network error, a status
other than 200, an answer not of that shape or a refused destination (the outbound guard: public addresses
only, tasks.outbound) follows the policy's choice: fail open (the texts pass, a verdict `external:<name>`
with action `error` is recorded) or fail closed (GuardUnavailable, a 503). Async from end to end (httpx),
so a slow guard never blocks the event loop; DNS is resolved in a thread and the connection pinned to the
checked address.
"""

import asyncio
import json
import logging
import uuid
import weakref
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import httpx
from standardwebhooks import Webhook

from agents.services.guarding import INPUT, TOOL_ARGUMENTS, External, Found, GuardSpec, GuardUnavailable
from core.encryption import decrypt
from tasks import outbound

logger = logging.getLogger("switchboard.guards")

MAX_ANSWER_BYTES = 4 * 1024 * 1024
ACTIONS = ("allow", "flag", "redact", "block")
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = weakref.WeakKeyDictionary()


class BadAnswer(Exception):
    """The guard answered, but not something we can use."""


def _client() -> httpx.AsyncClient:
    """One client per event loop (its connections are kept between checks)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = httpx.AsyncClient(
            trust_env=False, follow_redirects=False, limits=httpx.Limits(max_connections=200)
        )
    return client


def _pinned(url: str) -> tuple[str, str, dict]:
    """(URL to the checked address, Host header, request extensions): the outbound guard's rules (public
    addresses only, unless WEBHOOK_ALLOWED_HOSTS names the host), the connection made to the address that
    passed, whatever the name resolves to later. Blocking: run in a thread."""
    scheme, host, port, _ = outbound._parse(url)
    address = outbound.resolve_checked(host, port)[0]
    parts = urlsplit(url)
    netloc = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    default_port = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
    host_header = host if default_port else f"{host}:{port}"
    extensions = {"sni_hostname": host} if scheme == "https" else {}
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, "")), host_header, extensions


def signed_headers(secret: str, message_id: str, body: str, now: datetime) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body),
        "content-type": "application/json",
        "user-agent": "Switchboard-Guard/1",
    }


async def _ask(guard: External, body: str) -> dict:
    url, host, extensions = await asyncio.to_thread(_pinned, guard.url)
    now = datetime.now(UTC)
    headers = {**signed_headers(decrypt(guard.secret_encrypted), f"msg_{uuid.uuid4().hex}", body, now), "host": host}
    response = await _client().post(
        url, content=body.encode(), headers=headers, extensions=extensions, timeout=guard.timeout_ms / 1000
    )
    if response.status_code != 200:
        raise BadAnswer(f"status {response.status_code}")
    if len(response.content) > MAX_ANSWER_BYTES:
        raise BadAnswer("answer too large")
    try:
        answer = json.loads(response.content)
    except ValueError as error:
        raise BadAnswer("not JSON") from error
    if not isinstance(answer, dict) or answer.get("action") not in ACTIONS:
        raise BadAnswer("no known action")
    return answer


def _replacements(answer: dict, texts: list[tuple[str, str, str]]) -> list[str]:
    replaced = answer.get("texts")
    if not isinstance(replaced, list) or len(replaced) != len(texts) or not all(isinstance(t, str) for t in replaced):
        raise BadAnswer("a redaction must give back every text, in order")
    for (where, _, before), after in zip(texts, replaced, strict=True):
        if where == TOOL_ARGUMENTS and after != before and _is_json(before) and not _is_json(after):
            raise BadAnswer("redacted tool-call arguments are no longer JSON")
    return replaced


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


async def check(
    spec: GuardSpec, direction: str, texts: list[tuple[str, str, str]], found: Found, *, agent_type: str, run: str
) -> list[str]:
    """Each external guard of the policy for `direction` over `texts` ((where, place, text), already redacted
    by the built-in detectors), one after the other (each sees the previous one's redactions). Returns the
    texts as they may go on; a block is put in `found` (the caller raises it); a failing fail-closed guard
    raises GuardUnavailable."""
    current = [text for _, _, text in texts]
    if not texts:
        return current
    main_where = INPUT if direction == INPUT else "output"
    for guard in spec.external(direction):
        detector = f"external:{guard.name}"
        items = [{"where": w, "place": p, "text": t} for (w, p, _), t in zip(texts, current, strict=True)]
        body = json.dumps(
            {"type": "guard.check", "direction": direction, "agent_type": agent_type, "run": run, "texts": items},
            ensure_ascii=False,
        )
        try:
            answer = await asyncio.wait_for(_ask(guard, body), guard.timeout_ms / 1000)
            action = answer["action"]
            if action == "redact":
                replaced = _replacements(answer, [(w, p, t) for (w, p, _), t in zip(texts, current, strict=True)])
        except Exception as error:  # a timeout, the network, a refused address, a bad answer
            reason = "timed out" if isinstance(error, TimeoutError) else f"{error.__class__.__name__}: {error}"
            found.add(detector, "error", main_where)
            if not guard.fail_open:
                logger.warning("external guard %s failed (%s); refused (fail-closed)", guard.name, reason)
                raise GuardUnavailable(
                    f"The external guard {guard.name} did not answer usably; the request is refused."
                ) from None
            logger.warning("external guard %s failed (%s); passed (fail-open)", guard.name, reason)
            continue
        if action == "flag":
            found.add(detector, "flag", main_where)
        elif action == "block":
            index = answer.get("index")
            where, place, _ = texts[index] if isinstance(index, int) and 0 <= index < len(texts) else texts[0]
            found.add(detector, "block", where)
            found.block(detector, where, place)
            return current
        elif action == "redact":
            for (where, _, _), before, after in zip(texts, current, replaced, strict=True):
                if after != before:
                    found.add(detector, "redact", where)
            current = replaced
    return current
