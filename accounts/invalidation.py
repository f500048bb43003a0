"""What each process keeps of accounts (core.local_cache) is dropped everywhere when it changes.

Receivers, because keys, users, roles and shares change from many places (services, the admin, migrations
setting the roles) and every one of them must reach the processes' caches. Bulk `update()`s send no
signal: the ones accounts makes touch nothing cached (a key's last use, an ended grace secret, which the
check refuses by its date anyway).
"""

from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver
from guardian.models import UserObjectPermission

from accounts.models import ApiKey, Preferences, User
from core.local_cache import invalidate


@receiver([post_save, post_delete], sender=ApiKey, dispatch_uid="accounts.invalidate_key")
def _key_changed(sender, instance, **kwargs):
    invalidate("apikey", instance.key_id)
    invalidate("apikey", f"pk:{instance.pk}")  # as tasks read it (apikey_for_task)


@receiver([post_save, post_delete], sender=User, dispatch_uid="accounts.invalidate_user")
def _user_changed(sender, instance, update_fields=None, **kwargs):
    if update_fields and set(update_fields) <= {"last_login"}:
        return  # a login changes nothing a key's holder may do
    invalidate("apikey")  # keys carry their user, its role and permissions


@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="accounts.invalidate_roles")
@receiver(m2m_changed, sender=Group.permissions.through, dispatch_uid="accounts.invalidate_role_permissions")
def _roles_changed(sender, action, **kwargs):
    if action.startswith("post_"):
        invalidate("apikey")


@receiver([post_save, post_delete], sender=Preferences, dispatch_uid="accounts.invalidate_preferences")
def _preferences_changed(sender, instance, **kwargs):
    invalidate("preferences", instance.user_id)


@receiver([post_save, post_delete], sender=UserObjectPermission, dispatch_uid="accounts.invalidate_shares")
def _share_changed(sender, instance, **kwargs):
    kind = ContentType.objects.get_for_id(instance.content_type_id)  # Django keeps content types in memory
    invalidate("shares", f"{kind.app_label}.{kind.model}:{instance.object_pk}")
