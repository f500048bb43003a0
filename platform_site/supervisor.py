"""Runs the Procfile's processes for `make run` and keeps them running.

A process that exits is started again (after 1 s, doubling up to 30 s while it keeps failing quickly) and
the output says so; the embedded Redis and PostgreSQL, when this run started them, are watched too and
started again if they die. Each line of output is prefixed with the time and the process's name. Ctrl-C
or SIGTERM stops everything (a process gets 20 s to finish, then is killed).
"""

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

RESTART_DELAY_MAX = 30
STABLE_AFTER_SECONDS = 60  # a process that ran this long restarts after the shortest delay again
WATCH_INTERVAL = 1.0


@dataclass
class Process:
    name: str
    command: str
    popen: subprocess.Popen | None = None
    started_at: float = 0.0
    delay: float = 1.0
    restart_at: float | None = None


def read_procfile(path: Path) -> list[Process]:
    processes = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and ":" in line:
            name, command = line.split(":", 1)
            processes.append(Process(name.strip(), command.strip()))
    return processes


class Supervisor:
    def __init__(self, processes: list[Process], env: dict, cwd: Path, services=None, out=sys.stdout):
        self.processes = processes
        self.env = env
        self.cwd = cwd
        self.services = services or {}  # name -> (is_alive, start): embedded servers to keep up
        self.out = out
        self.stopping = threading.Event()
        self.width = max(len(process.name) for process in processes + [Process("system", "")])
        self.lock = threading.Lock()

    def say(self, name: str, text: str) -> None:
        with self.lock:
            self.out.write(f"{datetime.now():%H:%M:%S} {name:<{self.width}} | {text}\n")
            self.out.flush()

    def run(self) -> None:
        for process in self.processes:
            self._start(process)
        while not self.stopping.wait(WATCH_INTERVAL):
            self._watch_services()
            for process in self.processes:
                self._watch(process)
        self._stop_all()

    def stop(self, *_) -> None:
        self.stopping.set()

    def _start(self, process: Process) -> None:
        process.popen = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {process.command}"],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # a Ctrl-C reaches us alone; we stop the children in order
        )
        process.started_at, process.restart_at = time.monotonic(), None
        self.say("system", f"{process.name} started (pid {process.popen.pid})")
        threading.Thread(target=self._relay, args=(process, process.popen), daemon=True).start()

    def _relay(self, process: Process, popen: subprocess.Popen) -> None:
        for line in popen.stdout:
            self.say(process.name, line.rstrip("\n"))

    def _watch(self, process: Process) -> None:
        now = time.monotonic()
        if process.restart_at is not None:
            if now >= process.restart_at:
                self._start(process)
            return
        code = process.popen.poll()
        if code is None:
            return
        if now - process.started_at > STABLE_AFTER_SECONDS:
            process.delay = 1.0
        self.say("system", f"{process.name} exited with code {code}; restarting it in {process.delay:g} s")
        process.restart_at = now + process.delay
        process.delay = min(process.delay * 2, RESTART_DELAY_MAX)

    def _watch_services(self) -> None:
        for name, (is_alive, start) in self.services.items():
            if not is_alive():
                self.say("system", f"the embedded {name} is not running; starting it again")
                try:
                    start()
                    self.say("system", f"the embedded {name} is running again")
                except Exception as error:  # keep watching: it is tried again at the next tick
                    self.say("system", f"the embedded {name} did not start: {error}")

    def _stop_all(self) -> None:
        running = [process for process in self.processes if process.popen and process.popen.poll() is None]
        for process in running:
            self.say("system", f"stopping {process.name}")
            os.killpg(process.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in running:
            try:
                process.popen.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(process.popen.pid, signal.SIGKILL)
                process.popen.wait()
            self.say("system", f"{process.name} stopped")
