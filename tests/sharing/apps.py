from django.apps import AppConfig


class SharingConfig(AppConfig):
    name = "tests.sharing"
    label = "sharing"
    default_auto_field = "django.db.models.BigAutoField"

    role_permissions = {
        "viewer": ["sharing.view_notebook"],
        "member": ["sharing.add_notebook", "sharing.change_notebook", "sharing.use_notebook"],
    }
