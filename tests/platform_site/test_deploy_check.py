"""Production settings pass Django's deployment checklist (`check --deploy`) with nothing silenced, and are
hardened the way docs/operations.md "Deployment" says: HTTPS only, HSTS with subdomains, secure HttpOnly
SameSite cookies, the Content-Security-Policy, no debug pages. Each runs the settings module in a
subprocess, as a production process would import it."""

import json

from tests.platform_site.test_settings import PRODUCTION_ENV, manage

SHOW_SETTINGS = """
import json
from django.conf import settings as s
print(json.dumps({name: getattr(s, name, None) for name in [
    "DEBUG", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SESSION_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "SESSION_COOKIE_SAMESITE",
    "CSRF_COOKIE_SECURE", "CSRF_COOKIE_HTTPONLY", "CSRF_COOKIE_SAMESITE", "X_FRAME_OPTIONS",
    "SECURE_CONTENT_TYPE_NOSNIFF", "CONTENT_SECURITY_POLICY", "SILENCED_SYSTEM_CHECKS",
]}))
"""


def test_check_deploy_finds_nothing_to_warn_about_in_production_and_nothing_is_silenced():
    result = manage("check", "--deploy", "--fail-level", "DEBUG", env=PRODUCTION_ENV)
    shown = manage("shell", "--no-imports", "-c", SHOW_SETTINGS, env=PRODUCTION_ENV)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert json.loads(shown.stdout.strip().splitlines()[-1])["SILENCED_SYSTEM_CHECKS"] == []


def test_check_deploy_is_clean_behind_a_tls_proxy_too():
    result = manage("check", "--deploy", "--fail-level", "DEBUG", env={**PRODUCTION_ENV, "BEHIND_TLS_PROXY": "true"})

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_is_https_only_with_secure_http_only_cookies_and_the_policy():
    shown = manage("shell", "--no-imports", "-c", SHOW_SETTINGS, env=PRODUCTION_ENV)

    assert shown.returncode == 0, shown.stderr
    values = json.loads(shown.stdout.strip().splitlines()[-1])
    assert values["DEBUG"] is False
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31536000 and values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    for cookie in ("SESSION", "CSRF"):
        assert values[f"{cookie}_COOKIE_SECURE"] is True
        assert values[f"{cookie}_COOKIE_HTTPONLY"] is True
        assert values[f"{cookie}_COOKIE_SAMESITE"] == "Lax"
    assert values["X_FRAME_OPTIONS"] == "DENY" and values["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert values["CONTENT_SECURITY_POLICY"]["DIRECTIVES"]["script-src"] == ["'self'"]
