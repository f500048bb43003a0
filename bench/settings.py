"""Settings for benchmark servers: the development settings plus bench-only URLs (a do-nothing endpoint)."""

from platform_site.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
LOG_LEVEL = "WARNING"
LOGGING["root"]["level"] = "WARNING"  # noqa: F405  (an access-log line per request would be measured too)
