"""Browser pages: search, add, edit, delete and export your memories; share namespaces of them. Writes need
the same role permissions as the API's (a viewer reads only)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.models import User
from accounts.selectors import owned_get
from accounts.services import object_unshare
from memory import selectors, services
from memory.forms import MemoryForm, SearchForm, ShareForm
from memory.models import MemoryNamespace
from memory.search import memory_search


@login_required
def memory_list(request):
    search = SearchForm(request.GET or None, auto_id="search_%s")  # ids apart from the add form's
    if request.method == "POST" and not request.user.has_perm("memory.add_memory"):
        raise PermissionDenied("Your role may not add memories.")
    form = MemoryForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.memory_create(owner=request.user, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error.messages)
        else:
            messages.success(request, "Memory saved.")
            return redirect("memories")
    results, plan = [], None
    if search.is_valid() and search.cleaned_data["query"]:
        filters = {name: search.cleaned_data[name] for name in ("namespace", "kind") if search.cleaned_data[name]}
        hits, plan = memory_search(
            user=request.user,
            query=search.cleaned_data["query"],
            filters=filters,
            k=20,
            include_archived=search.cleaned_data["archived"],
        )
        results = [hit.memory for hit in hits]
    else:
        archived = search.is_valid() and search.cleaned_data["archived"]
        results = selectors.memory_list(user=request.user, include_archived=archived)[:50]
    context = {
        "search": search,
        "form": form,
        "memories": results,
        "plan": plan,
        "share_form": ShareForm(prefix="share"),
    }
    context["my_shares"], context["shared_with_me"] = selectors.namespace_sharing(user=request.user)
    return render(request, "memory/memories.html", context)


@login_required
@permission_required("memory.change_memorynamespace", raise_exception=True)
@require_POST
def namespace_share(request):
    form = ShareForm(request.POST, prefix="share")
    if form.is_valid():
        try:
            services.namespace_share(
                owner=request.user,
                name=form.cleaned_data["namespace"],
                user=form.cleaned_data["username"],
                level=form.cleaned_data["level"],
                request=request,
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, f"Namespace {form.cleaned_data['namespace']} shared.")
    else:
        messages.error(request, " ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()))
    return redirect("memories")


@login_required
@permission_required("memory.change_memorynamespace", raise_exception=True)
@require_POST
def namespace_unshare(request, pk, username):
    namespace = owned_get(user=request.user, queryset=MemoryNamespace.objects.all(), pk=pk)
    user = get_object_or_404(User, username=username)
    object_unshare(obj=namespace, owner=request.user, user=user, request=request)
    messages.success(request, f"Namespace {namespace.name} is no longer shared with {username}.")
    return redirect("memories")


@login_required
@permission_required("memory.change_memory", raise_exception=True)
def memory_edit(request, pk):
    memory = selectors.memory_get_owned(user=request.user, pk=pk)
    initial = {name: getattr(memory, name) for name in ("content", "namespace", "kind", "importance")}
    form = MemoryForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        services.memory_update(memory=memory, **form.cleaned_data)
        messages.success(request, "Memory updated.")
        return redirect("memories")
    return render(request, "memory/memory_edit.html", {"form": form, "memory": memory})


@login_required
@permission_required("memory.delete_memory", raise_exception=True)
@require_POST
def memory_delete(request, pk):
    services.memory_delete(memory=selectors.memory_get_owned(user=request.user, pk=pk))
    messages.success(request, "Memory deleted.")
    return redirect("memories")


@login_required
def memory_export(request):
    response = StreamingHttpResponse(selectors.memory_export(user=request.user), content_type="application/x-ndjson")
    response["Content-Disposition"] = 'attachment; filename="memories.jsonl"'
    return response
