from django.apps import AppConfig


class MemoryConfig(AppConfig):
    name = "memory"
    verbose_name = "Memory"

    role_permissions = {
        "viewer": ["memory.view_memory"],
        "member": ["memory.add_memory", "memory.change_memory", "memory.delete_memory"],
    }
