"""`Authorization: Bearer sb_...` for the API.

Every failure (unknown, revoked, expired, rotated out, malformed, inactive owner) gets the same 401; the
reason goes to a security event. The key row is read on every request, so a revocation holds at once in
every process.
"""

import re

from auditlog.context import auditlog_value
from django.core.cache import cache
from rest_framework import authentication, exceptions

from accounts.models import KEY_PREFIX, SecurityEvent
from accounts.security import client_ip
from accounts.services import ApiKeyRejected, apikey_authenticate, apikey_authenticate_async, security_event_record
from core.async_db import database_sync_to_async
from core.correlation import user_id_var

INVALID_CREDENTIALS = "Invalid or missing credentials."
QUERY_KEY_NAMES = {"api_key", "apikey", "access_token", "token"}
LOOKS_LIKE_KEY = re.compile(rf"{KEY_PREFIX}[a-z2-7]{{12}}_")
REJECTION_RECORD_INTERVAL = 60  # seconds


def refuse_keys_in_query_string(request) -> None:
    """Keys in URLs end up in proxy logs and browser history: refuse them outright."""
    for name, values in request.query_params.lists():
        if name.lower() in QUERY_KEY_NAMES or any(LOOKS_LIKE_KEY.search(value) for value in values):
            security_event_record(kind=SecurityEvent.Kind.KEY_REJECTED, request=request, reason="query_string")
            raise exceptions.ParseError(
                "API keys are refused in the query string; send them as 'Authorization: Bearer <key>'."
            )


def _first_in_a_while(request, key, reason: str) -> bool:
    """One security event per address, key and reason a minute: a flood of bad keys cannot flood the record."""
    marker = f"key-rejected:{client_ip(request)}:{key.pk if key else '-'}:{reason}"
    try:
        return cache.add(marker, 1, timeout=REJECTION_RECORD_INTERVAL)
    except Exception:  # Redis down: record every one rather than none
        return True


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request):
        raw_key = self._presented(request)
        if raw_key is None:
            return None
        try:
            key = apikey_authenticate(raw_key=raw_key, request=request)
        except ApiKeyRejected as rejected:
            self._record_rejection(request, rejected.key, rejected.reason)
            raise exceptions.AuthenticationFailed(INVALID_CREDENTIALS) from None
        return self._authenticated(key)

    async def authenticate_async(self, request):
        """The same on the event loop: the key comes from the process's cache; a rejection, which writes a
        security event, is recorded in a thread."""
        if request.query_params:
            await database_sync_to_async(refuse_keys_in_query_string)(request)
        raw_key = self._presented(request, query_checked=True)
        if raw_key is None:
            return None
        try:
            key = await apikey_authenticate_async(raw_key=raw_key)
        except ApiKeyRejected as rejected:
            rejected_key, reason = rejected.key, rejected.reason
        else:
            return self._authenticated(key)
        # Recorded, and refused, outside the except block: asgiref takes the exception being handled into its
        # thread and keeps it in a frame there, a reference cycle that would hold the whole request until the
        # garbage collector runs.
        await database_sync_to_async(self._record_rejection)(request, rejected_key, reason)
        raise exceptions.AuthenticationFailed(INVALID_CREDENTIALS)

    def _presented(self, request, query_checked: bool = False) -> str | None:
        if not query_checked:
            refuse_keys_in_query_string(request)
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword:
            return None
        return header[1].decode("ascii", errors="replace") if len(header) == 2 else ""

    def _record_rejection(self, request, key, reason: str) -> None:
        if _first_in_a_while(request, key, reason):
            security_event_record(
                kind=SecurityEvent.Kind.KEY_REJECTED,
                request=request,
                user=key.user if key else None,
                api_key=key,
                reason=reason,
            )

    def _authenticated(self, key):
        user_id_var.set(key.user.pk)
        audit_context = auditlog_value.get(None)
        if audit_context is not None:
            audit_context["actor"] = key.user
        return key.user, key

    def authenticate_header(self, request):
        return 'Bearer realm="switchboard"'
