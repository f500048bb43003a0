"""What the gateway adds to a call, and what a cache hit costs.

Starts the fake OpenAI-compatible server and gunicorn (one sync worker, the development database and
Redis), then measures from one keep-alive client on loopback:
  (a) a chat completion straight from the fake, against the same call through the platform with the
      cache bypassed (every request goes to the provider): the platform's added latency, p50 and p99;
  (b) a cache hit through the platform, against a do-nothing DRF endpoint with the same authentication,
      in the same server process: latency and requests per second.

    .venv/bin/python bench/gateway.py [--requests 500]
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ.setdefault("QUOTA_DEFAULT_REQUESTS_PER_MINUTE", "1000000000")  # checked on every request, never reached


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port}")


def timed_posts(port: int, path: str, body: dict, headers: dict, count: int) -> list[float]:
    """Latencies in ms of `count` sequential POSTs on one keep-alive connection (after 20 warm-ups)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.connect()
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle delay between writes
    raw = json.dumps(body)
    headers = {"Content-Type": "application/json", **headers}
    latencies = []
    for n in range(count + 20):
        started = time.perf_counter()
        connection.request("POST", path, body=raw, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{path} answered {response.status}")
        if n >= 20:
            latencies.append((time.perf_counter() - started) * 1000)
    connection.close()
    return latencies


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def describe(name: str, latencies: list[float]) -> dict:
    figures = {
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "rps": 1000 / statistics.fmean(latencies),
    }
    print(f"  {name:<34} p50 {figures['p50']:7.2f} ms   p99 {figures['p99']:7.2f} ms   {figures['rps']:7.0f} req/s")
    return figures


def setup_fixtures(fake_url: str) -> tuple[str, int]:
    """A bench user, key, provider (the fake), model, agent type and agent; returns (key, agent id)."""
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    from accounts.models import ApiKey
    from accounts.services import apikey_create, user_register
    from agents.models import AgentType, LanguageModel, Provider
    from agents.services.agents import agent_create

    user = get_user_model().objects.filter(username="bench").first() or user_register(
        username="bench", email="bench@example.com", password="bench-passphrase-123"
    )
    ApiKey.objects.filter(user=user).delete()
    _, key = apikey_create(user=user, name="bench", scopes=["agents:invoke", "agents:read"], actor=user)
    provider, _ = Provider.objects.update_or_create(
        name="bench-fake", defaults={"kind": "openai", "base_url": fake_url, "max_retries": 0, "timeout_seconds": 10}
    )
    model, _ = LanguageModel.objects.update_or_create(
        name="bench-model",
        defaults={
            "provider": provider,
            "provider_model": "bench",
            "input_price_per_mtok": 1,
            "output_price_per_mtok": 2,
        },
    )
    agent_type, _ = AgentType.objects.update_or_create(
        slug="bench", defaults={"default_model": model, "cache_ttl_seconds": 3600}
    )
    agent = user.agents.filter(name="bench").first() or agent_create(owner=user, agent_type=agent_type, name="bench")
    return key, agent.pk


def main():
    parser = argparse.ArgumentParser(description="Gateway overhead and cache-hit cost.")
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()

    fake_port, web_port = free_port(), free_port()
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_server", "--port", str(fake_port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    wait_for_port(fake_port)
    key, agent_id = setup_fixtures(f"http://127.0.0.1:{fake_port}/v1")
    from django.conf import settings

    env = {**os.environ, "DATABASE_URL": _database_url(settings), "REDIS_URL": settings.REDIS_URL}
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "platform_site.wsgi", "--bind", f"127.0.0.1:{web_port}", "--workers", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(web_port)
        auth = {"Authorization": f"Bearer {key}"}
        messages = {"messages": [{"role": "user", "content": "What is the capital of France?"}]}
        invoke = f"/api/v1/agents/{agent_id}/invoke"
        print(f"{args.requests} sequential requests per line, one keep-alive connection, loopback, 1 gunicorn worker")
        print("(a) provider call: direct vs through the platform (cache bypassed)")
        direct = describe(
            "fake provider, direct",
            timed_posts(fake_port, "/v1/chat/completions", {"model": "bench", **messages}, {}, args.requests),
        )
        gateway = describe(
            "through the platform (BYPASS)",
            timed_posts(web_port, invoke, messages, {**auth, "Cache-Control": "no-cache"}, args.requests),
        )
        print(
            f"  added by the platform: p50 {gateway['p50'] - direct['p50']:.2f} ms, p99 {gateway['p99'] - direct['p99']:.2f} ms"
        )
        print("(b) cache hit vs a do-nothing DRF endpoint (same auth, same process)")
        noop = describe("do-nothing endpoint", timed_posts(web_port, "/api/v1/bench/noop", {}, auth, args.requests))
        hit = describe("cache hit", timed_posts(web_port, invoke, messages, auth, args.requests))
        print(
            f"  cache hit / do-nothing: latency p50 x{hit['p50'] / noop['p50']:.2f}, throughput x{hit['rps'] / noop['rps']:.2f}"
        )
    finally:
        web.terminate()
        fake.terminate()
        web.wait()
        fake.wait()


def _database_url(settings) -> str:
    from urllib.parse import quote

    db = settings.DATABASES["default"]
    return f"postgresql://{quote(db['USER'])}@/{db['NAME']}?host={quote(db['HOST'])}"


if __name__ == "__main__":
    main()
