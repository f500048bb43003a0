"""API key scopes come from the apps that own them; every scope a view asks for exists."""

from django.urls import get_resolver

from accounts.scopes import default_key_scopes, key_scopes


def _views(patterns):
    for pattern in patterns:
        if hasattr(pattern, "url_patterns"):
            yield from _views(pattern.url_patterns)
        else:
            yield getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)


def test_every_scope_a_view_asks_for_is_declared_by_an_app():
    asked = {
        scope
        for view in _views(get_resolver().url_patterns)
        for _, scope in getattr(view, "action_policies", {}).values()
        if scope
    }

    assert asked, "no view lists its policies"
    assert asked <= key_scopes().keys(), f"undeclared scopes: {sorted(asked - key_scopes().keys())}"


def test_each_app_declares_its_own_scopes_and_the_default_ones_exist():
    scopes = key_scopes()

    assert {"agents:invoke", "memory:write", "tasks:read", "keys:manage", "workflows:run"} <= scopes.keys()
    assert set(default_key_scopes()) <= scopes.keys()
