import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import psutil
import requests
from django.conf import settings

from platform_site import embedded


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


def wait_ready(port: int, timeout: float = 90, heartbeat: bool = True) -> tuple[int, dict]:
    deadline = time.monotonic() + timeout
    status, body = 0, {}
    while time.monotonic() < deadline:
        try:
            status, body = get_json(f"http://127.0.0.1:{port}/readyz")
        except OSError:
            status = 0
        if status == 200 and (not heartbeat or body["heartbeat"]["status"] == "ok"):
            break
        time.sleep(0.1)
    return status, body


def children(pid: int, *words: str) -> list[psutil.Process]:
    """The processes `pid` started whose command line has all the words."""
    found = []
    for child in psutil.Process(pid).children():
        try:
            command = " ".join(child.cmdline())
        except psutil.NoSuchProcess:
            continue
        if all(word in command for word in words):
            found.append(child)
    return found


def test_make_run_serves_every_process_and_ctrl_c_stops_everything_it_started(tmp_path):
    # `make run` is `manage.py runplatform` once .venv exists; here with its own var/ and port.
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}}
    env.update(SWITCHBOARD_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="platform_site.settings")
    sockets = str(embedded.socket_dir(tmp_path))  # Redis's socket: not under tmp_path when that path is long
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
        status, body = wait_ready(port)
        printed = output.read_text()
        assert status == 200, printed[-3000:]
        assert body["heartbeat"]["status"] == "ok", "beat and the worker did not record a heartbeat"
        assert f"http://127.0.0.1:{port}/admin/" in printed
        assert "operator  password: " in printed and "demo      password: " in printed
        assert "recorder | INFO switchboard.recording: recording runs as " in printed  # readable lines, not JSON

        # An agent call made by the agents worker is answered, and its run written by the recorder
        task, runs = call_the_demo_agent_in_the_background(port, printed)
        assert task["status"] == "succeeded" and task["result"]["output"] == "echo: hello from the test"
        assert [run["id"] for run in runs] == [task["result"]["run"]]

        # When the worker dies, the web goes on serving and the worker is started again
        [worker] = children(platform.pid, "celery", "worker", "celery,webhooks")
        worker.kill()
        assert wait_ready(port, timeout=30, heartbeat=False)[0] == 200
        _wait_for(lambda: "worker exited with code -9; restarting it" in output.read_text(), "no restart reported")
        _wait_for(
            lambda: any(p.pid != worker.pid for p in children(platform.pid, "celery", "worker", "celery,webhooks")),
            "no worker",
        )

        # When the embedded Redis dies, it is started again
        [redis] = [psutil.Process(pid) for pid in _pids_mentioning(sockets, "redis-server")]
        redis.kill()
        _wait_for(lambda: "the embedded Redis is running again" in output.read_text(), "Redis was not restarted")
        assert wait_ready(port, timeout=30, heartbeat=False)[0] == 200
    finally:
        os.killpg(platform.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        platform.wait(timeout=60)

    assert "Stopping embedded postgres, redis" in output.read_text()
    assert not (tmp_path / "postgres" / "postmaster.pid").exists()
    assert processes_mentioning(str(tmp_path)) == processes_mentioning(sockets) == []


def call_the_demo_agent_in_the_background(port: int, printed: str) -> tuple[dict, list]:
    """As the demo user: sign in, make a key, invoke the demo agent with ?async=1; (its task once finished,
    the runs the API lists once the recorder has written them)."""
    base = f"http://127.0.0.1:{port}"
    password = re.search(r"demo {6}password: (\S+)", printed).group(1)
    session = requests.Session()
    assert session.post(f"{base}/api/v1/auth/login", json={"username": "demo", "password": password}).ok
    created = session.post(
        f"{base}/api/v1/keys",
        json={"name": "make run test", "scopes": ["agents:read", "agents:invoke", "tasks:read"]},
        headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": base},
    )
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {created.json()['key']}"
    [agent] = [a for a in api.get(f"{base}/api/v1/agents").json()["results"] if a["name"] == "Echo helper"]
    started = api.post(
        f"{base}/api/v1/agents/{agent['id']}/invoke?async=1",
        json={"messages": [{"role": "user", "content": "hello from the test"}]},
    )
    assert started.status_code == 202, started.text
    task = {}
    _wait_for(
        lambda: task.update(api.get(started.headers["Location"]).json()) or task["status"] == "succeeded", "no answer"
    )
    runs = []
    _wait_for(lambda: runs.extend(api.get(f"{base}/api/v1/runs").json()["results"]) or runs, "no run written")
    return task, runs


def _wait_for(condition, message: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(message)


def _pids_mentioning(*words: str) -> list[int]:
    return [
        process.pid
        for process in psutil.process_iter(["cmdline"])
        if all(word in " ".join(process.info["cmdline"] or []) for word in words)
    ]


def processes_mentioning(text: str) -> list[str]:
    """Command lines that name `text` (postgres names its data directory, redis-server its socket)."""
    commands = (" ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"]))
    return [command for command in commands if text in command]
