"""Workflows and their versions: saving a definition makes a new immutable version; roll back by saving an
old one again; share like agents (view / use)."""

import base64
import secrets
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max

from accounts.services import object_shares_end
from core.encryption import encrypt
from core.exceptions import DomainError
from workflows.definition import DefinitionInvalid, validate
from workflows.models import Workflow, WorkflowRun, WorkflowVersion
from workflows.selectors import OwnerResolver


class DefinitionRejected(DomainError):
    """A definition with problems: every one of them, with its place, in the error body."""

    code = "invalid_definition"

    def __init__(self, problems):
        super().__init__(f"The definition has {len(problems)} problem{'s' if len(problems) != 1 else ''}.")
        self.problems = problems
        self.extra_body = {"problems": [problem.as_dict() for problem in problems]}


def definition_check(*, owner, source: str, format: str | None = None) -> dict:
    """The normalised definition, or DefinitionRejected with every problem."""
    try:
        return validate(source, resolver=OwnerResolver(owner), format=format)
    except DefinitionInvalid as invalid:
        raise DefinitionRejected(invalid.problems) from invalid


def source_format(source: str, format: str | None) -> str:
    if format in ("yaml", "json"):
        return format
    return "json" if source.lstrip().startswith("{") else "yaml"


@transaction.atomic
def workflow_create(*, owner, name: str, source: str, format: str | None = None, description: str = "") -> Workflow:
    definition = definition_check(owner=owner, source=source, format=format)
    workflow = Workflow(owner=owner, name=name, description=description, hook_secret_encrypted=encrypt(_new_secret()))
    workflow.full_clean(exclude=["current_version"])
    try:
        with transaction.atomic():
            workflow.save()
    except IntegrityError as error:
        raise ValidationError({"name": "You already have a workflow with this name."}) from error
    _new_version(workflow, owner, source, source_format(source, format), definition, note="Created.")
    return workflow


@transaction.atomic
def workflow_save(
    *, workflow: Workflow, user, source: str, format: str | None = None, note: str = ""
) -> WorkflowVersion:
    """A new version from a definition; the runs already started keep theirs."""
    definition = definition_check(owner=workflow.owner, source=source, format=format)
    Workflow.objects.select_for_update().get(pk=workflow.pk)
    return _new_version(workflow, user, source, source_format(source, format), definition, note=note)


@transaction.atomic
def workflow_rollback(*, workflow: Workflow, user, number: int) -> WorkflowVersion:
    """Make an earlier version current again, as a new version (history only grows)."""
    old = WorkflowVersion.objects.filter(workflow=workflow, number=number).first()
    if old is None:
        raise ValidationError({"version": f"This workflow has no version {number}."})
    return workflow_save(
        workflow=workflow, user=user, source=old.source, format=old.format, note=f"Rolled back to version {number}."
    )


def workflow_update(*, workflow: Workflow, **fields) -> Workflow:
    for name, value in fields.items():
        setattr(workflow, name, value)
    workflow.full_clean(exclude=["current_version"])
    try:
        with transaction.atomic():
            workflow.save()
    except IntegrityError as error:
        raise ValidationError({"name": "You already have a workflow with this name."}) from error
    return workflow


@transaction.atomic
def workflow_delete(*, workflow: Workflow) -> None:
    """Delete the workflow with its versions and runs (those other workflows started as steps too); its
    shares and schedules go as well."""
    from workflows.services.schedules import schedule_delete

    for schedule in workflow.schedules.all():
        schedule_delete(schedule=schedule)
    object_shares_end(obj=workflow)
    WorkflowRun.objects.filter(workflow=workflow).delete()  # runs pin their versions (PROTECT)
    Workflow.objects.filter(pk=workflow.pk).update(current_version=None)
    workflow.delete()


def workflow_hook_secret_rotate(*, workflow: Workflow) -> str:
    """A new signing secret for the inbound webhook, shown once."""
    secret = _new_secret()
    Workflow.objects.filter(pk=workflow.pk).update(hook_secret_encrypted=encrypt(secret))
    return secret


def _new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _new_version(workflow, user, source, format, definition, *, note) -> WorkflowVersion:
    number = (workflow.versions.aggregate(last=Max("number"))["last"] or 0) + 1
    version = WorkflowVersion.objects.create(
        workflow=workflow,
        number=number,
        source=source,
        format=format,
        definition=definition,
        created_by=user,
        note=note,
    )
    Workflow.objects.filter(pk=workflow.pk).update(current_version=version)
    workflow.current_version = version
    return version


def workflow_import(*, owner, document: dict) -> Workflow:
    """Import what workflow_export wrote: a new workflow, or a new version of the one with this name."""
    if not isinstance(document, dict) or not isinstance(document.get("source"), str) or not document.get("name"):
        raise ValidationError(
            {"document": "An export: an object with `name` and `source` (and `format`, `description`)."}
        )
    existing = Workflow.objects.filter(owner=owner, name=document["name"]).first()
    if existing is not None:
        workflow_save(
            workflow=existing, user=owner, source=document["source"], format=document.get("format"), note="Imported."
        )
        return existing
    return workflow_create(
        owner=owner,
        name=document["name"],
        source=document["source"],
        format=document.get("format"),
        description=document.get("description", ""),
    )


def workflow_export(*, workflow: Workflow) -> dict:
    version = workflow.current_version
    return {
        "name": workflow.name,
        "description": workflow.description,
        "format": version.format,
        "version": version.number,
        "source": version.source,
    }


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_AGENTS = ("researcher", "writer", "critic", "judge", "summarizer")  # the names the examples use


def workflow_examples() -> dict[str, str]:
    """The example workflows shipped in workflows/examples: name -> YAML source."""
    return {path.stem: path.read_text() for path in sorted(EXAMPLES.glob("*.yaml"))}


def workflow_examples_install(*, owner) -> list[Workflow]:
    """The examples as the owner's workflows (the demo data): those whose name is free, and whose agents the
    owner has."""
    installed = []
    for name, source in workflow_examples().items():
        if not Workflow.objects.filter(owner=owner, name=name).exists():
            installed.append(workflow_create(owner=owner, name=name, source=source, description="An example."))
    return installed
