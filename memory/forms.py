import json
from datetime import datetime, time, timedelta

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts import forms as accounts_forms
from core.parsers import storable_json_problem
from memory.filters import compile_filters
from memory.imports import IMPORT_MAX_BYTES, ImportTooLarge, lines_from_upload
from memory.models import Memory
from memory.services import METADATA_MAX_CHARS

BULK_MAX = 500  # memories changed by one bulk action from the page (it lists 50 at a time)


def _not_json(name: str):
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


class StrictJSONDecoder(json.JSONDecoder):
    """JSON as PostgreSQL stores it: NaN and Infinity refused (Python's json reads them)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{**kwargs, "parse_constant": _not_json})


class MetadataField(forms.JSONField):
    """A memory's metadata: a JSON object, shown indented so it reads and edits as a block."""

    default_error_messages = {"invalid": 'Enter valid JSON: an object such as {"topic": "billing"}.'}

    def __init__(self, **kwargs):
        super().__init__(decoder=StrictJSONDecoder, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value if value is not None else {}, ensure_ascii=False, indent=2)

    def clean(self, value):
        metadata = super().clean(value)
        if metadata is None:
            return {}
        if not isinstance(metadata, dict):
            raise ValidationError('Metadata is a JSON object, such as {"topic": "billing"}.')
        problem = storable_json_problem(metadata)
        if problem:
            raise ValidationError(problem)
        if len(json.dumps(metadata)) > METADATA_MAX_CHARS:
            raise ValidationError(f"At most {METADATA_MAX_CHARS:,} characters of metadata.")
        return metadata


class MemoryForm(forms.Form):
    content = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=20000)
    namespace = forms.SlugField(max_length=100, initial="default")
    kind = forms.ChoiceField(choices=Memory.Kind.choices, initial=Memory.Kind.FACT)
    importance = forms.FloatField(min_value=0, max_value=1, initial=0.5)
    metadata = MetadataField(
        required=False,
        initial=dict,
        widget=forms.Textarea(attrs={"rows": 4, "class": "code"}),
        help_text='A JSON object, such as {"topic": "billing", "priority": 2}; searches filter by its keys.',
    )
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="In UTC. Empty: it never expires. Once expired, no one recalls it and it is pruned.",
    )


class MemoryEditForm(MemoryForm):
    archived = forms.BooleanField(
        required=False, help_text="Kept, but agents no longer recall it; searches find it only when asked to."
    )


def _metadata_value(text: str):
    """A number, true, false or null as such; anything else as text (quotes keep a number as text: "007")."""
    try:
        value = json.loads(text, parse_constant=_not_json)
    except ValueError:
        return text
    return value if isinstance(value, (str, int, float, bool)) or value is None else text


def _start_of(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


class SearchForm(forms.Form):
    """A search (with a query: nearest first, with distances) or a listing (newest first), both filtered;
    `filters` in cleaned_data is in the search's filter language (memory.filters)."""

    query = forms.CharField(required=False, max_length=2000, label="Search")
    namespace = forms.SlugField(required=False, max_length=100)
    kind = forms.ChoiceField(required=False, choices=[("", "any kind"), *Memory.Kind.choices])
    metadata = forms.CharField(
        required=False,
        max_length=1000,
        label="Metadata",
        help_text="key=value, several separated by commas: topic=billing, priority=2 (quote a number to match "
        'it as text: code="007").',
    )
    created_after = forms.DateField(
        required=False, label="Created from", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    created_before = forms.DateField(
        required=False, label="Created until", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    archived = forms.BooleanField(required=False, label="Include archived")

    def clean_metadata(self) -> dict:
        conditions = {}
        for pair in filter(str.strip, self.cleaned_data["metadata"].split(",")):
            key, equals, value = (part.strip() for part in pair.partition("="))
            if not equals or not key:
                raise ValidationError(f"Write key=value, such as topic=billing (not “{pair.strip()}”).")
            conditions[key] = _metadata_value(value)
        return conditions

    def clean(self):
        cleaned = super().clean()
        after, before = cleaned.get("created_after"), cleaned.get("created_before")
        if after and before and after > before:
            self.add_error("created_before", "This day is before the first one.")
        filters = {name: cleaned[name] for name in ("namespace", "kind", "metadata") if cleaned.get(name)}
        if after:  # from the start of that day
            filters["created_after"] = (_start_of(after) - timedelta(microseconds=1)).isoformat()
        if before:  # until the end of that day
            filters["created_before"] = _start_of(before + timedelta(days=1)).isoformat()
        try:
            compile_filters(filters)
        except ValidationError as error:
            self.add_error("metadata" if "metadata" in filters else None, error.message_dict["filters"])
        cleaned["filters"] = filters
        return cleaned


class MemoryIdsField(forms.Field):
    """The ids of the memories ticked in the list (the table's checkboxes, all named `selected`)."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {"required": "Tick the memories to change first."}

    def to_python(self, value) -> list[int]:
        values = value or []
        if not all(str(item).isdigit() and len(str(item)) <= 18 for item in values):  # ids fit a bigint
            raise ValidationError("Those are not memories of yours.")
        if len(values) > BULK_MAX:
            raise ValidationError(f"At most {BULK_MAX} memories at once.")
        return sorted({int(item) for item in values})


class BulkForm(forms.Form):
    ACTIONS = [
        ("archive", "Archive"),
        ("unarchive", "Unarchive"),
        ("move", "Move to a namespace"),
        ("delete", "Delete"),
    ]
    selected = MemoryIdsField()
    action = forms.ChoiceField(choices=ACTIONS, label="With the ticked memories")
    namespace = forms.SlugField(required=False, max_length=100, label="To namespace", help_text="For a move.")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("action") == "move" and not cleaned.get("namespace"):
            self.add_error("namespace", "Name the namespace to move them to.")
        return cleaned


class ImportForm(forms.Form):
    file = forms.FileField(
        label="JSON-lines file",
        widget=forms.ClearableFileInput(attrs={"accept": ".jsonl,.ndjson,.json,.txt,application/x-ndjson,text/plain"}),
        help_text=f"One memory a line, as Export writes them (UTF-8, at most {IMPORT_MAX_BYTES // 1_000_000} MB).",
    )
    idempotency_key = forms.CharField(required=False, max_length=200, widget=forms.HiddenInput)

    def clean_file(self) -> str:
        """The file's JSON lines, as text."""
        try:
            return lines_from_upload(self.cleaned_data["file"])
        except ImportTooLarge:
            raise ValidationError(ImportTooLarge.message) from None
        except ValidationError as error:
            raise ValidationError(error.messages) from None


class ShareForm(accounts_forms.ShareForm):
    field_order = ["namespace", "username", "level"]
    level_help = "view: they read and search it; use: their agents draw on it too."

    namespace = forms.SlugField(max_length=100, initial="default")
