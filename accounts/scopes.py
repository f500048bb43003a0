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


@cache
def scope_permissions() -> dict[str, set[str | None]]:
    """For each scope, the role permissions of the API actions that ask for it (None: an action any role may
    take), read from the views' `action_policies`, the one place that pairs the two."""
    from django.urls import get_resolver

    found: dict[str, set[str | None]] = {scope: set() for scope in key_scopes()}
    for view in _views(get_resolver().url_patterns):
        for perm, scope in getattr(view, "action_policies", {}).values():
            if scope:
                found.setdefault(scope, set()).add(perm)
    return found


def _views(patterns):
    for pattern in patterns:
        if hasattr(pattern, "url_patterns"):
            yield from _views(pattern.url_patterns)
        else:
            yield getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)


def key_scopes_for(user) -> dict[str, str]:
    """The scopes a key of `user` may carry: those with at least one action their role may take (a member is
    not offered `users:manage`, whose every action needs an operator's or admin's permission)."""
    needed = scope_permissions()
    return {
        scope: text
        for scope, text in key_scopes().items()
        if any(perm is None or user.has_perm(perm) for perm in needed.get(scope, ()))
    }


def default_key_scopes_for(user) -> list[str]:
    allowed = key_scopes_for(user)
    return [scope for scope in default_key_scopes() if scope in allowed]
