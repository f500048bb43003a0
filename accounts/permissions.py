"""One DRF permission for every endpoint: the role (model permission) and, for API keys, the scope.

A view lists what each action needs; an action it does not list is refused:

    action_policies = {
        "list": ("agents.view_agent", "agents:read"),
        "invoke": ("agents.invoke_agent", "agents:invoke"),
    }

For a plain APIView the action is the lower-case HTTP method ("get", "post", "patch"). Either part may be
None. Session users have every scope; what they may do is decided by their role alone.
"""

from rest_framework.permissions import BasePermission

from accounts.models import ApiKey


def request_scopes(request) -> set[str] | None:
    """The scopes of the API key behind the request, or None when no key is involved (session)."""
    return set(request.auth.scopes) if isinstance(request.auth, ApiKey) else None


class ActionPolicy(BasePermission):
    message = "You are not allowed to do this."

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return False
        action = getattr(view, "action", None) or request.method.lower()
        if action == "options":
            return True
        policies = getattr(view, "action_policies", {})
        if action not in policies:
            return False
        perm, scope = policies[action]
        if perm and not request.user.has_perm(perm):
            self.message = "Your role does not allow this."
            return False
        scopes = request_scopes(request)
        if scope and scopes is not None and scope not in scopes:
            self.message = f"This API key lacks the scope '{scope}'."
            return False
        return True


class PolicyMixin:
    """For every API view: actions are allowed only as `action_policies` lists them."""

    permission_classes = [ActionPolicy]
