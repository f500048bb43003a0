"""Security events for what Django and django-axes announce: logins, failures, lockouts, logouts.

Receivers (not services) because these come from code we do not own: the admin login, the browser login,
the API login all send the same signals.
"""

from axes.signals import user_locked_out
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from accounts.models import SecurityEvent
from accounts.services import security_event_record


@receiver(user_logged_in, dispatch_uid="accounts.login_succeeded")
def _login_succeeded(sender, request, user, **kwargs):
    security_event_record(kind=SecurityEvent.Kind.LOGIN_SUCCEEDED, request=request, actor=user, user=user)


@receiver(user_logged_out, dispatch_uid="accounts.logout")
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        security_event_record(kind=SecurityEvent.Kind.LOGOUT, request=request, actor=user, user=user)


@receiver(user_login_failed, dispatch_uid="accounts.login_failed")
def _login_failed(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))[:150]
    user = get_user_model().objects.filter(username=username).first() if username else None
    security_event_record(kind=SecurityEvent.Kind.LOGIN_FAILED, request=request, user=user, username=username)


@receiver(user_locked_out, dispatch_uid="accounts.locked_out")
def _locked_out(sender, request, username, ip_address, **kwargs):
    user = get_user_model().objects.filter(username=username).first() if username else None
    security_event_record(kind=SecurityEvent.Kind.LOGIN_LOCKED_OUT, request=request, user=user, username=username or "")
