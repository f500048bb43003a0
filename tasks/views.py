"""Browser pages: your tasks, your webhook endpoints and their deliveries. Writes need the same role
permissions as the API's (a viewer reads only)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from core.exceptions import Conflict
from tasks import selectors
from tasks.forms import WebhookEndpointForm
from tasks.services import records
from tasks.services.webhooks import (
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_update,
    webhook_ping_start,
)


@login_required
def task_list(request):
    page = Paginator(selectors.task_list(user=request.user), 50).get_page(request.GET.get("page"))
    return render(request, "tasks/tasks.html", {"page": page})


@login_required
@permission_required("tasks.change_taskrecord", raise_exception=True)
@require_POST
def task_cancel(request, pk):
    record = selectors.task_get(user=request.user, pk=pk)
    try:
        records.task_cancel(record=record, actor=request.user)
        messages.success(request, "Task cancelled.")
    except Conflict as error:
        messages.error(request, str(error))
    return redirect("tasks")


@login_required
@never_cache
def webhooks(request):
    if request.method == "POST" and not request.user.has_perm("tasks.add_webhookendpoint"):
        raise PermissionDenied("Your role may not add webhook endpoints.")
    form = WebhookEndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            endpoint, secret = webhook_endpoint_create(owner=request.user, **form.cleaned_data)
        except ValidationError as error:
            for field, problems in error.message_dict.items():
                form.add_error(field if field in form.fields else None, problems)
        else:
            return render(request, "tasks/webhook_secret.html", {"endpoint": endpoint, "secret": secret})
    endpoints = selectors.webhook_endpoint_list(user=request.user)
    disabled = selectors.webhook_endpoints_disabled(user=request.user)
    return render(
        request, "tasks/webhooks.html", {"form": form, "endpoints": endpoints, "disabled_endpoints": disabled}
    )


@login_required
def webhook_detail(request, pk):
    endpoint = selectors.webhook_endpoint_get(user=request.user, pk=pk)
    deliveries = selectors.delivery_list(endpoint=endpoint)[:50]
    return render(request, "tasks/webhook_detail.html", {"endpoint": endpoint, "deliveries": deliveries})


@login_required
@require_POST
def webhook_action(request, pk, action):
    if not request.user.has_perm(f"tasks.{'delete' if action == 'delete' else 'change'}_webhookendpoint"):
        raise PermissionDenied("Your role may not change webhook endpoints.")
    endpoint = selectors.webhook_endpoint_get(user=request.user, pk=pk)
    if action == "ping":
        webhook_ping_start(endpoint=endpoint, owner=request.user)
        messages.success(request, "A test event is on its way; its delivery appears below.")
    elif action == "enable":
        webhook_endpoint_update(endpoint=endpoint, is_active=True)
        messages.success(request, "Endpoint enabled.")
    elif action == "disable":
        webhook_endpoint_update(endpoint=endpoint, is_active=False)
        messages.success(request, "Endpoint disabled.")
    elif action == "rotate":
        secret = webhook_endpoint_rotate_secret(endpoint=endpoint)
        return render(request, "tasks/webhook_secret.html", {"endpoint": endpoint, "secret": secret, "rotated": True})
    elif action == "delete":
        webhook_endpoint_delete(endpoint=endpoint)
        messages.success(request, "Endpoint deleted.")
        return redirect("webhooks")
    return redirect("webhook_detail", pk=endpoint.pk)
