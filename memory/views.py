"""Browser pages: search, add, edit, delete and export your memories."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from memory import selectors, services
from memory.forms import MemoryForm, SearchForm


@login_required
def memory_list(request):
    search = SearchForm(request.GET or None)
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
        hits, plan = selectors.memory_search(
            user=request.user, query=search.cleaned_data["query"], filters=filters, k=20,
            include_archived=search.cleaned_data["archived"], touch=False,
        )  # fmt: skip
        results = [hit.memory for hit in hits]
    else:
        archived = search.is_valid() and search.cleaned_data["archived"]
        results = selectors.memory_list(user=request.user, include_archived=archived)[:50]
    context = {"search": search, "form": form, "memories": results, "plan": plan}
    return render(request, "memory/memories.html", context)


@login_required
def memory_edit(request, pk):
    memory = selectors.memory_get(user=request.user, pk=pk)
    initial = {name: getattr(memory, name) for name in ("content", "namespace", "kind", "importance")}
    form = MemoryForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        services.memory_update(memory=memory, **form.cleaned_data)
        messages.success(request, "Memory updated.")
        return redirect("memories")
    return render(request, "memory/memory_edit.html", {"form": form, "memory": memory})


@login_required
@require_POST
def memory_delete(request, pk):
    selectors.memory_get(user=request.user, pk=pk).delete()
    messages.success(request, "Memory deleted.")
    return redirect("memories")


@login_required
def memory_export(request):
    response = StreamingHttpResponse(services.memory_export(user=request.user), content_type="application/x-ndjson")
    response["Content-Disposition"] = 'attachment; filename="memories.jsonl"'
    return response
