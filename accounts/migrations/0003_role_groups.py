from django.db import migrations

ROLES = ("admin", "operator", "member", "viewer")


def create_role_groups(apps, schema_editor):
    """The four role groups; their permissions are set after every migrate (accounts.roles.roles_sync)."""
    Group = apps.get_model("auth", "Group")
    for role in ROLES:
        Group.objects.get_or_create(name=role)


def assign_existing_users(apps, schema_editor):
    """Users from before roles existed: superusers become admins, staff operators, everyone else members."""
    Group = apps.get_model("auth", "Group")
    User = apps.get_model("accounts", "User")
    groups = {group.name: group for group in Group.objects.filter(name__in=ROLES)}
    for user in User.objects.filter(groups__isnull=True):
        role = "admin" if user.is_superuser else "operator" if user.is_staff else "member"
        user.groups.add(groups[role])


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_api_keys_preferences_security_events"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunPython(create_role_groups, migrations.RunPython.noop),
        migrations.RunPython(assign_existing_users, migrations.RunPython.noop),
    ]
