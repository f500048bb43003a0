"""How the two ways of signing in appear in the OpenAPI schema (drf-spectacular extensions)."""

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "sb_<key id>_<secret>",
            "description": "An API key from /api/v1/keys or the API keys page. Never in the query string.",
        }


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "core.correlation.SessionAuthentication"
    name = "session"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME}
