"""The webhook endpoints each process keeps (core.local_cache) are dropped everywhere when one changes.

Receivers, because endpoints change from the services, the admin and a user's deletion; the one bulk
`update()` that matters (disabling a failing endpoint) drops the owner's entry itself.
"""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from core.local_cache import invalidate
from tasks.models import WebhookEndpoint


@receiver([post_save, post_delete], sender=WebhookEndpoint, dispatch_uid="tasks.invalidate_endpoints")
def _endpoint_changed(sender, instance, **kwargs):
    invalidate("webhook-endpoints", instance.owner_id)
