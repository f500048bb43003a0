"""Recording runs: every invocation ends as an AgentRun and its UsageRecord (tokens, cost, cache outcome).

With RUN_RECORDING = "stream" (the default) a request appends its record to the Redis stream `sb:runs` in
its closing round trip, and the recorder (`manage.py record_runs`, a process of its own) writes the stream
to PostgreSQL in batches. Nothing is lost when a web process dies after answering (the entry is in Redis,
whose append-only file keeps it); a recorder that dies mid-batch leaves its entries pending, and the next
one claims them; writing is idempotent by run id, so an entry written twice is one row. The stream's
backlog shows in /readyz; past RUN_STREAM_MAX_BACKLOG requests write their runs themselves until it
drains. `direct` writes every run in its request (the tests, and a setup without a recorder).

A run carries the content guards' verdicts (`run.guard_verdicts`: detector, action, where, count; never the
matched text) in the same entry; they are written with it as GuardVerdict rows, in the same transaction.
"""

import json
import logging
import uuid
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django_redis import get_redis_connection

from accounts.models import ApiKey, User
from agents.models import Agent, AgentRun, GuardVerdict
from quotas.models import UsageRecord

logger = logging.getLogger("switchboard.recording")

STREAM = "sb:runs"
GROUP = "recorders"
IDEMPOTENCY_TTL_SECONDS = 2 * 86400


def run_id_for(user_id: int, idempotency_key: str) -> uuid.UUID:
    """A run made under an idempotency key has the id that key gives it: written twice, it is one row."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"switchboard:run:{user_id}:{idempotency_key}")


def idempotency_name(user_id: int, idempotency_key: str) -> str:
    return f"sb:run:{{u{user_id}}}:idem:{idempotency_key}"


def encode(run: AgentRun, usage: UsageRecord, client_ip: str | None) -> str:
    """One stream entry: the run's columns, what the usage record adds, and the key's last use."""
    fields = {f.attname: getattr(run, f.attname) for f in AgentRun._meta.concrete_fields}
    entry = {"run": fields, "agent_type": usage.agent_type, "cached": usage.cached, "ip": client_ip}
    verdicts = getattr(run, "guard_verdicts", None)
    if verdicts:
        entry["verdicts"] = [list(verdict) for verdict in verdicts]
    return json.dumps(entry, default=_json_default)


def _json_default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    raise TypeError(f"cannot record {type(value).__name__}")


def usage_of(run: AgentRun, *, agent_type: str, cached: bool) -> UsageRecord:
    return UsageRecord(
        run_id=run.pk,
        user_id=run.user_id,
        api_key_id=run.api_key_id,
        agent_type=agent_type,
        model=run.model_name,
        input_tokens=run.input_tokens,
        output_tokens=run.output_tokens,
        cost=run.cost,
        cached=cached,
        created_at=run.created_at,
    )


@transaction.atomic
def write_runs(records: list[tuple[AgentRun, UsageRecord, str | None]]) -> int:
    """Insert the runs and their usage, skipping any already written; rows whose agent or user has been
    deleted since are dropped (their key, if deleted, is forgotten). Keys' last use moves forward."""
    agents = set(Agent.objects.filter(pk__in={run.agent_id for run, _, _ in records}).values_list("pk", flat=True))
    users = set(User.objects.filter(pk__in={run.user_id for run, _, _ in records}).values_list("pk", flat=True))
    keys = set(ApiKey.objects.filter(pk__in={run.api_key_id for run, _, _ in records}).values_list("pk", flat=True))
    kept = [(run, usage, ip) for run, usage, ip in records if run.agent_id in agents and run.user_id in users]
    for run, usage, _ in kept:
        if run.api_key_id not in keys:
            run.api_key_id = usage.api_key_id = None
    AgentRun.objects.bulk_create([run for run, _, _ in kept], ignore_conflicts=True)
    UsageRecord.objects.bulk_create([usage for _, usage, _ in kept], ignore_conflicts=True)
    GuardVerdict.objects.bulk_create(
        [
            GuardVerdict(
                run_id=run.pk, detector=detector, action=action, where=where, count=count, created_at=run.created_at
            )
            for run, _, _ in kept
            for detector, action, where, count in getattr(run, "guard_verdicts", None) or ()
        ],
        ignore_conflicts=True,
    )
    last_use = {}
    for run, _, ip in kept:
        if run.api_key_id and (run.api_key_id not in last_use or last_use[run.api_key_id][0] < run.created_at):
            last_use[run.api_key_id] = (run.created_at, ip)
    for key_id, (when, ip) in last_use.items():
        ApiKey.objects.filter(pk=key_id).update(last_used_at=when, last_used_ip=ip)
    return len(kept)


def decode(raw: bytes) -> tuple[AgentRun, UsageRecord, str | None]:
    data = json.loads(raw)
    fields = {field.attname: field for field in AgentRun._meta.concrete_fields}
    run = AgentRun(**{name: fields[name].to_python(value) for name, value in data["run"].items()})
    run.guard_verdicts = [tuple(verdict) for verdict in data.get("verdicts", ())]
    usage = usage_of(run, agent_type=data["agent_type"], cached=data["cached"])
    return run, usage, data["ip"]


# --- the recorder ---------------------------------------------------------------------------------------


def ensure_group(redis) -> None:
    try:
        redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except Exception as error:  # BUSYGROUP: it exists
        if "BUSYGROUP" not in str(error):
            raise


def record_batch(redis, *, consumer: str, count: int = 500, block_ms: int = 1000, claim_idle_ms: int = 30_000) -> int:
    """Write one batch from the stream: first entries another recorder took and never acknowledged (it
    died), then new ones. Acknowledged and deleted only once written. `redis` is the recorder's own client
    (its reads block longer than the platform's socket timeout)."""
    entries = redis.xautoclaim(STREAM, GROUP, consumer, min_idle_time=claim_idle_ms, count=count)[1]
    if not entries:
        for _, new in redis.xreadgroup(GROUP, consumer, {STREAM: ">"}, count=count, block=block_ms) or []:
            entries += new
    if not entries:
        return 0
    written = write_runs([decode(fields[b"data"]) for _, fields in entries])
    ids = [entry_id for entry_id, _ in entries]
    redis.xack(STREAM, GROUP, *ids)
    redis.xdel(STREAM, *ids)
    return written


def backlog() -> int | None:
    """Entries not yet written (None when Redis cannot say)."""
    try:
        return get_redis_connection("default").xlen(STREAM)
    except Exception:
        return None
