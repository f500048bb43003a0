"""Starting any process (a management command, a worker, the web server) stays cheap: the provider SDKs,
seconds of imports, load where a provider is called, never with Django."""

import os
import subprocess
import sys

from django.conf import settings

LOAD_EVERYTHING = """
import sys
import django

django.setup()
from django.urls import get_resolver

get_resolver().url_patterns  # every app's API, pages and admin, as the web process loads them
from platform_site.celery import app

app.loader.import_default_modules()  # every app's task modules, as a worker loads them
print(",".join(sorted(name for name in ("openai", "anthropic") if name in sys.modules)) or "none")
"""


def test_loading_django_with_every_app_imports_neither_provider_sdk():
    assert sdks_loaded_by(LOAD_EVERYTHING) == "none"


CALL_OPENAI = """
import sys
import django

django.setup()
from agents.models import Provider
from agents.providers.clients import _new_client

_new_client(Provider(name="o", kind=Provider.Kind.OPENAI, base_url="http://127.0.0.1:9/v1"), "sk-test")
print(",".join(sorted(name for name in ("openai", "anthropic") if name in sys.modules)))
"""


def test_a_process_that_calls_an_openai_kind_provider_imports_that_sdk_alone():
    """Where the SDKs are not loaded at start (the tests' processes; any command), the first call imports only
    the SDK it needs: anthropic's 1.6 s of imports are not paid for an OpenAI call."""
    assert sdks_loaded_by(CALL_OPENAI) == "openai"


def sdks_loaded_by(script: str) -> str:
    """What `script`, run in a process of its own with the test settings, printed last: the SDKs it imported."""
    loaded = subprocess.run(
        [sys.executable, "-c", script],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "platform_site.settings_test"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    return loaded.stdout.strip().splitlines()[-1]
