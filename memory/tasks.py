from celery import shared_task

from memory import maintenance, services
from tasks.tracked import tracked_task


@shared_task(name="memory.prune")
def prune_task() -> dict:
    return maintenance.prune()


@shared_task(name="memory.archive")
def archive_task() -> int:
    return maintenance.archive()


@shared_task(name="memory.reindex")
def reindex_task() -> int:
    return len(maintenance.reindex())


@shared_task(name="memory.reembed")
def reembed_task() -> int:
    """Beat job: memories embedded by another model than the configured one are embedded again."""
    return maintenance.reembed()


@tracked_task("memory.import")
def import_task(self, *, owner_id: int, lines: str) -> dict:
    """Bulk import of JSON lines (one memory per line) started through the API (202)."""
    from django.contrib.auth import get_user_model

    owner = get_user_model().objects.get(pk=owner_id)
    return services.memory_import(owner=owner, lines=lines, progress=self.progress)
