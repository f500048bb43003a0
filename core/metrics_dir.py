"""Where every process of the platform writes its Prometheus samples: prometheus_client's multiprocess mode.

prometheus_client chooses its mode once, when it is first imported: with `PROMETHEUS_MULTIPROC_DIR` in the
environment, each process writes its samples to memory-mapped files of its own there (named by pid), and
`/metrics` (platform_site/metrics.py) adds up the files of every process on the host. So the variable must
be set before anything imports prometheus_client: the settings call `ensure()` (every Django process: web
workers, both Celery workers, beat, the recorder, management commands), and gunicorn.conf.py calls it in
gunicorn's master, whose workers inherit it.

The files are wiped once when the platform starts, while none of its processes runs: by `runplatform`
before it starts the Procfile, else by gunicorn as it starts (`on_starting` in gunicorn.conf.py, unless
`METRICS_WIPE_ON_START=false`). Never while other processes write there: a process whose file was deleted
goes on writing to a file nobody reads. This module imports neither Django nor prometheus_client.
"""

import os
from pathlib import Path

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
WIPE_VARIABLE = "METRICS_WIPE_ON_START"


def default() -> Path:
    """`metrics` under the var dir, read as platform_site.embedded reads it (SWITCHBOARD_VAR_DIR, else ./var)."""
    var_dir = os.environ.get("SWITCHBOARD_VAR_DIR", Path(__file__).resolve().parent.parent / "var")
    return Path(var_dir).resolve() / "metrics"


def ensure(fallback: Path | None = None) -> Path:
    """The directory: PROMETHEUS_MULTIPROC_DIR if set, else `fallback` or the default; created, and put in
    the environment (for prometheus_client, and for the processes this one starts)."""
    path = Path(os.environ.get(VARIABLE) or fallback or default())
    path.mkdir(parents=True, exist_ok=True)
    os.environ[VARIABLE] = str(path)
    return path


def wipe_on_start() -> bool:
    """Whether gunicorn wipes the directory as it starts: not when a supervisor did (runplatform), nor when
    other processes of the platform write there and outlive a web server's restart."""
    value = os.environ.get(WIPE_VARIABLE, "true").strip().lower()
    if value not in {"true", "false", "1", "0", "yes", "no", "on", "off"}:
        raise ValueError(f"{WIPE_VARIABLE} must be true or false, not {value!r}")
    return value in {"true", "1", "yes", "on"}


def wipe(path: Path) -> int:
    """Delete every process's files; call it only while no process of the platform writes there."""
    removed = 0
    for file in Path(path).glob("*.db"):
        file.unlink(missing_ok=True)
        removed += 1
    return removed
