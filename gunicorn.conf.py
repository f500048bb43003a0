"""gunicorn reads this file from the working directory: its own log lines take the platform's format (LOG_FORMAT).

Requests are logged by core.correlation (with the request id), so gunicorn's access log stays off.

Metrics (core/metrics_dir.py): the master puts PROMETHEUS_MULTIPROC_DIR in the environment before any
worker starts, wipes the directory as the server starts (unless METRICS_WIPE_ON_START=false: runplatform
wiped it for every process it starts) and takes a worker that exits out of the live gauges.
"""

from core import log_formats, metrics_dir

METRICS_DIR = metrics_dir.ensure()

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"lines": log_formats.formatter()},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "lines"}},
    "loggers": {
        "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": [], "propagate": False},
    },
}


def on_starting(server):
    if metrics_dir.wipe_on_start():
        metrics_dir.wipe(METRICS_DIR)


def child_exit(server, worker):
    from prometheus_client import multiprocess  # here, the variable set: never in single-process mode

    multiprocess.mark_process_dead(worker.pid, str(METRICS_DIR))
