from django.apps import AppConfig


class MemoryConfig(AppConfig):
    name = "memory"
    verbose_name = "Memory"

    key_scopes = {
        "memory:read": "Read and search memories",
        "memory:write": "Create, change and delete memories",
    }
    default_key_scopes = ["memory:read", "memory:write"]

    role_permissions = {
        "viewer": ["memory.view_memory", "memory.view_memorynamespace"],
        "member": [
            "memory.add_memory",
            "memory.change_memory",
            "memory.delete_memory",
            "memory.add_memorynamespace",
            "memory.change_memorynamespace",
            "memory.delete_memorynamespace",
        ],
    }
