from django.contrib.auth import get_user_model

from accounts.services import apikey_for_task
from agents.selectors import agent_for_task
from agents.services.invocation import agent_invoke
from core.async_runner import run
from tasks.tracked import tracked_task


@tracked_task("agents.invoke")
def agent_invoke_task(self, *, agent_id, user_id, messages, api_key_id=None, bypass_cache=False, **request):
    """An invocation started with ?async=1, on the `agents` queue: a threads-pool worker holds many at once,
    all in flight on the process's event loop (core.async_runner). The task id is the run's idempotency key:
    a retry after a lost worker reuses the recorded run instead of calling (and charging) again. A provider
    down or a quota reached is retried by the tracked-task base."""
    api_key = apikey_for_task(pk=api_key_id) if api_key_id else None
    if api_key and api_key.user_id == user_id:
        user = api_key.user
    else:
        user = get_user_model().objects.get(pk=user_id)
        user.role  # noqa: B018  (read here, in the task's thread, not by the pipeline on the event loop)
    agent = agent_for_task(agent_id)
    result = run(
        agent_invoke(
            user=user,
            agent=agent,
            messages=messages,
            api_key=api_key,
            bypass_cache=bypass_cache,
            idempotency_key=str(self.request.id),
            first_attempt=self.request.claimed_attempt == 1,
            **request,
        )
    )
    answer = {"run": str(result.run.pk), "output": result.text, "cache": result.cache}
    if result.tool_calls:
        answer.update(tool_calls=result.tool_calls, finish_reason=result.finish_reason)
    return answer
