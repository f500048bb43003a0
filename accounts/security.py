"""Who is on the other end of a request: the client address under the trusted-proxy rule, the user agent.

Each of the TRUSTED_PROXY_COUNT proxies in front of the app appends the address it received from to
X-Forwarded-For, so the client is the entry that many places from the right. Anything further left was
written by the client and is ignored: a forged header can neither hide an attacker's address nor put the
blame on someone else's.
"""

import ipaddress
import logging

from django.conf import settings

from core.exceptions import RateLimited, Unavailable

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


# --- slowing down abusable endpoints (django-ratelimit) ------------------------------------------------


class LimiterUnavailable(Unavailable):
    """The limiter's store (Redis) is unreachable; the action is refused rather than let through (503)."""


class TooManyAttempts(RateLimited):
    def __init__(self):
        super().__init__("Too many attempts; slow down.", retry_after=60)


def rate_exceeded(request, action: str, subjects: dict[str, str], rate: str) -> bool:
    """Count one attempt of `action` for each subject (e.g. the address, the account); True once any passes `rate`.

    Fails closed: with Redis unreachable it raises LimiterUnavailable.
    """
    from django_ratelimit.core import is_ratelimited

    limited = False
    try:
        for name, value in subjects.items():
            limited |= is_ratelimited(
                request, group=f"{action}:{name}", key=lambda group, req, value=value: value, rate=rate, increment=True
            )
    except Exception as error:  # django-redis raises its own ConnectionInterrupted, redis-py its errors
        logger.warning("%s limiter unavailable: %s", action, error.__class__.__name__)
        raise LimiterUnavailable from error
    return limited


def login_rate_exceeded(request, username: str) -> bool:
    """Login attempts per address and per account, at LOGIN_RATE."""
    subjects = {"address": client_ip(request) or "unknown", "account": username.strip().lower()}
    return rate_exceeded(request, "login", subjects, settings.LOGIN_RATE)


def signup_rate_exceeded(request) -> bool:
    return rate_exceeded(request, "signup", {"address": client_ip(request) or "unknown"}, settings.SIGNUP_RATE)


def key_creation_rate_exceeded(request, user) -> bool:
    return rate_exceeded(request, "key-creation", {"user": str(user.pk)}, settings.KEY_CREATION_RATE)
