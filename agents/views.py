"""Browser pages: your agents, and a chat with one of them next to its runs."""

from asgiref.sync import async_to_sync
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render

from agents import selectors
from agents.forms import AgentForm, ChatForm
from agents.services.agents import agent_create
from agents.services.invocation import agent_invoke
from core.exceptions import DomainError

CONVERSATION_TURNS = 20  # kept in the session, per agent


@login_required
def agent_list(request):
    if request.method == "POST" and not request.user.has_perm("agents.add_agent"):
        raise PermissionDenied("Your role may not create agents.")
    form = AgentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            agent = agent_create(owner=request.user, **form.cleaned_data)
        except ValidationError as error:
            for field, problems in error.message_dict.items():
                form.add_error(field if field in form.fields else None, problems)
        else:
            return redirect("agent_chat", pk=agent.pk)
    return render(request, "agents/agents.html", {"form": form, "agents": selectors.agent_list(user=request.user)})


@login_required
def agent_chat(request, pk):
    agent = selectors.agent_get(user=request.user, pk=pk)
    session_key = f"chat:{agent.pk}:{agent.version}"
    conversation = request.session.get(session_key, [])
    form = ChatForm(request.POST or None)
    if request.method == "POST" and "reset" in request.POST:
        request.session.pop(session_key, None)
        return redirect("agent_chat", pk=agent.pk)
    if request.method == "POST" and form.is_valid():
        if not request.user.has_perm("agents.invoke_agent"):
            messages.error(request, "Your role does not allow invoking agents.")
            return redirect("agent_chat", pk=agent.pk)
        agent = selectors.agent_get(user=request.user, pk=pk, level="use")
        asked = [*conversation, {"role": "user", "content": form.cleaned_data["message"]}]
        try:
            result = async_to_sync(agent_invoke)(user=request.user, agent=agent, messages=asked)
        except ValidationError as error:
            form.add_error("message", error.messages)
        except DomainError as error:  # refused, a limit, a provider down: said on the page
            messages.error(request, str(error))
        else:
            conversation = [*asked, {"role": "assistant", "content": result.text}][-CONVERSATION_TURNS * 2 :]
            request.session[session_key] = conversation
            return redirect("agent_chat", pk=agent.pk)
    runs = selectors.run_list(user=request.user).filter(agent=agent)[:20]
    return render(
        request, "agents/chat.html", {"agent": agent, "conversation": conversation, "form": form, "runs": runs}
    )
