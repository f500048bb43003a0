"""What an API key may be used for. Each app declares its own scopes on its AppConfig:

    key_scopes = {"agents:read": "Read agents and their runs", "agents:invoke": "Invoke agents"}
    default_key_scopes = ["agents:read", "agents:invoke"]  # ticked for a new key in the browser

A request made with a key needs both the key's scope and the owner's role permission
(accounts.permissions.ActionPolicy); accounts validates keys against this registry and names no other
app's scope.
"""

from functools import cache

from django.apps import apps


@cache
def key_scopes() -> dict[str, str]:
    """Every scope a key may carry, with what it allows, in the order the apps are installed."""
    scopes = {}
    for config in apps.get_app_configs():
        for name, text in getattr(config, "key_scopes", {}).items():
            if name in scopes:
                raise ValueError(f"the key scope {name!r} is declared twice ({config.label})")
            scopes[name] = text
    return scopes


def default_key_scopes() -> list[str]:
    """The scopes a new key is offered with in the browser, as the apps suggest them."""
    return [name for config in apps.get_app_configs() for name in getattr(config, "default_key_scopes", [])]
