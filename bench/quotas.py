"""The cost of one quota check with three applicable policies, as a ratio to one Redis PING.

Same Redis connection for both, development settings (embedded Redis and PostgreSQL):
  - the limiter script alone (all counters of three policies checked and counted in one EVALSHA);
  - `quota_admit` as the pipeline calls it (finding the applicable policies in PostgreSQL, then the script).

    .venv/bin/python bench/quotas.py [--iterations 5000]
"""

import argparse
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ.setdefault("QUOTA_DEFAULT_REQUESTS_PER_MINUTE", "0")  # exactly the three policies below apply


def timed(function, iterations: int) -> list[float]:
    for _ in range(100):
        function()
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=5000)
    args = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from accounts.services import user_register
    from quotas.limiter import RedisLimiter
    from quotas.models import QuotaPolicy
    from quotas.services.admission import _counters, active_policies, applicable_policies, quota_admit

    user = get_user_model().objects.filter(username="bench").first() or user_register(
        username="bench", email="bench@example.com", password="bench-passphrase-123"
    )
    QuotaPolicy.objects.filter(name__startswith="bench-").delete()
    huge = 2_000_000_000  # never reached: the benchmark measures the check, not a refusal
    QuotaPolicy.objects.create(name="bench-rate", requests_per_minute=huge, requests_per_day=huge)
    QuotaPolicy.objects.create(name="bench-tokens", agent_type="bench", tokens_per_minute=huge, tokens_per_day=huge)
    QuotaPolicy.objects.create(
        name="bench-cost", applies_to="user", user=user, cost_per_day=10**6, cost_per_month=10**6
    )

    limiter = RedisLimiter()
    policies = [
        p
        for p in applicable_policies(
            user=user, api_key=None, agent_type="bench", model="m", type_limits={}, policies=active_policies()
        )
        if p[0].startswith("bench-")
    ]
    counters = _counters(policies, user.pk, 500, 1000, time.time())
    assert len(policies) == 3, policies

    def admit():
        quota_admit(user=user, api_key=None, agent_type="bench", model="m", tokens=500, cost=Decimal("0.000001"))

    ping = timed(limiter.redis.ping, args.iterations)
    script = timed(lambda: limiter.admit(user.pk, counters), args.iterations)
    full = timed(admit, args.iterations // 5)
    print(f"{args.iterations} iterations, one connection, loopback unix socket; 3 policies = {len(counters)} counters")
    for name, samples in (
        ("PING", ping),
        ("limiter script (3 policies)", script),
        ("quota_admit (query + script)", full),
    ):
        p50, p99 = statistics.median(samples), statistics.quantiles(samples, n=100)[98]
        ratio = p50 / statistics.median(ping)
        print(f"  {name:<30} p50 {p50:8.1f} us   p99 {p99:8.1f} us   x{ratio:.2f} of a PING")
    QuotaPolicy.objects.filter(name__startswith="bench-").delete()


if __name__ == "__main__":
    main()
