"""Browser pages of agents: yours and those shared with you; one agent's page (its chat, streamed, its recent
runs, and for its owner the sharing); its settings; its deletion; all its runs and one run.

Thin: each page calls agents' selectors and services and accounts' sharing services, the ones the API calls,
with the API's role permissions (a viewer reads only). What a user may not see is a 404, as in the API; what
only the owner may do (change, share, delete) is a 404 to anyone else.
"""

import copy
import json
from urllib.parse import urlsplit

from asgiref.sync import async_to_sync
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import ProtectedError
from django.http import JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import date as date_filter
from django.template.defaultfilters import floatformat
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from rest_framework.exceptions import ValidationError as BadCursor
from rest_framework.request import Request

from accounts.models import User
from accounts.security import client_ip
from accounts.selectors import object_shares, shared_pks, user_may_use
from accounts.services import object_share, object_unshare
from agents import selectors
from agents.api import EventStream, error_event
from agents.forms import AgentForm, ChatForm, ShareForm
from agents.models import Agent
from agents.services import agents as services
from agents.services.invocation import agent_invoke
from agents.services.streaming import agent_invoke_stream
from core.exceptions import DomainError
from core.pagination import NewestFirst

CONVERSATION_TURNS = 20  # kept in the session, per agent
RECENT_RUNS = 10


class RunPages(NewestFirst):
    """The runs page: the API's newest-first cursor (no count over a table that grows without bound)."""

    page_size = 25


def _form_errors(form, error: ValidationError) -> None:
    """A service's ValidationError on the form: on the field it names, else above the form; the owner's
    name constraint on the name field."""
    for field, problems in (error.error_dict if hasattr(error, "error_dict") else {None: error.error_list}).items():
        for problem in problems:
            if problem.code == "unique_together":
                form.add_error("name", "You already have an agent with this name.")
            else:
                form.add_error(field if field in form.fields else None, problem)


def _share_levels(user, agents) -> dict[int, str]:
    """The level ("view" or "use") of each listed agent shared with the user; one query, none if no share."""
    shared = [agent.pk for agent in agents if agent.owner_id != user.pk]
    if not shared:
        return {}
    usable = set(shared_pks(user=user, model=Agent, level="use").values_list("object_id", flat=True))
    return {pk: "use" if pk in usable else "view" for pk in shared}


def _owned(request, pk, perm="agents.change_agent") -> Agent:
    """The caller's own agent, for a change: a role without the permission is refused (403), anyone but the
    owner gets a 404."""
    if not request.user.has_perm(perm):
        raise PermissionDenied("Your role may not change agents.")
    return selectors.agent_get_owned(user=request.user, pk=pk)


# --- your agents ---------------------------------------------------------------------------------------------


@login_required
def agent_list(request):
    if request.method == "POST" and not request.user.has_perm("agents.add_agent"):
        raise PermissionDenied("Your role may not create agents.")
    form = AgentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            agent = services.agent_create(owner=request.user, **form.cleaned_data)
        except ValidationError as error:
            _form_errors(form, error)
        else:
            messages.success(request, f"Agent {agent.name} created.")
            return redirect("agent_chat", pk=agent.pk)
    agents = list(selectors.agent_list(user=request.user))
    levels = _share_levels(request.user, agents)
    context = {"form": form, "rows": [(agent, levels.get(agent.pk)) for agent in agents]}
    return render(request, "agents/agents.html", context, status=400 if form.errors else 200)


# --- one agent: its page and chat -----------------------------------------------------------------------------


def _chat_page(request, agent, form, *, status=200):
    user = request.user
    owner = agent.owner_id == user.pk
    may_use = user_may_use(user=user, obj=agent)
    context = {
        "agent": agent,
        "owner": owner,
        "level": None if owner else ("use" if may_use else "view"),
        "can_chat": may_use and user.has_perm("agents.invoke_agent"),
        "can_change": owner and user.has_perm("agents.change_agent"),
        "can_delete": owner and user.has_perm("agents.delete_agent"),
        "conversation": request.session.get(_session_key(agent), []),
        "form": form,
        "runs": selectors.run_list(user=user).filter(agent=agent)[:RECENT_RUNS],
    }
    if context["can_change"]:
        context.update(share_form=ShareForm(prefix="share"), shares=object_shares(obj=agent))
    return render(request, "agents/chat.html", context, status=status)


def _session_key(agent) -> str:
    return f"chat:{agent.pk}:{agent.version}"


@login_required
def agent_chat(request, pk):
    """The agent's page. Without script the chat is a form post that waits for the whole answer; with it,
    static/js/agents.js posts to agent_chat_stream and shows the answer as it comes."""
    agent = selectors.agent_get(user=request.user, pk=pk)
    if request.method != "POST":
        return _chat_page(request, agent, ChatForm())
    if "reset" in request.POST:
        request.session.pop(_session_key(agent), None)
        return redirect("agent_chat", pk=agent.pk)
    if not request.user.has_perm("agents.invoke_agent"):
        raise PermissionDenied("Your role does not allow invoking agents.")
    agent = selectors.agent_get(user=request.user, pk=pk, level="use")
    form = ChatForm(request.POST)
    if form.is_valid():
        asked = [
            *request.session.get(_session_key(agent), []),
            {"role": "user", "content": form.cleaned_data["message"]},
        ]
        try:
            result = async_to_sync(agent_invoke)(
                user=request.user, agent=agent, messages=asked, client_ip=client_ip(request)
            )
        except ValidationError as error:
            form.add_error("message", error.messages)
        except DomainError as error:  # refused, a limit, a provider down: said on the page
            messages.error(request, str(error))
            return redirect("agent_chat", pk=agent.pk)
        else:  # the session keeps the conversation as the guards let it through (redacted)
            answered = [*result.run.input, {"role": "assistant", "content": result.text}]
            request.session[_session_key(agent)] = answered[-CONVERSATION_TURNS * 2 :]
            return redirect("agent_chat", pk=agent.pk)
    return _chat_page(request, agent, form, status=400)


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def _refusal(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@login_required
@require_POST
async def agent_chat_stream(request, pk):
    """The chat's answer as server-sent events (`delta` with text, then `done` with the run, or `error`),
    through the same invocation entry as the API's stream; the conversation is kept in the session once the
    answer is whole. What stops it before it starts is a JSON error with the API's status."""
    user = await request.auser()
    if not await user.ahas_perm("agents.invoke_agent"):
        return _refusal("Your role does not allow invoking agents.", 403)
    agent = await selectors.agent_get_for_invocation(user=user, pk=pk)  # a 404 unless theirs or shared for use
    form = ChatForm(request.POST)
    if not form.is_valid():
        return _refusal(" ".join(form.errors["message"]), 400)
    key = _session_key(agent)
    asked = [*await request.session.aget(key, []), {"role": "user", "content": form.cleaned_data["message"]}]
    try:
        stream = await agent_invoke_stream(user=user, agent=agent, messages=asked, client_ip=client_ip(request))
    except ValidationError as error:
        return _refusal(" ".join(error.messages), 400)
    except DomainError as error:
        return _refusal(str(error), error.status)

    async def events():
        try:
            async for piece in stream:
                if isinstance(piece, str):  # the chat sends no tools: no tool call pieces come
                    yield _sse("delta", {"text": piece})
        except DomainError as error:  # blocked by a guard (the detector and where), the provider failed mid-answer
            yield _sse("error", error_event(error))
            return
        result = stream.result
        # The session keeps the conversation as the guards let it through (redacted), as the run records it.
        await request.session.aset(
            key, [*stream.call.messages, {"role": "assistant", "content": result.text}][-CONVERSATION_TURNS * 2 :]
        )
        await request.session.asave()  # the response (and the session middleware) went before the answer
        yield _sse("done", _run_row(result.run))

    response = StreamingHttpResponse(EventStream(events(), stream), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def _run_row(run) -> dict:
    """A run as the runs table shows it, for the chat's script to add a row."""
    return {
        "url": reverse("agent_run", args=[run.pk]),
        "when": date_filter(run.created_at, "Y-m-d H:i:s"),
        "status": run.status,
        "status_label": run.get_status_display(),
        "cache": run.cache,
        "tokens": f"{run.input_tokens} / {run.output_tokens}",
        "cost": floatformat(run.cost, 6),
        "latency": f"{run.latency_ms:.0f} ms",
    }


# --- the owner's: settings, deletion, sharing ------------------------------------------------------------------


@login_required
def agent_edit(request, pk):
    agent = _owned(request, pk)
    form = AgentForm(request.POST or None, instance=copy.copy(agent))
    if request.method == "POST" and form.is_valid():
        version = agent.version
        try:  # on a copy: a refused change must not show on the page as if made
            agent = services.agent_update(agent=copy.copy(agent), **form.cleaned_data)
        except ValidationError as error:
            _form_errors(form, error)
        else:
            changed = f" It is now version {agent.version}: earlier cached answers no longer match."
            messages.success(request, "Settings saved." + (changed if agent.version != version else ""))
            return redirect("agent_chat", pk=agent.pk)
    return render(request, "agents/agent_edit.html", {"agent": agent, "form": form}, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def agent_delete(request, pk):
    """A confirmation page; the agent goes on its POST alone."""
    agent = _owned(request, pk, "agents.delete_agent")
    if request.method == "POST":
        try:
            services.agent_delete(agent=agent)
        except ProtectedError:
            messages.error(request, "This agent backs a model an operator exposed: an operator removes that first.")
            return redirect("agent_chat", pk=agent.pk)
        messages.success(request, f"Agent {agent.name} deleted, with its runs.")
        return redirect("agents")
    context = {"agent": agent, "runs": agent.runs.count(), "shares": len(object_shares(obj=agent))}
    return render(request, "agents/agent_delete.html", context)


def _to_sharing(agent):
    return redirect(reverse("agent_chat", args=[agent.pk]) + "#sharing")


@login_required
@require_POST
def agent_share(request, pk):
    agent = _owned(request, pk)
    form = ShareForm(request.POST, prefix="share")
    if not form.is_valid():
        messages.error(request, " ".join(f"{form[f].label}: {' '.join(e)}" for f, e in form.errors.items()))
        return _to_sharing(agent)
    user, level = form.cleaned_data["username"], form.cleaned_data["level"]
    try:
        object_share(obj=agent, owner=request.user, user=user, level=level, request=request)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Shared with {user.username} ({level}).")
    return _to_sharing(agent)


@login_required
@require_POST
def agent_unshare(request, pk, username):
    agent = _owned(request, pk)
    user = get_object_or_404(User, username=username)
    object_unshare(obj=agent, owner=request.user, user=user, request=request)
    messages.success(request, f"No longer shared with {username}.")
    return _to_sharing(agent)


# --- runs ----------------------------------------------------------------------------------------------------------


def _relative(link: str | None) -> str | None:
    if link is None:
        return None
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


@login_required
def agent_runs(request, pk):
    """The runs you made of the agent, newest first (as the API lists them: each user sees their own)."""
    agent = selectors.agent_get(user=request.user, pk=pk)
    pages = RunPages()
    try:
        runs = pages.paginate_queryset(selectors.run_list(user=request.user).filter(agent=agent), Request(request))
    except BadCursor:
        context = {"agent": agent, "runs": [], "bad_page": True}
        return render(request, "agents/agent_runs.html", context, status=400)
    context = {
        "agent": agent,
        "runs": runs,
        "newer": _relative(pages.get_previous_link()),
        "older": _relative(pages.get_next_link()),
    }
    return render(request, "agents/agent_runs.html", context)


def _pretty(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def _message_shown(message) -> dict:
    """One message of a run's input: its text as text, anything else (parts, tool calls) as pretty JSON."""
    if not isinstance(message, dict):
        return {"role": "", "text": "", "json": _pretty(message)}
    content = message.get("content")
    extra = {key: value for key, value in message.items() if key not in ("role", "content")}
    return {
        "role": str(message.get("role", "")),
        "text": content if isinstance(content, str) else "",
        "json": _pretty(content) if content is not None and not isinstance(content, str) else "",
        "extra": _pretty(extra) if extra else "",
    }


@login_required
def agent_run(request, pk):
    run = selectors.run_get(user=request.user, pk=pk)
    shown = run.input if isinstance(run.input, list) else [run.input]
    context = {
        "run": run,
        "agent_visible": selectors.agent_list(user=request.user).filter(pk=run.agent_id).exists(),
        "input": [_message_shown(message) for message in shown],
        "tool_calls": _pretty(run.tool_calls) if run.tool_calls else "",
        "metadata": _pretty(run.metadata) if run.metadata else "",
        "verdicts": list(run.verdicts.all()),  # what the content guards found: never the matched text
    }
    return render(request, "agents/agent_run.html", context)
