"""Who is on the other end of a request: the client address under the trusted-proxy rule, the user agent.

Each of the TRUSTED_PROXY_COUNT proxies in front of the app appends the address it received from to
X-Forwarded-For, so the client is the entry that many places from the right. Anything further left was
written by the client and is ignored: a forged header can neither hide an attacker's address nor put the
blame on someone else's.
"""

import ipaddress
import logging

from django.conf import settings

logger = logging.getLogger("switchboard.security")

USER_AGENT_MAX_LENGTH = 512


def client_ip(request) -> str | None:
    remote_addr = request.META.get("REMOTE_ADDR") or None
    count = settings.TRUSTED_PROXY_COUNT
    if count == 0:
        return remote_addr
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) < count:
        # Fewer hops than proxies: the request did not come through all of them; trust only the socket.
        return remote_addr
    candidate = forwarded[-count]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote_addr


def user_agent(request) -> str:
    return request.META.get("HTTP_USER_AGENT", "")[:USER_AGENT_MAX_LENGTH]


# --- slowing down login attempts -----------------------------------------------------------------------


class LimiterUnavailable(Exception):
    """The login limiter's store (Redis) is unreachable; logins are refused rather than let through."""


def login_rate_exceeded(request, username: str) -> bool:
    """Count one login attempt per address and per account; True once either passes LOGIN_RATE.

    Fails closed: with Redis unreachable it raises LimiterUnavailable (answered 503).
    """
    from django_ratelimit.core import is_ratelimited

    rate = settings.LOGIN_RATE
    try:
        by_address = is_ratelimited(
            request,
            group="login:address",
            key=lambda group, req: client_ip(req) or "unknown",
            rate=rate,
            increment=True,
        )
        by_account = is_ratelimited(
            request, group="login:account", key=lambda group, req: username.strip().lower(), rate=rate, increment=True
        )
    except Exception as error:  # django-redis raises its own ConnectionInterrupted, redis-py its errors
        logger.warning("login limiter unavailable: %s", error.__class__.__name__)
        raise LimiterUnavailable from error
    return by_address or by_account
