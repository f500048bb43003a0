"""The log line formats, shared by Django's LOGGING and gunicorn's own logger (`LOG_FORMAT`).

`json` (the default): one JSON object per line, for log shippers. `text`: one readable line per record, what
`make run` prints, with the same fields (request, user and task ids, and any extra) as `key=value` after the
message.
"""

import logging
import os

JSON_FORMATTER = {
    "()": "pythonjsonlogger.json.JsonFormatter",
    "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
    "rename_fields": {"asctime": "timestamp", "levelname": "level", "name": "logger", "process": "pid"},
    "datefmt": "%Y-%m-%dT%H:%M:%S%z",
}
TEXT_FORMATTER = {"()": "core.log_formats.TextFormatter"}

# What every LogRecord has: anything else on a record was passed as `extra` (or set by a filter). Left out too:
# what only repeats the message (Celery's `data`, uvicorn's `color_message`).
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}
_REPEATS = {"data", "color_message"}


def formatter() -> dict:
    """The formatter `LOG_FORMAT` names (read from the environment: gunicorn's config has no settings)."""
    chosen = os.environ.get("LOG_FORMAT", "json").strip().lower()
    if chosen not in ("json", "text"):
        raise ValueError(f"LOG_FORMAT must be 'json' or 'text', not {chosen!r}.")
    return TEXT_FORMATTER if chosen == "text" else JSON_FORMATTER


class TextFormatter(logging.Formatter):
    """`LEVEL logger: message key=value...`, without the fields that are unset (no request, no task)."""

    def __init__(self):
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [
            f"{name}={value}"
            for name, value in record.__dict__.items()
            if name not in _STANDARD and name not in _REPEATS and value not in (None, "")
        ]
        if not extras:
            return line
        head, newline, rest = line.partition("\n")  # a traceback stays below the first line
        return f"{head} {' '.join(extras)}{newline}{rest}"
