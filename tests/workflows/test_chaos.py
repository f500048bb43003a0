"""Chaos: worker processes are SIGKILLed at random while 100 runs of a 10-step workflow go on. Every run
completes, none is stuck, and no agent step is charged twice."""

import asyncio
import random
import sys
import time

import pytest
from django.conf import settings
from django.db.models import Sum

from agents.models import AgentRun
from quotas.models import QuotaPolicy, UsageRecord
from quotas.services.admission import quota_holds_release
from tests.agents.conftest import post
from tests.conftest import make_key
from tests.processes import CeleryProcess, GunicornProcess, PlatformProcess, own_broker
from tests.quotas.helpers import counter
from tests.tasks.conftest import wait_until
from tests.workflows.conftest import make_workflow
from workflows.models import RunEvent, StepRun, WorkflowRun

RUNS = 100
TEN_STEPS = """
version: 1
name: ten
inputs:
  n: {type: integer}
steps:
  - {id: s1, kind: agent, agent: researcher, input: "run ${inputs.n} step 1", retries: {max: 3, backoff: 0.5}}
  - {id: s2, kind: transform, needs: [s1], output: "${steps.s1.output + ' / 2'}"}
  - {id: s3, kind: agent, agent: writer, needs: [s2], input: "${steps.s2.output}", retries: {max: 3, backoff: 0.5}}
  - {id: s4, kind: transform, needs: [s3], output: "${steps.s3.output + ' / 4'}"}
  - {id: s5, kind: agent, agent: critic, needs: [s4], input: "${steps.s4.output}", retries: {max: 3, backoff: 0.5}}
  - {id: s6, kind: transform, needs: [s5], output: "${steps.s5.output + ' / 6'}"}
  - {id: s7, kind: agent, agent: judge, needs: [s6], input: "${steps.s6.output}", retries: {max: 3, backoff: 0.5}}
  - {id: s8, kind: transform, needs: [s7], output: "${steps.s7.output + ' / 8'}"}
  - {id: s9, kind: agent, agent: summarizer, needs: [s8], input: "${steps.s8.output}", retries: {max: 3, backoff: 0.5}}
  - {id: s10, kind: transform, needs: [s9], output: "${steps.s9.output + ' / 10'}"}
outputs:
  last: "${steps.s10.output}"
"""


class Workers:
    """The default-queue worker and the agents worker, on a broker of their own; one is killed (SIGKILL, no
    warning) and started again at random moments."""

    def __init__(self, tmp_path, env):
        self.tmp_path, self.env, self.kills = tmp_path, env, 0
        self.processes = {"celery": self._start("celery", wait=False), "agents": self._start("agents", wait=False)}
        for worker in self.processes.values():  # started side by side, each takes seconds
            worker.wait_for_log("ready.", timeout=60)

    def _start(self, queue: str, wait: bool = True) -> CeleryProcess:
        pool = ["--pool", "solo"] if queue == "celery" else ["--pool", "threads", "--concurrency", "16"]
        worker = CeleryProcess(
            "worker",
            self.tmp_path / f"{queue}-{time.monotonic_ns()}.log",
            "--queues",
            queue,
            *pool,
            "--hostname",
            f"{queue}-{time.monotonic_ns()}@%h",
            "--without-mingle",
            "--without-gossip",
            env=self.env,
        )
        if wait:
            worker.wait_for_log("ready.", timeout=60)
        return worker

    def kill_one(self, rng: random.Random) -> None:
        queue = rng.choice(list(self.processes))
        self.processes[queue].process.kill()
        self.processes[queue].process.wait()
        self.kills += 1
        self.processes[queue] = self._start(queue)

    def stop(self) -> None:
        for worker in self.processes.values():
            worker.stop()


@pytest.mark.django_db(transaction=True)
def test_runs_complete_and_are_charged_once_while_workers_are_killed_at_random(alice, alice_agents, fake_llm, tmp_path):
    # Given a token budget, a provider that takes 20 ms, and web, workers and reaper on a broker of their own
    QuotaPolicy.objects.create(name="budget", tokens_per_day=10_000_000)
    fake_llm.latency = 0.02
    workflow = make_workflow(alice, TEN_STEPS)
    key = make_key(alice, scopes=["workflows:run"])
    # runs recorded as in production: through the Redis stream and its recorder, so a run is recorded (and
    # charged) in one atomic step, whenever a worker dies; Redis given 5 s, as the suite's agents worker is
    # (tests/conftest.py): on a machine this loaded a late answer would mark Redis down, which is not this test's
    # subject (tests/platform_site/test_redis_faults.py is)
    env = {"CELERY_BROKER_URL": own_broker(10), "RUN_RECORDING": "stream", "REDIS_SOCKET_TIMEOUT": "5"}
    web = GunicornProcess(tmp_path / "web.log", workers=1, env=env)
    reaper = PlatformProcess(
        [sys.executable, "manage.py", "workflows", "reap", "--every", "1"], tmp_path / "reaper.log", env=env
    )
    recorder = PlatformProcess([sys.executable, "manage.py", "record_runs"], tmp_path / "recorder.log", env=env)
    workers = Workers(tmp_path, env)
    rng = random.Random(16)
    try:
        web.wait_for_log("Booting worker")

        # When 100 runs start, and a worker process is killed every 0.5 to 2 seconds while they go on
        answers = asyncio.run(start_runs(web.port, workflow.pk, key))
        assert [status for status, _ in answers] == [202] * RUNS, [
            body[:300] for status, body in answers if status != 202
        ][:3]
        deadline = time.monotonic() + 300
        while WorkflowRun.objects.filter(status="running").exists() and time.monotonic() < deadline:
            if workers.kills < 5:
                time.sleep(rng.uniform(0.5, 2))
                workers.kill_one(rng)
            else:
                time.sleep(0.5)
        wait_until(lambda: AgentRun.objects.filter(status="succeeded").count() >= 5 * RUNS, timeout=60)
    finally:
        workers.stop()
        reaper.stop()
        recorder.stop()
        web.stop()

    # Then every run completed with its whole chain of answers, and no step is left behind
    assert workers.kills >= 5
    runs = WorkflowRun.objects.all()
    assert runs.count() == RUNS
    assert set(runs.values_list("status", flat=True)) == {"succeeded"}, list(
        runs.exclude(status="succeeded").values_list("error", flat=True)[:5]
    )
    assert {run.outputs["last"].count("echo:") for run in runs} == {5}
    assert not StepRun.objects.exclude(status="succeeded").exists()
    assert RunEvent.objects.filter(type="step.reaped").exists()  # workers did die holding steps

    # And each agent step was charged once: one successful agent run per step, and the ledger and the
    # budget counted exactly those runs' tokens
    agent_steps = StepRun.objects.filter(kind="agent")
    assert agent_steps.count() == 5 * RUNS
    assert AgentRun.objects.filter(status="succeeded").count() == 5 * RUNS
    assert set(agent_steps.values_list("agent_run_id", flat=True)) == set(
        AgentRun.objects.filter(status="succeeded").values_list("pk", flat=True)
    )
    charged = AgentRun.objects.filter(status="succeeded").aggregate(tokens=Sum("input_tokens") + Sum("output_tokens"))
    ledger = UsageRecord.objects.aggregate(tokens=Sum("input_tokens") + Sum("output_tokens"))
    assert ledger["tokens"] == charged["tokens"] > 0
    # (the budget counter still holds the reservations of any call killed mid-flight, until the release job
    # gives them back once their deadline has passed, as it does here; a kill may also land between calls)
    held = counter("budget", alice, "tokens_per_day") - ledger["tokens"]
    assert held >= 0
    released = quota_holds_release(now=time.time() + settings.QUOTA_HOLD_SECONDS + 1)
    assert (released > 0) == (held > 0)
    assert counter("budget", alice, "tokens_per_day") == ledger["tokens"]


async def start_runs(port: int, workflow_id: int, key: str) -> list:
    """16 clients at a time: each request to the site's sync stack (outside the gateway's paths) holds a
    PostgreSQL connection of its own while it runs, and the embedded server allows 100."""
    path = f"/api/v1/workflows/{workflow_id}/runs"
    clients = asyncio.Semaphore(16)

    async def start(n):
        async with clients:
            return await post(port, path, {"inputs": {"n": n}}, key)

    return await asyncio.gather(*[start(n) for n in range(RUNS)])
