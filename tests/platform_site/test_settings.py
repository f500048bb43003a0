import os
import secrets
import subprocess
import sys

from django.conf import settings

PRODUCTION_ENV = {
    "SWITCHBOARD_ENV": "production",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "switchboard.example.com",
    "DATABASE_URL": "postgresql://switchboard:secret@db.internal:5432/switchboard",
    "REDIS_URL": "redis://redis.internal:6379/0",
    "FIELD_ENCRYPTION_KEYS": "jXwx-JjiMaeqdK9lMH4NRONXIsT97sy5CdRT7eLRGTE=",
}


def manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    clean["DJANGO_SETTINGS_MODULE"] = "platform_site.settings"
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_refuses_to_start_without_a_secret_key():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}

    result = manage("check", env=env)

    assert result.returncode != 0
    assert "SECRET_KEY must be set when SWITCHBOARD_ENV=production" in result.stderr


def test_production_never_falls_back_to_the_embedded_database():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "DATABASE_URL"}

    result = manage("check", env=env)

    assert result.returncode != 0
    assert "DATABASE_URL must be set when SWITCHBOARD_ENV=production" in result.stderr


def test_a_malformed_setting_fails_loudly():
    result = manage("check", env={**PRODUCTION_ENV, "DATABASE_CONN_MAX_AGE": "sixty"})

    assert result.returncode != 0
    assert "sixty" in result.stderr


def test_demo_data_is_never_loaded_in_production():
    result = manage("demo_data", env=PRODUCTION_ENV)

    assert result.returncode == 1
    assert "demo data is never loaded in production" in result.stderr


def test_production_refuses_every_host_and_a_derived_encryption_key():
    wildcard = manage("check", env={**PRODUCTION_ENV, "ALLOWED_HOSTS": "*"})
    no_keys = manage("check", env={k: v for k, v in PRODUCTION_ENV.items() if k != "FIELD_ENCRYPTION_KEYS"})

    assert wildcard.returncode != 0 and "not '*'" in wildcard.stderr
    assert no_keys.returncode != 0 and "FIELD_ENCRYPTION_KEYS must be set" in no_keys.stderr
