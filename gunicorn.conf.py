"""gunicorn reads this file from the working directory: its own log lines become JSON like the platform's.

Requests are logged by core.correlation (with the request id), so gunicorn's access log stays off.
"""

from core.json_logs import JSON_FORMATTER

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": JSON_FORMATTER},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "loggers": {
        "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": [], "propagate": False},
    },
}
