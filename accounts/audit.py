"""The audit trail (django-auditlog) of the models that matter here; later apps register theirs the same way.

Secrets never enter the trail: password and key hashes are excluded, not just masked.
"""

from auditlog.registry import auditlog
from django.contrib.auth.models import Group

from accounts.models import ApiKey, Preferences, User

auditlog.register(
    User,
    exclude_fields=["password", "last_login"],
    m2m_fields={"groups", "user_permissions"},
)
auditlog.register(Group, m2m_fields={"permissions"})
auditlog.register(
    ApiKey,
    exclude_fields=["secret_hash", "previous_secret_hash", "last_used_at", "last_used_ip"],
)
auditlog.register(Preferences)
