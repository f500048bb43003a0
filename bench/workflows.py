"""The workflow engine against instant fake agents and a slow fake provider (issue 16): what the engine adds
to each step, a 10-step sequential run end to end, no-op steps per second, and a 50-way fan-out with one and
with two agents worker processes against the same work as a plain Celery group.

Everything runs on this machine with bench.settings and DEBUG=false, the processes started as the Procfile
starts them: the default-queue worker (`celery worker --queues celery`, prefork, concurrency 1 = one worker
process, then 2), the agents worker (`--queues agents --pool threads --concurrency 64`, one process, then a
second one), and the run recorder (`manage.py record_runs`). The provider is bench/fast_provider.py twice
(asyncio, never the bottleneck): one answering at once, one after --slow-ms. The agent type's cache is off
(cache_ttl_seconds=0), so every agent step calls the provider. Runs are started in this process with
workflows.services.runs.run_start (what the API calls); the figures come from the rows the engine writes
(WorkflowRun created_at / finished_at; StepRun queued_at / started_at / finished_at) and, for agent steps,
the pipeline's own time (AgentRun.latency_ms).

  1. sequential: --runs runs, one at a time, of a chain of --steps transform steps (nothing to do: all engine),
     then of --steps agent steps against the instant provider. Per step: the cycle (the previous step's finish
     to this step's finish), split into the gap (previous finish -> queued -> started: the scheduling
     transaction, the broker, the worker) and the step's own time (claim, context, the kind, the outcome's
     transaction); for agent steps the cycle less the pipeline's own time. The run end to end (created ->
     finished).
  2. fan-out: a map over --fanout items (max_concurrency = --fanout) whose step is an agent step, against the
     slow and the instant provider, --repeats times each, against a Celery group of --fanout tasks
     (bench/workflow_tasks.py: the same pipeline call, no engine); one agents worker process, then two.
  3. throughput: --parallel-runs runs of --parallel-steps independent transform steps started at once, and one
     map over --map-items items (a transform step, max_concurrency --map-concurrency): steps per second, with
     one default-queue worker process, then two.
  4. in this process: step_execute called directly (the broker replaced by a list), SQL statements and time
     per step, by kind of statement.

Each phase prints the CPU time the processes spent during it (workers, PostgreSQL, Redis, recorder, this
process), per step. Figures and ratios only, no assertions; the machine is shared, so compare within one run.

    SWITCHBOARD_VAR_DIR=/tmp/bench-workflows-var .venv/bin/python bench/workflows.py \
        [--runs 30] [--steps 10] [--fanout 50] [--repeats 3] [--slow-ms 500] [--parallel-runs 20] \
        [--parallel-steps 20] [--map-items 200] [--map-concurrency 100] [--phases sequential,fanout,throughput,sql]
"""

import argparse
import json
import math
import os
import re
import signal
import statistics
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
# Run as a script, this file's folder comes first on the path, where `workflows` and `memory` are benchmarks,
# not the apps: the repository's root goes first instead, and bench/ off the path.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if p and Path(p).resolve() != BENCH]
os.environ.setdefault("SWITCHBOARD_VAR_DIR", "/tmp/bench-workflows-var")

from bench import gateway  # noqa: E402  (processes, ports, the fake provider)

USER = "bench-workflows"
GOALS = {"step_p50": 10.0, "step_p99": 30.0, "run_p50": 150.0, "fanout_s": 1.5}


# --- figures ----------------------------------------------------------------------------------------------


def pct(values, q: float):
    """The q-th percentile (nearest rank); None for no values."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    return values[max(0, math.ceil(q / 100 * len(values)) - 1)]


def ms(a, b):
    return None if a is None or b is None else (b - a).total_seconds() * 1000


def f(value, spec=".1f", unit=""):
    return "-" if value is None else f"{format(value, spec)}{unit}"


def verdict(value, goal) -> str:
    if value is None:
        return "NO FIGURE"
    if value <= goal:
        return f"PASS ({goal - value:.3g} under)"
    return f"MISS by {value - goal:.3g} (x{value / goal:.2f} the goal)"


def machine() -> str:
    model = ""
    try:
        found = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        model = f", {found.group(1).strip()}" if found else ""
    except OSError:
        pass
    load = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"{os.cpu_count()} cores (shared){model}; load average {load} (1 / 5 / 15 min)"


def load1() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


# --- CPU spent by each process during a phase ------------------------------------------------------------


class CpuMeter:
    """CPU seconds (user + system) of each group of processes: a process, its live descendants, and the
    children it has reaped (a PostgreSQL backend that ended, a pool process replaced)."""

    def __init__(self):
        self.groups: dict[str, list[tuple[int, bool]]] = {}

    def add(self, name: str, pid: int | None, tree: bool = True) -> None:
        """`tree`: with its descendants (not for this process, whose children are the processes measured)."""
        if pid:
            self.groups.setdefault(name, []).append((pid, tree))

    def drop(self, name: str) -> None:
        self.groups.pop(name, None)

    def snapshot(self) -> dict[str, float]:
        import psutil

        totals = {}
        for name, pids in self.groups.items():
            total = 0.0
            for pid, tree in pids:
                try:
                    root = psutil.Process(pid)
                    times = root.cpu_times()
                    if not tree:
                        total += times.user + times.system
                        continue
                    total += times.children_user + times.children_system
                    for process in [root, *root.children(recursive=True)]:
                        try:
                            times = process.cpu_times()
                            total += times.user + times.system
                        except psutil.Error:
                            pass
                except psutil.Error:
                    pass
            totals[name] = total
        busy = psutil.cpu_times()
        machine = busy.user + busy.nice + busy.system + busy.irq + busy.softirq + getattr(busy, "steal", 0)
        totals["everything else on the machine"] = machine - sum(totals.values())

        totals.update(connections_opened())
        return totals

    def report(self, before: dict, after: dict, per: int = 0, unit: str = "step") -> str:
        parts, opened = [], []
        for name, value in after.items():
            spent = value - before.get(name, value)
            if name in CONNECTION_COUNTERS:
                per_unit = f" ({spent / per:.2f}/{unit})" if per else ""
                opened.append(f"{name} {spent:.0f}{per_unit}")
                continue
            if spent < 0.005:
                continue
            per_unit = f" ({spent * 1000 / per:.2f} ms/{unit})" if per else ""
            parts.append(f"{name} {spent:.2f} s{per_unit}")
        return (
            "CPU during it: "
            + (", ".join(parts) or "nothing measurable")
            + "; connections opened: "
            + ", ".join(opened)
        )


CONNECTION_COUNTERS = ("PostgreSQL sessions", "Redis connections")


def connections_opened() -> dict:
    """Connections the servers have accepted so far (pg_stat_database.sessions, Redis's
    total_connections_received): a figure per step shows connections opened per task."""
    import psycopg
    import redis

    counts = {}
    try:
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as connection:
            counts["PostgreSQL sessions"] = connection.execute("SELECT sum(sessions) FROM pg_stat_database").fetchone()[
                0
            ]
        counts["PostgreSQL sessions"] -= 1  # this look's own
    except Exception:
        pass
    try:
        client = redis.Redis.from_url(os.environ["REDIS_URL"])
        counts["Redis connections"] = client.info("stats")["total_connections_received"] - 1
        client.close()
    except Exception:
        pass
    return counts


# --- the platform: services, fixtures, processes --------------------------------------------------------


def setup_django(urls: dict, settings_module: str = "bench.settings") -> None:
    os.environ.update({**gateway.PLATFORM_ENV, "DATABASE_URL": urls["db"], "REDIS_URL": urls["redis"]})
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def services() -> dict:
    from platform_site import embedded

    embedded.ensure_postgres()
    return {"db": embedded.postgres_url(), "redis": embedded.redis_url(db=0)}


def service_pids() -> dict:
    from platform_site import embedded

    postmaster = embedded._postmaster()
    redis_pid = None
    try:
        redis_pid = int((embedded.redis_dir() / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        pass
    return {"PostgreSQL": postmaster.pid if postmaster else None, "Redis": redis_pid}


def definitions(fanout: int) -> dict[str, dict]:
    def chain(prefix, count, step):
        steps = []
        for n in range(1, count + 1):
            spec = {"id": f"{prefix}{n}", **step(n)}
            if n > 1:
                spec["needs"] = [f"{prefix}{n - 1}"]
            steps.append(spec)
        return steps

    def fan(agent):
        return {
            "version": 1,
            "name": f"fanout-{agent}",
            "inputs": {"items": {"type": "array"}},
            "steps": [
                {
                    "id": "fan",
                    "kind": "map",
                    "items": "inputs.items",
                    "max_concurrency": min(fanout, 100),
                    "step": {"id": "ask", "kind": "agent", "agent": agent, "input": "Item ${item} of ${run.id}"},
                }
            ],
        }

    return {
        "chain-transform": lambda n: {
            "version": 1,
            "name": "chain-transform",
            "steps": chain("s", n, lambda i: {"kind": "transform", "output": f"step {i}"}),
        },
        "chain-agent": lambda n: {
            "version": 1,
            "name": "chain-agent",
            "steps": chain(
                "s", n, lambda i: {"kind": "agent", "agent": "wf-instant", "input": f"Step {i} of ${{run.id}}"}
            ),
        },
        "parallel-transform": lambda n: {
            "version": 1,
            "name": "parallel-transform",
            "steps": [{"id": f"p{i}", "kind": "transform", "output": f"step {i}"} for i in range(1, n + 1)],
        },
        "map-transform": lambda n: {
            "version": 1,
            "name": "map-transform",
            "inputs": {"items": {"type": "array"}},
            "steps": [
                {
                    "id": "each",
                    "kind": "map",
                    "items": "inputs.items",
                    "max_concurrency": n,
                    "step": {"id": "one", "kind": "transform", "output": "${item}"},
                }
            ],
        },
        "fanout-slow": lambda _: fan("wf-slow"),
        "fanout-instant": lambda _: fan("wf-instant"),
    }


def make_fixtures(provider: gateway.Provider, args) -> dict:
    """The bench's user, providers, models, agent type (cache off), agents and workflows, by the platform's own
    services; earlier runs left unfinished by an interrupted bench are cancelled."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from accounts.services import user_register
    from agents.models import AgentType, LanguageModel, Provider
    from agents.services.agents import agent_create, agent_update
    from workflows.models import StepRun, Workflow, WorkflowRun
    from workflows.services.workflows import workflow_create, workflow_save

    user = get_user_model().objects.filter(username=USER).first() or user_register(
        username=USER, email=f"{USER}@example.com", password="bench-passphrase-123"
    )
    models = {}
    for name, url in (("bench-wf-instant", provider.fast_url), ("bench-wf-slow", provider.slow_url)):
        row, _ = Provider.objects.update_or_create(
            name=name, defaults={"kind": "openai", "base_url": url, "max_retries": 0, "timeout_seconds": 60}
        )
        models[name], _ = LanguageModel.objects.update_or_create(
            name=name,
            defaults={
                "provider": row,
                "provider_model": "bench",
                "input_price_per_mtok": 1,
                "output_price_per_mtok": 2,
            },
        )
    agent_type, _ = AgentType.objects.update_or_create(
        slug="bench-workflows", defaults={"default_model": models["bench-wf-instant"], "cache_ttl_seconds": 0}
    )
    agents = {}
    for name, model in (("wf-instant", models["bench-wf-instant"]), ("wf-slow", models["bench-wf-slow"])):
        agent = user.agents.filter(name=name).first()
        if agent is None:
            agent = agent_create(owner=user, agent_type=agent_type, name=name, model=model)
        elif agent.model_id != model.pk or agent.agent_type_id != agent_type.pk:
            agent = agent_update(agent=agent, agent_type=agent_type, model=model)
        agents[name] = agent.pk

    sizes = {
        "chain-transform": args.steps,
        "chain-agent": args.steps,
        "parallel-transform": args.parallel_steps,
        "map-transform": args.map_concurrency,
    }
    workflows = {}
    for name, build in definitions(args.fanout).items():
        source = json.dumps(build(sizes.get(name)), indent=2)
        workflow = Workflow.objects.filter(owner=user, name=name).first()
        if workflow is None:
            workflow = workflow_create(owner=user, name=name, source=source, format="json")
        elif workflow.current_version.source != source:
            workflow_save(workflow=workflow, user=user, source=source, format="json", note="bench")
        workflows[name] = Workflow.objects.select_related("current_version").get(pk=workflow.pk)

    now = timezone.now()
    stale = list(WorkflowRun.objects.filter(owner=user, status=WorkflowRun.Status.RUNNING).values_list("pk", flat=True))
    StepRun.objects.filter(run_id__in=stale, status__in=["pending", "queued", "running", "waiting"]).update(
        status="cancelled", finished_at=now, lease_until=None, wake_at=None
    )
    WorkflowRun.objects.filter(pk__in=stale).update(status="cancelled", finished_at=now, error="bench restarted")
    return {"user": user, "agents": agents, "workflows": workflows}


def purge_queues() -> None:
    """Messages an interrupted earlier bench left in the broker (it keeps them across restarts)."""
    from platform_site.celery import app

    with app.connection_for_write() as connection:
        for queue in ("celery", "agents"):
            try:
                connection.default_channel.queue_purge(queue)
            except Exception:
                pass


class Workers:
    """The Celery workers, started and stopped as the phases need them; each waited for with a ping."""

    def __init__(self, processes: gateway.Processes, env: dict, cpu: CpuMeter, pool: str):
        self.processes, self.env, self.cpu, self.pool = processes, env, cpu, pool
        self.default = None
        self.default_concurrency = 0
        self.agents: list = []

    def _start(self, name: str, hostname: str, options: list):
        process = self.processes.start(
            name,
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "platform_site",
                "worker",
                *options,
                "--loglevel",
                "WARNING",
                "--hostname",
                hostname,
            ],
            cwd=ROOT,
            env=self.env,
        )
        wait_for_worker(hostname, process)
        return process

    def start_default(self, concurrency: int) -> None:
        if self.default is not None:
            self.processes.stop(self.default)
            self.cpu.drop("default worker")
        hostname = f"bench-wf-default-{concurrency}-{os.getpid()}@bench"
        pool = (
            ["--pool", "prefork", "--concurrency", str(concurrency)] if self.pool == "prefork" else ["--pool", "solo"]
        )
        self.default = self._start(f"worker-default-{concurrency}", hostname, ["--queues", "celery", *pool])
        self.default_concurrency = concurrency
        self.cpu.add("default worker", self.default.pid)

    def add_agents(self) -> None:
        n = len(self.agents) + 1
        hostname = f"bench-wf-agents-{n}-{os.getpid()}@bench"
        process = self._start(
            f"worker-agents-{n}",
            hostname,
            [
                "--queues",
                "agents",
                "--pool",
                "threads",
                "--concurrency",
                "64",
                "--include",
                "bench.workflow_tasks",
            ],
        )
        self.agents.append(process)
        self.cpu.add("agents worker(s)", process.pid)


def wait_for_worker(hostname: str, process, timeout: float = 180) -> None:
    from platform_site.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker {hostname} exited with {process.returncode}; see its log")
        if app.control.ping(destination=[hostname], timeout=0.5):
            return
    raise TimeoutError(f"worker {hostname} did not answer a ping in {timeout} s")


# --- runs -------------------------------------------------------------------------------------------------


def start_run(fixtures, name: str, inputs=None):
    from workflows.services.runs import run_start

    run, _ = run_start(workflow=fixtures["workflows"][name], user=fixtures["user"], inputs=inputs or {})
    return run.pk


_poller = None


def wait_runs(ids, timeout: float = 120, every: float = 0.02) -> bool:
    """Until the runs have ended. The figures come from the rows' timestamps, so the polling only spaces the
    runs out; it is one plain psycopg query every `every` s (the ORM here cost as much CPU as the engine)."""
    global _poller
    import psycopg

    if _poller is None:
        _poller = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
    ids = [str(pk) for pk in ids]
    deadline = time.monotonic() + timeout
    query = "SELECT count(*) FROM workflows_workflowrun WHERE id = ANY(%s::uuid[]) AND status = 'running'"
    while _poller.execute(query, [ids]).fetchone()[0]:
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


def runs_of(ids) -> list[dict]:
    from workflows.models import WorkflowRun

    return list(WorkflowRun.objects.filter(pk__in=ids).values("pk", "status", "error", "created_at", "finished_at"))


def failures(runs) -> str:
    bad = Counter(run["status"] for run in runs if run["status"] != "succeeded")
    if not bad:
        return ""
    first = next(run for run in runs if run["status"] != "succeeded")
    return f"  NOT ALL SUCCEEDED: {dict(bad)}; first error: {first['error'][:300] or '(none)'}"


def agent_latency(agent_run_ids, timeout: float = 20) -> dict:
    """AgentRun.latency_ms (the pipeline's own time) by run id, once the recorder has written them."""
    from agents.models import AgentRun

    wanted = {pk for pk in agent_run_ids if pk}
    deadline = time.monotonic() + timeout
    found = {}
    while True:
        found = dict(AgentRun.objects.filter(pk__in=wanted).values_list("pk", "latency_ms"))
        if len(found) >= len(wanted) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


# --- 1. sequential runs -----------------------------------------------------------------------------------


def sequential(args, fixtures, cpu: CpuMeter, results: dict) -> None:
    from workflows.models import StepRun

    print(
        f"\n[1] sequential: {args.runs} runs one after another of a chain of {args.steps} steps "
        f"(after {args.warmup} warm-up runs); times in ms",
        flush=True,
    )
    print(
        f"  {'':<34}{'p50':>8}{'p99':>8}{'max':>8}   (cycle = previous step finished -> this one finished; "
        "gap = previous finished -> this started)"
    )
    for kind, name in (("transform", "chain-transform"), ("agent (instant)", "chain-agent")):
        for _ in range(args.warmup):
            wait_runs([start_run(fixtures, name)])
        before = cpu.snapshot()
        ids = []
        for _ in range(args.runs):
            run_id = start_run(fixtures, name)
            if not wait_runs([run_id]):
                print(f"  {kind}: a run did not finish in 120 s; stopping this line", flush=True)
                break
            ids.append(run_id)
        after = cpu.snapshot()
        runs = {run["pk"]: run for run in runs_of(ids)}
        steps = defaultdict(list)
        for step in StepRun.objects.filter(run_id__in=ids, parent=None).values(
            "run_id", "step_id", "queued_at", "started_at", "finished_at", "agent_run_id", "status"
        ):
            steps[step["run_id"]].append(step)
        latency = agent_latency([s["agent_run_id"] for rows in steps.values() for s in rows]) if "agent" in kind else {}
        figures = defaultdict(list)
        for run_id, rows in steps.items():
            rows.sort(key=lambda s: int(s["step_id"][1:]))
            run = runs[run_id]
            figures["run"].append(ms(run["created_at"], run["finished_at"]))
            figures["per step (run / steps)"].append(ms(run["created_at"], run["finished_at"]) / len(rows))
            figures["run created -> step 1 started"].append(ms(run["created_at"], rows[0]["started_at"]))
            figures["last step finished -> run end"].append(ms(rows[-1]["finished_at"], run["finished_at"]))
            for previous, step in zip(rows, rows[1:], strict=False):
                cycle = ms(previous["finished_at"], step["finished_at"])
                figures["cycle"].append(cycle)
                figures["gap"].append(ms(previous["finished_at"], step["started_at"]))
                figures["  finished -> next queued"].append(ms(previous["finished_at"], step["queued_at"]))
                figures["  queued -> started"].append(ms(step["queued_at"], step["started_at"]))
                own = ms(step["started_at"], step["finished_at"])
                figures["own (started -> finished)"].append(own)
                if step["agent_run_id"] in latency:
                    figures["  of which the pipeline (AgentRun)"].append(latency[step["agent_run_id"]])
                    figures["cycle less the pipeline"].append(cycle - latency[step["agent_run_id"]])
        order = [
            "run",
            "per step (run / steps)",
            "cycle",
            "cycle less the pipeline",
            "gap",
            "  finished -> next queued",
            "  queued -> started",
            "own (started -> finished)",
            "  of which the pipeline (AgentRun)",
            "run created -> step 1 started",
            "last step finished -> run end",
        ]
        print(f"  {kind}: {len(ids)} runs, {sum(len(r) for r in steps.values())} steps; {load1()}")
        for label in order:
            values = figures.get(label)
            if values:
                print(f"    {label:<32}{f(pct(values, 50)):>8}{f(pct(values, 99)):>8}{f(max(values)):>8}")
        print(f"    {cpu.report(before, after, per=sum(len(r) for r in steps.values()))}")
        problem = failures(list(runs.values()))
        if problem:
            print(problem)
        if "agent" in kind and len(latency) < sum(1 for r in steps.values() for s in r if s["agent_run_id"]):
            print("    (some agent runs not yet recorded: the pipeline's time left out for those steps)")
        results[f"seq {kind}"] = {label: values for label, values in figures.items()}


# --- 2. fan-out ---------------------------------------------------------------------------------------------


def group_once(fixtures, agent: str, count: int, tag: str, client, timeout: float = 60) -> dict:
    from celery import group, signature

    key = f"bench:workflows:{tag}"
    client.delete(key)
    user = fixtures["user"]
    tasks = group(
        signature(
            "bench.invoke",
            kwargs={
                "agent_id": fixtures["agents"][agent],
                "user_id": user.pk,
                "text": f"Item {n} of {tag}",
                "tag": tag,
            },
            queue="agents",
        )
        for n in range(count)
    )
    started = time.time()
    tasks.apply_async()
    sent = time.time()
    finished, failed = [], 0
    deadline = time.monotonic() + timeout
    while len(finished) + failed < count and time.monotonic() < deadline:
        popped = client.blpop(key, timeout=1)
        if popped:
            at, outcome = popped[1].decode().split()
            if outcome == "ok":
                finished.append(float(at))
            else:
                failed += 1
    return {
        "wall": (max(finished) - started) if len(finished) == count else None,
        "done": len(finished),
        "failed": failed,
        "sent": (sent - started) * 1000,
        "first": (min(finished) - started) if finished else None,
    }


def workflow_fanout_once(fixtures, name: str, count: int) -> dict:
    from workflows.models import StepRun

    run_id = start_run(fixtures, name, {"items": list(range(count))})
    ok = wait_runs([run_id])
    run = runs_of([run_id])[0]
    rows = list(
        StepRun.objects.filter(run_id=run_id).values("parent_id", "queued_at", "started_at", "finished_at", "status")
    )
    parent = next(row for row in rows if row["parent_id"] is None)
    children = [row for row in rows if row["parent_id"] is not None]
    started = [row["started_at"] for row in children if row["started_at"]]
    finished = [row["finished_at"] for row in children if row["finished_at"]]
    queued = [row["queued_at"] for row in children if row["queued_at"]]
    return {
        "wall": ms(run["created_at"], run["finished_at"]) / 1000 if ok and run["finished_at"] else None,
        "status": run["status"],
        "error": run["error"],
        "map started": ms(run["created_at"], parent["started_at"]),
        "children queued": ms(parent["started_at"], min(queued)) if queued else None,
        "spread of starts": ms(min(started), max(started)) if started else None,
        "first child started": ms(run["created_at"], min(started)) if started else None,
        "child own p50": pct([ms(r["started_at"], r["finished_at"]) for r in children], 50),
        "spread of finishes": ms(min(finished), max(finished)) if finished else None,
        "last finished -> run end": ms(max(finished), run["finished_at"]) if finished else None,
    }


def fanout(args, fixtures, workers: Workers, cpu: CpuMeter, results: dict, client) -> None:
    processes = len(workers.agents)
    print(
        f"\n[2] fan-out x{args.fanout}, {processes} agents worker process{'es' if processes > 1 else ''} "
        f"(threads, 64 each); wall time in s, {args.repeats} times each; {load1()}",
        flush=True,
    )
    for provider, agent, workflow in (
        (f"{args.slow_ms} ms", "wf-slow", "fanout-slow"),
        ("instant", "wf-instant", "fanout-instant"),
    ):
        group_once(fixtures, agent, args.fanout, f"warm-{provider}-{processes}", client)  # both paths warm
        workflow_fanout_once(fixtures, workflow, args.fanout)
        before = cpu.snapshot()
        flows = [workflow_fanout_once(fixtures, workflow, args.fanout) for _ in range(args.repeats)]
        middle = cpu.snapshot()
        groups = [
            group_once(fixtures, agent, args.fanout, f"{provider}-{processes}-{n}-{time.time()}", client)
            for n in range(args.repeats)
        ]
        after = cpu.snapshot()
        flow_walls = [run["wall"] for run in flows if run["wall"] is not None]
        group_walls = [run["wall"] for run in groups if run["wall"] is not None]
        flow_mid = statistics.median(flow_walls) if flow_walls else None
        group_mid = statistics.median(group_walls) if group_walls else None
        print(
            f"  provider {provider:<8} workflow map: {' '.join(f(w, '.3f') for w in flow_walls) or '-'} (median "
            f"{f(flow_mid, '.3f')}); Celery group: {' '.join(f(w, '.3f') for w in group_walls) or '-'} (median "
            f"{f(group_mid, '.3f')}); workflow / group x{flow_mid / group_mid:.2f}"
            if flow_mid and group_mid
            else f"  provider {provider}: workflow {flow_walls} group {group_walls}",
            flush=True,
        )
        parts = {
            key: statistics.median([run[key] for run in flows if run.get(key) is not None] or [float("nan")])
            for key in (
                "map started",
                "children queued",
                "first child started",
                "spread of starts",
                "child own p50",
                "spread of finishes",
                "last finished -> run end",
            )
        }
        print(
            "    the map, medians in ms: run created -> map step started "
            f"{parts['map started']:.1f}; map started -> its children queued {parts['children queued']:.1f}; "
            f"run created -> first child started {parts['first child started']:.1f}; first -> last child started "
            f"{parts['spread of starts']:.1f}; a child's own time p50 {parts['child own p50']:.1f}; first -> last "
            f"child finished {parts['spread of finishes']:.1f}; last child finished -> run end "
            f"{parts['last finished -> run end']:.1f}"
        )
        print(
            f"    workflow: {cpu.report(before, middle, per=args.fanout * args.repeats, unit='item')}\n"
            f"    group:    {cpu.report(middle, after, per=args.fanout * args.repeats, unit='task')}"
        )
        bad = [run for run in flows if run["status"] != "succeeded"]
        if bad:
            print(f"    NOT ALL SUCCEEDED: {bad[0]['status']}: {bad[0]['error'][:300]}")
        if any(run["wall"] is None for run in groups):
            print(
                f"    group: not every task succeeded: succeeded {[run['done'] for run in groups]}, failed "
                f"{[run['failed'] for run in groups]} of {args.fanout} (see the agents workers' logs)"
            )
        results[("fanout", provider, processes)] = {"workflow": flow_mid, "group": group_mid, "parts": parts}


# --- 3. throughput ----------------------------------------------------------------------------------------


def throughput(args, fixtures, workers: Workers, cpu: CpuMeter, results: dict) -> None:
    from workflows.models import StepRun

    n = workers.default_concurrency
    print(
        f"\n[3] no-op steps per second, {n} default-queue worker process{'es' if n > 1 else ''} "
        f"({workers.pool}); {load1()}",
        flush=True,
    )
    wait_runs([start_run(fixtures, "parallel-transform") for _ in range(max(2, n))])  # every pool process warm
    total = args.parallel_runs * args.parallel_steps
    before = cpu.snapshot()
    ids = [start_run(fixtures, "parallel-transform") for _ in range(args.parallel_runs)]
    ok = wait_runs(ids, timeout=300)
    after = cpu.snapshot()
    runs = runs_of(ids)
    span = ms(min(r["created_at"] for r in runs), max(r["finished_at"] or r["created_at"] for r in runs)) / 1000
    rate = total / span if ok and span else None
    queue = [
        ms(row["queued_at"], row["started_at"])
        for row in StepRun.objects.filter(run_id__in=ids).values("queued_at", "started_at")
    ]
    print(
        f"  {args.parallel_runs} runs x {args.parallel_steps} independent transform steps started at once: {total} "
        f"steps in {span:.2f} s = {f(rate, '.0f')} steps/s (first run created -> last run finished); queued -> "
        f"started p50 {f(pct(queue, 50))} ms"
    )
    print(f"    {cpu.report(before, after, per=total)}")
    problem = failures(runs)
    if problem:
        print(problem)
    results[("steps/s parallel", n)] = rate

    before = cpu.snapshot()
    run_id = start_run(fixtures, "map-transform", {"items": list(range(args.map_items))})
    ok = wait_runs([run_id], timeout=600)
    after = cpu.snapshot()
    run = runs_of([run_id])[0]
    span = ms(run["created_at"], run["finished_at"]) / 1000 if run["finished_at"] else None
    rate = args.map_items / span if ok and span else None
    children = list(
        StepRun.objects.filter(run_id=run_id, parent__isnull=False)
        .values("started_at", "finished_at")
        .order_by("index")
    )
    tenth = max(1, len(children) // 10)
    early = ms(children[0]["finished_at"], children[tenth]["finished_at"]) if len(children) > tenth else None
    late = ms(children[-tenth - 1]["finished_at"], children[-1]["finished_at"]) if len(children) > tenth else None
    print(
        f"  one map over {args.map_items} items (transform, max_concurrency {args.map_concurrency}): {f(span, '.2f')} s "
        f"= {f(rate, '.0f')} items/s; the first tenth of the items took {f(early, '.0f')} ms, the last tenth "
        f"{f(late, '.0f')} ms"
    )
    print(f"    {cpu.report(before, after, per=args.map_items, unit='item')}")
    problem = failures([run])
    if problem:
        print(problem)
    results[("items/s map", n)] = rate


# --- 4. in this process: SQL per step -----------------------------------------------------------------------


def statement_kind(sql: str) -> str:
    words = sql.split()
    verb = words[0].upper() if words else "?"
    table = re.search(r'(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', sql, re.I)
    lock = " FOR UPDATE" if "FOR UPDATE" in sql.upper() else ""
    return f"{verb} {table.group(1) if table else ''}{lock}".strip()


def sql_per_step(args, fixtures, results: dict) -> None:
    """step_execute called here, one step after another, with the broker replaced by a list."""
    from unittest import mock

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from platform_site.celery import app
    from workflows.engine.execution import step_execute
    from workflows.models import WorkflowRun

    print(
        "\n[4] in this process, no broker: step_execute called directly for each step of a chain (SQL statements "
        "on this thread; an agent step's pipeline queries on its own database threads are not counted)",
        flush=True,
    )
    sent = []

    def capture(name, args=None, kwargs=None, **options):
        sent.append((name, kwargs))

    for kind, name in (("transform", "chain-transform"), ("agent (instant)", "chain-agent")):
        counts, times, sql_times, by_kind, start_counts = [], [], [], Counter(), []
        with mock.patch.object(app, "send_task", side_effect=capture):
            for n in range(args.sql_runs + 1):  # the first run warms this process
                sent.clear()
                with CaptureQueriesContext(connection) as started:
                    run_id = start_run(fixtures, name)
                if n:
                    start_counts.append(len(started.captured_queries))
                while sent:
                    task, kwargs = sent.pop(0)
                    if task != "workflows.step":
                        continue
                    with CaptureQueriesContext(connection) as queries:
                        began = time.perf_counter()
                        step_execute(**kwargs)
                        spent = (time.perf_counter() - began) * 1000
                    if n:
                        counts.append(len(queries.captured_queries))
                        times.append(spent)
                        sql_times.append(sum(float(q["time"]) for q in queries.captured_queries) * 1000)
                        by_kind.update(statement_kind(q["sql"]) for q in queries.captured_queries)
                status = WorkflowRun.objects.values_list("status", flat=True).get(pk=run_id)
                if status != "succeeded":
                    print(f"  {kind}: the run ended {status}")
        steps = len(counts)
        if not steps:
            continue
        print(
            f"  {kind}: {steps} steps; per step {statistics.mean(counts):.1f} statements (min {min(counts)}, max "
            f"{max(counts)}; the last step ends the run), {f(pct(times, 50), '.2f')} ms p50 / "
            f"{f(pct(times, 99), '.2f')} ms p99 in step_execute, of which SQL (as the client waits for it) "
            f"{f(pct(sql_times, 50), '.2f')} ms p50; run_start: {statistics.mean(start_counts):.0f} statements"
        )
        print(
            "    statements per step, by kind: " + ", ".join(f"{k} {v / steps:.2f}" for k, v in by_kind.most_common())
        )
        results[f"sql {kind}"] = {"statements": statistics.mean(counts), "p50": pct(times, 50)}


# --- the summary ----------------------------------------------------------------------------------------------


def summary(args, results: dict) -> None:
    print("\nGoals (this machine, this run)")
    rows = []
    for kind in ("transform", "agent (instant)"):
        figures = results.get(f"seq {kind}")
        if not figures:
            continue
        label = "cycle" if kind == "transform" else "cycle less the pipeline"
        what = "transform chain, whole cycle" if kind == "transform" else "instant agents, cycle less the pipeline"
        if figures.get(label):
            rows.append((f"overhead per step p50 ({what})", pct(figures[label], 50), GOALS["step_p50"], "ms"))
            rows.append((f"overhead per step p99 ({what})", pct(figures[label], 99), GOALS["step_p99"], "ms"))
        if kind != "transform" and figures.get("cycle"):
            rows.append(
                (
                    "  (instant agents, whole cycle incl. the pipeline) p50",
                    pct(figures["cycle"], 50),
                    GOALS["step_p50"],
                    "ms",
                )
            )
            rows.append(
                (
                    "  (instant agents, whole cycle incl. the pipeline) p99",
                    pct(figures["cycle"], 99),
                    GOALS["step_p99"],
                    "ms",
                )
            )
    for kind in ("transform", "agent (instant)"):
        figures = results.get(f"seq {kind}")
        if figures and figures.get("run"):
            rows.append(
                (f"{args.steps}-step run end to end p50 ({kind})", pct(figures["run"], 50), GOALS["run_p50"], "ms")
            )
    fan = results.get(("fanout", f"{args.slow_ms} ms", 1))
    if fan:
        rows.append(
            (
                f"{args.fanout}-way fan-out, {args.slow_ms} ms provider, 1 agents worker process (median)",
                fan["workflow"],
                GOALS["fanout_s"],
                "s",
            )
        )
    for label, value, goal, unit in rows:
        print(f"  {label:<72}{f(value, '.3g', ' ' + unit):>12}  goal <= {goal:g} {unit}: {verdict(value, goal)}")

    print("\nRatios (within this run)")
    for provider in (f"{args.slow_ms} ms", "instant"):
        for processes in (1, 2):
            fan = results.get(("fanout", provider, processes))
            if fan and fan["workflow"] and fan["group"]:
                print(
                    f"  fan-out x{args.fanout}, provider {provider}, {processes} agents process{'es' if processes > 1 else ''}: "
                    f"workflow map / Celery group = x{fan['workflow'] / fan['group']:.2f} ({fan['workflow']:.3f} vs "
                    f"{fan['group']:.3f} s; the provider alone: {args.slow_ms / 1000 if provider != 'instant' else 0:g} s)"
                )
        one, two = results.get(("fanout", provider, 1)), results.get(("fanout", provider, 2))
        if one and two and one["workflow"] and two["workflow"] and one["group"] and two["group"]:
            print(
                f"  fan-out, provider {provider}, 2 agents processes / 1: workflow x{two['workflow'] / one['workflow']:.2f}, "
                f"group x{two['group'] / one['group']:.2f}"
            )
    for key, what in (("steps/s parallel", "independent steps/s"), ("items/s map", "map items/s")):
        one, two = results.get((key, 1)), results.get((key, 2))
        if one and two:
            print(f"  {what}, 2 default-queue processes / 1: x{two / one:.2f} ({two:.0f} vs {one:.0f})")
    transform, agent = results.get("seq transform"), results.get("seq agent (instant)")
    if transform and agent and transform.get("cycle") and agent.get("cycle"):
        print(
            f"  per-step cycle, instant agent / transform: x{pct(agent['cycle'], 50) / pct(transform['cycle'], 50):.2f} "
            f"(p50 {pct(agent['cycle'], 50):.1f} vs {pct(transform['cycle'], 50):.1f} ms)"
        )
    if transform and transform.get("cycle") and transform.get("gap"):
        gap, cycle = pct(transform["gap"], 50), pct(transform["cycle"], 50)
        print(
            f"  transform cycle: the gap between steps is {gap / cycle:.0%} of it at p50 ({gap:.1f} of {cycle:.1f} ms)"
        )


# --- main ---------------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description="The workflow engine: overhead per step, runs, fan-out, steps/s.")
    parser.add_argument("--runs", type=int, default=30, help="sequential runs of each chain")
    parser.add_argument("--steps", type=int, default=10, help="steps of the sequential chain")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up runs before each measurement")
    parser.add_argument("--fanout", type=int, default=50, help="items of the fan-out map (at most 100 at once)")
    parser.add_argument("--repeats", type=int, default=3, help="fan-outs of each kind (the median is reported)")
    parser.add_argument("--slow-ms", type=int, default=500, help="the slow provider's latency")
    parser.add_argument("--parallel-runs", type=int, default=20)
    parser.add_argument("--parallel-steps", type=int, default=20)
    parser.add_argument("--map-items", type=int, default=200)
    parser.add_argument("--map-concurrency", type=int, default=100)
    parser.add_argument("--sql-runs", type=int, default=3, help="runs of each chain in phase 4")
    parser.add_argument(
        "--default-pool",
        choices=["prefork", "solo"],
        default="prefork",
        help="the default-queue worker's pool (the Procfile's is prefork); solo has one process only",
    )
    parser.add_argument("--phases", default="sequential,fanout,throughput,sql")
    parser.add_argument(
        "--settings",
        default="bench.settings",
        help="the Django settings of every process (an experiment: a module importing bench.settings, on PYTHONPATH)",
    )
    parser.add_argument("--logs", type=Path, help="where the processes' logs go (default: a new temporary directory)")
    args = parser.parse_args()
    phases = set(args.phases.split(","))

    log_dir = args.logs or Path(tempfile.mkdtemp(prefix="bench-workflows-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # run the finally below
    processes = gateway.Processes(log_dir)
    results: dict = {}
    began = time.monotonic()
    try:
        urls = services()
        setup_django(urls, args.settings)
        provider = gateway.Provider(processes, args.slow_ms)
        fixtures = make_fixtures(provider, args)
        purge_queues()
        env = {**os.environ}
        cpu = CpuMeter()
        for name, pid in service_pids().items():
            cpu.add(name, pid)
        cpu.add("this process", os.getpid(), tree=False)
        recorder = processes.start("recorder", [sys.executable, "manage.py", "record_runs"], cwd=ROOT, env=env)
        cpu.add("recorder", recorder.pid)
        print(
            f"Workflows bench: {machine()}; PostgreSQL and Redis embedded ({os.environ['SWITCHBOARD_VAR_DIR']}), "
            f"{args.settings}, DEBUG=false; logs in {log_dir}",
            flush=True,
        )
        print(
            f"  provider: bench/fast_provider.py, instant and {args.slow_ms} ms; agent type cache off; default-queue "
            f"worker: celery --queues celery --pool {args.default_pool}; agents worker: --pool threads --concurrency 64",
            flush=True,
        )
        workers = Workers(processes, env, cpu, args.default_pool)
        workers.start_default(1)
        workers.add_agents()
        import redis

        client = redis.Redis.from_url(urls["redis"])
        phase_list = [
            ("sequential", lambda: sequential(args, fixtures, cpu, results)),
            ("fanout", lambda: fanout(args, fixtures, workers, cpu, results, client)),
            ("throughput", lambda: throughput(args, fixtures, workers, cpu, results)),
        ]
        for name, phase in phase_list:
            if name in phases:
                try:
                    phase()
                except Exception:
                    print(f"  phase {name} failed:\n{traceback.format_exc()}", flush=True)
        if {"throughput", "fanout"} & phases:
            print("\n-- second worker processes: default queue --concurrency 2, a second agents worker --", flush=True)
            if "throughput" in phases and args.default_pool == "prefork":
                workers.start_default(2)
                try:
                    throughput(args, fixtures, workers, cpu, results)
                except Exception:
                    print(f"  phase throughput (2) failed:\n{traceback.format_exc()}", flush=True)
            if "fanout" in phases:
                workers.add_agents()
                try:
                    fanout(args, fixtures, workers, cpu, results, client)
                except Exception:
                    print(f"  phase fanout (2) failed:\n{traceback.format_exc()}", flush=True)
        if "sql" in phases:
            try:
                sql_per_step(args, fixtures, results)
            except Exception:
                print(f"  phase sql failed:\n{traceback.format_exc()}", flush=True)
        summary(args, results)
        print(f"\n{machine()}; the bench took {time.monotonic() - began:.0f} s")
    finally:
        processes.stop_all()


if __name__ == "__main__":
    main()
