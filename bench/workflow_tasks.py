"""The plain-Celery side of bench/workflows.py's fan-out: the same agent call a workflow's agent step makes (the
invocation pipeline, with an idempotency key, the agent type's cache off), as a bare task on the agents queue.
A `group` of these is what the engine's 50-way map is compared with. The bench's agents workers load this
module with `--include bench.workflow_tasks`; nothing else imports it.

Each task ignores its result (no result backend row) and, once its call is answered (or has failed), pushes
`<time it finished> <ok|error>` onto a Redis list named by the bench (`tag`), which the bench pops: one round
trip, no polling, and a failed task is counted rather than waited for.
"""

import time

from celery import shared_task


def _finished(tag: str, ok: bool) -> None:
    from django_redis import get_redis_connection

    get_redis_connection("default").rpush(f"bench:workflows:{tag}", f"{time.time()!r} {'ok' if ok else 'error'}")


@shared_task(name="bench.invoke", ignore_result=True, bind=True)
def invoke_task(self, *, agent_id: int, user_id: int, text: str, tag: str):
    """What agents.invoke does (user, agent from the process cache, the pipeline on the process's loop),
    without the task record."""
    from django.contrib.auth import get_user_model

    from agents.selectors import agent_for_task
    from agents.services.invocation import agent_invoke
    from core.async_runner import run

    ok = False
    try:
        user = get_user_model().objects.get(pk=user_id)
        user.role  # noqa: B018  (read in the task's thread, not by the pipeline on the event loop)
        agent = agent_for_task(agent_id)
        run(
            agent_invoke(
                user=user,
                agent=agent,
                messages=[{"role": "user", "content": text}],
                idempotency_key=f"bench:{self.request.id}",
            )
        )
        ok = True
    finally:
        _finished(tag, ok)
