"""Browser pages: search, add, edit, delete, archive and move your memories (one or many at once), export
and import them, share namespaces of them. Writes need the same role permissions as the API's (a viewer
reads only); memories shared with you are read only, and anyone else's do not exist (404)."""

import json
import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.models import User
from accounts.selectors import owned_get
from accounts.services import object_unshare
from memory import selectors, services
from memory.forms import BulkForm, ImportForm, MemoryEditForm, MemoryForm, SearchForm, ShareForm
from memory.imports import import_problems
from memory.models import MemoryNamespace
from memory.search import memory_search
from tasks.models import TaskRecord
from tasks.selectors import task_list

PAGE_SIZE = 50
SEARCH_K = 20
IMPORT_KIND = "memory.import"


def _form_errors(form, error: ValidationError) -> None:
    """A service's ValidationError on the form: on its field where the form has one."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error.messages)
        return
    for field, problems in error.message_dict.items():
        form.add_error(field if field in form.fields else None, problems)


def _pretty_json(value) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def _row(memory, distance: float | None = None) -> dict:
    """A line of the Memories table: the memory, its distance to the query (searches only), its metadata
    as indented JSON (the template escapes it)."""
    return {
        "memory": memory,
        "distance": distance,
        "metadata": _pretty_json(memory.metadata) if memory.metadata else "",
    }


def _page_number(request) -> int:
    """?page=, from 1 to 9999 (past that the offset only costs: filters reach old memories instead)."""
    number = request.GET.get("page", "1")
    return max(1, int(number)) if number.isdigit() and len(number) <= 4 else 1


def _found(request, search: SearchForm) -> dict:
    """What the list shows: a search's hits nearest first, with their distances, or a page of memories newest
    first, both filtered; nothing for a search that does not validate (its form says why)."""
    found = {"plan": None, "rows": [], "page": None, "has_next": False}
    if search.is_bound and not search.is_valid():
        return found
    cleaned = search.cleaned_data if search.is_bound else {}
    filters, archived = cleaned.get("filters"), cleaned.get("archived", False)
    if cleaned.get("query"):
        hits, found["plan"] = memory_search(
            user=request.user, query=cleaned["query"], filters=filters, k=SEARCH_K, include_archived=archived
        )
        found["rows"] = [_row(hit.memory, hit.distance) for hit in hits]
        return found
    memories = selectors.memory_browse(user=request.user, filters=filters, include_archived=archived)
    page = _page_number(request)
    listed = list(memories[(page - 1) * PAGE_SIZE : page * PAGE_SIZE + 1])  # one more: is there a next page
    found.update(rows=[_row(memory) for memory in listed[:PAGE_SIZE]], page=page, has_next=len(listed) > PAGE_SIZE)
    return found


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
            _form_errors(form, error)
        else:
            messages.success(request, "Memory saved.")
            return redirect("memories")
    context = {"search": search, "form": form, **_found(request, search)}
    context["filtering"] = search.is_bound and bool(
        search.errors or search.cleaned_data["filters"] or search.cleaned_data["archived"]
    )
    context["can_change"] = request.user.has_perm("memory.change_memory")
    context["bulk_form"] = BulkForm(auto_id="bulk_%s")
    context["share_form"] = ShareForm(prefix="share")
    context["my_shares"], context["shared_with_me"] = selectors.namespace_sharing(user=request.user)
    return render(request, "memory/memories.html", context)


@login_required
@require_POST
def memory_bulk(request):
    """Archive, unarchive, move or delete the ticked memories (only the user's own are touched)."""
    form = BulkForm(request.POST)
    back = request.POST.get("next", "")
    if not (back.startswith("/memories/") and url_has_allowed_host_and_scheme(back, {request.get_host()})):
        back = reverse("memories")
    if not form.is_valid():
        messages.error(request, " ".join(message for errors in form.errors.values() for message in errors))
        return redirect(back)
    action = form.cleaned_data["action"]
    if not request.user.has_perm("memory.delete_memory" if action == "delete" else "memory.change_memory"):
        raise PermissionDenied("Your role may not change memories.")
    memories = selectors.memories_owned(user=request.user, pks=form.cleaned_data["selected"])
    if action == "delete":
        changed, done = services.memories_delete(memories=memories), "deleted"
    elif action == "move":
        namespace = form.cleaned_data["namespace"]
        changed, done = services.memories_move(memories=memories, namespace=namespace), f"moved to {namespace}"
    else:
        changed = services.memories_archive(memories=memories, archived=action == "archive")
        done = f"{action}d"
    messages.success(request, f"{changed} {'memory' if changed == 1 else 'memories'} {done}.")
    return redirect(back)


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
def memory_edit(request, pk):
    """The owner edits every field; a user it is shared with reads it (and cannot post); anyone else: 404."""
    memory = selectors.memory_get(user=request.user, pk=pk)
    own = memory.owner_id == request.user.pk
    if not (own and request.user.has_perm("memory.change_memory")):
        if request.method == "POST" and not own:
            raise Http404("No such memory.")
        if request.method == "POST":
            raise PermissionDenied("Your role may not change memories.")
        context = {"memory": memory, "metadata": _pretty_json(memory.metadata)}
        return render(request, "memory/memory_detail.html", context)
    fields = ("content", "namespace", "kind", "importance", "metadata", "expires_at", "archived")
    form = MemoryEditForm(request.POST or None, initial={name: getattr(memory, name) for name in fields})
    if request.method == "POST" and form.is_valid():
        try:
            services.memory_update(memory=memory, **form.cleaned_data)
        except ValidationError as error:
            _form_errors(form, error)
        else:
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


def _imports(user):
    """The user's imports, without their input (the lines, up to the import's bound)."""
    return task_list(user=user).filter(kind=IMPORT_KIND).defer("input")


@login_required
def memory_import(request):
    """Upload an export (JSON lines) and start its import as a task; its page shows the progress."""
    if request.method == "POST" and not request.user.has_perm("memory.add_memory"):
        raise PermissionDenied("Your role may not add memories.")
    form = ImportForm(request.POST or None, request.FILES or None, initial={"idempotency_key": uuid.uuid4().hex})
    if request.method == "POST" and form.is_valid():
        record, _ = services.memory_import_start(
            owner=request.user, lines=form.cleaned_data["file"], idempotency_key=form.cleaned_data["idempotency_key"]
        )
        return redirect("memory_import_status", record.pk)
    return render(request, "memory/import.html", {"form": form, "imports": _imports(request.user)[:10]})


@login_required
def memory_import_status(request, pk):
    """One import's progress (static/js/memories.js polls the task API and reloads when it ends), then its
    outcome: how many memories it added, or each line at fault, in words."""
    record = _imports(request.user).filter(pk=pk).first()
    if record is None:
        raise Http404("No such import.")
    failed = record.status == TaskRecord.Status.FAILED
    context = {
        "task": record,
        "problems": import_problems(record.error) if failed else [],
        "poll_url": reverse("taskrecord-detail", args=[record.pk]),
    }
    return render(request, "memory/import_status.html", context)
