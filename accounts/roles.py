"""Roles: four groups whose model permissions decide what a user may do across the platform.

Each app lists, on its AppConfig, the permissions a role gains there:

    role_permissions = {"viewer": ["agents.view_agent"], "member": ["agents.invoke_agent"], ...}

Roles are cumulative (a member may do what a viewer may, an operator what a member may) and `admin`
holds every permission. The groups are created by a migration; their permissions are set from these
lists after every `migrate` (post_migrate), so code is the one source of truth for what a role means.
"""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission

from accounts.models import ROLES

# Roles that may open the admin (Django's is_staff).
STAFF_ROLES = {"admin", "operator"}


def role_permission_names() -> dict[str, set[str]]:
    """'app_label.codename' names per role (admin excluded: it holds all), cumulative."""
    declared = {role: set() for role in ROLES}
    for config in global_apps.get_app_configs():
        for role, names in getattr(config, "role_permissions", {}).items():
            declared[role].update(names)
    cumulative, held = {}, set()
    for role in reversed(ROLES[1:]):  # viewer, member, operator
        held |= declared[role]
        cumulative[role] = set(held)
    return cumulative


def roles_sync(using: str = "default") -> None:
    """Create the role groups if missing and give each exactly the permissions its role declares."""
    for config in global_apps.get_app_configs():
        create_permissions(config, verbosity=0, using=using)
    all_permissions = Permission.objects.using(using).select_related("content_type")
    by_name = {f"{perm.content_type.app_label}.{perm.codename}": perm for perm in all_permissions}
    wanted = role_permission_names()
    for role in ROLES:
        group, _ = Group.objects.using(using).get_or_create(name=role)
        if role == "admin":
            group.permissions.set(by_name.values())
        else:
            group.permissions.set([by_name[name] for name in sorted(wanted[role]) if name in by_name])


def on_post_migrate(sender, using="default", **kwargs):
    roles_sync(using=using)
