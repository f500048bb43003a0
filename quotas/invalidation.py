"""The quota policies each process keeps (quotas.services.admission.active_policies) are dropped everywhere
when one changes: receivers, because operators edit policies in the admin as well as through services."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from core.local_cache import invalidate
from quotas.models import QuotaPolicy


@receiver([post_save, post_delete], sender=QuotaPolicy, dispatch_uid="quotas.invalidate_policies")
def _policy_changed(sender, **kwargs):
    invalidate("quotapolicies", "all")
