import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import psutil
from django.conf import settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_make_run_serves_web_worker_and_beat_and_ctrl_c_stops_everything_it_started(tmp_path):
    # `make run` is `manage.py runplatform` once .venv exists; here with its own var/ and port.
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}}
    env.update(SWITCHBOARD_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="platform_site.settings")
    output = tmp_path / "run.log"
    with open(output, "w") as log:
        platform = subprocess.Popen(
            [sys.executable, "manage.py", "runplatform", "--port", str(port)],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        status, body = 0, {}
        while time.monotonic() < deadline and not (status == 200 and body["heartbeat"]["status"] == "ok"):
            time.sleep(0.5)
            try:
                status, body = get_json(f"http://127.0.0.1:{port}/readyz")
            except OSError:
                continue
        printed = output.read_text()
        assert status == 200, printed[-3000:]
        assert body["heartbeat"]["status"] == "ok", "beat and the worker did not record a heartbeat"
        assert f"http://127.0.0.1:{port}/admin/" in printed
        assert "operator  password: " in printed and "demo      password: " in printed
    finally:
        os.killpg(platform.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        platform.wait(timeout=60)

    assert "Stopping embedded postgres, redis" in output.read_text()
    assert not (tmp_path / "postgres" / "postmaster.pid").exists()
    assert processes_mentioning(str(tmp_path)) == []


def processes_mentioning(text: str) -> list[str]:
    """Command lines that name `text` (postgres names its data directory, redis-server its socket)."""
    commands = (" ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"]))
    return [command for command in commands if text in command]
