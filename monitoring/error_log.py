"""Records at ERROR or above from the platform's own code, kept in a capped Redis stream for the alert rules.

`ErrorLogHandler` sits on the root logger of every process (settings.LOGGING). It never blocks the code that
logs: a record is put in a bounded buffer and a daemon thread writes the buffer to Redis twice a second, in one
pipeline. With Redis unreachable the records are dropped (the console log still has them). Only the logger's
name, the first 300 characters of the message and the request id are kept, for a week at most 1,000 records.
"""

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime

STREAM = "sb:log:errors"
MAX_RECORDS = 1000
FLUSH_SECONDS = 0.5
BUFFER = 200  # records waiting to be written; more in half a second are dropped

# The top-level names of the loggers that are the platform's own code; django.request logs our 500s.
OWN_LOGGERS = frozenset(
    {
        "switchboard",
        "accounts",
        "agents",
        "core",
        "memory",
        "monitoring",
        "platform_site",
        "quotas",
        "tasks",
        "workflows",
    }
)


def is_own(name: str) -> bool:
    return name.split(".", 1)[0] in OWN_LOGGERS or name == "django.request"


class ErrorLogHandler(logging.Handler):
    def __init__(self, level=logging.ERROR):
        super().__init__(level)
        self._buffer: deque = deque(maxlen=BUFFER)
        self._wake = threading.Event()
        self._pid = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.ERROR or not is_own(record.name):
            return
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break the caller
            message = str(record.msg)
        entry = {
            "ts": f"{record.created:.3f}",
            "logger": record.name[:100],
            "message": message[:300],
            "request_id": str(getattr(record, "request_id", "") or "")[:128],
        }
        self._buffer.append(entry)
        self._ensure_writer()

    def _ensure_writer(self) -> None:
        if self._pid != os.getpid():  # first record in this process (a forked worker has no thread)
            self._pid = os.getpid()
            threading.Thread(target=self._write_forever, name="error-log-writer", daemon=True).start()

    def _write_forever(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            if self._buffer:
                self._write()

    def _write(self) -> None:
        entries = []
        while self._buffer:
            entries.append(self._buffer.popleft())
        try:
            pipe = _redis().pipeline(transaction=False)
            for entry in entries:
                pipe.xadd(STREAM, entry, maxlen=MAX_RECORDS, approximate=True)
            pipe.expire(STREAM, 7 * 86400)
            pipe.execute()
        except Exception:  # Redis down: dropped, never retried into the caller's path
            pass


def _redis():
    from django_redis import get_redis_connection

    return get_redis_connection("default")


@dataclass(frozen=True)
class ErrorRecord:
    at: datetime
    logger: str
    message: str
    request_id: str


def since(start: datetime, limit: int = MAX_RECORDS) -> list[ErrorRecord] | None:
    """The records logged since `start`, oldest first; None when Redis cannot say."""
    try:
        rows = _redis().xrange(STREAM, min=f"{int(start.timestamp() * 1000)}-0", max="+", count=limit)
    except Exception:
        return None
    records = []
    for _, fields in rows:
        fields = {key.decode(): value.decode() for key, value in fields.items()}
        records.append(
            ErrorRecord(
                at=datetime.fromtimestamp(float(fields["ts"]), tz=start.tzinfo),
                logger=fields["logger"],
                message=fields["message"],
                request_id=fields["request_id"],
            )
        )
    return records
