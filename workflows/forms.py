"""Forms of the workflows' browser pages: the editor, import, a run's inputs (one field per declared input),
sharing, schedules and decisions."""

import json

from django import forms

from accounts import forms as accounts_forms

MAX_SOURCE = 256 * 1024
MAX_IMPORT_BYTES = 512 * 1024
FORMATS = [("", "Detect (JSON if it starts with {)"), ("yaml", "YAML"), ("json", "JSON")]
CODE = {"rows": 18, "class": "code", "spellcheck": "false", "autocapitalize": "off", "autocomplete": "off"}


class SourceForm(forms.Form):
    """A new version of a workflow: the definition's text."""

    source = forms.CharField(
        label="Definition",
        widget=forms.Textarea(attrs=CODE),
        max_length=MAX_SOURCE,
        strip=False,
        help_text="YAML or JSON, in the workflow language (docs/workflows.md).",
    )
    format = forms.ChoiceField(choices=FORMATS, required=False)
    note = forms.CharField(max_length=200, required=False, help_text="What changed (shown in the versions list).")

    field_order = ["note", "format", "source"]

    def clean_format(self):
        return self.cleaned_data["format"] or None


class WorkflowForm(SourceForm):
    """A new workflow from the editor."""

    name = forms.SlugField(max_length=100, help_text="Letters, digits, - and _; unique among your workflows.")
    description = forms.CharField(max_length=500, required=False)

    field_order = ["name", "description", "format", "source"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.fields["note"]


class ImportForm(forms.Form):
    file = forms.FileField(
        label="Export file",
        help_text="A workflow's export (JSON). A workflow of yours with its name gets it as a new version.",
        widget=forms.ClearableFileInput(attrs={"accept": "application/json,.json"}),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_IMPORT_BYTES:
            raise forms.ValidationError(f"An export is at most {MAX_IMPORT_BYTES // 1024} KB.")
        try:
            document = json.loads(upload.read().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise forms.ValidationError(f"Not a JSON file: {error}") from None
        if not isinstance(document, dict):
            raise forms.ValidationError("An export is a JSON object with name, format and source.")
        return document


class JSONInput(forms.JSONField):
    """A JSON value typed in a textarea; nothing typed is no value (not the text "null")."""

    def prepare_value(self, value):
        return "" if value is None else super().prepare_value(value)


class RunForm(forms.Form):
    """One field per input the definition declares, of its type, filled with its default; an input left empty
    takes its default."""

    def __init__(self, *args, inputs: dict, **kwargs):
        kwargs.setdefault("prefix", "input")
        super().__init__(*args, **kwargs)
        self.declared = inputs
        for name, spec in inputs.items():
            self.fields[name] = self._field(name, spec)

    @staticmethod
    def _field(name, spec):
        kind = spec.get("type", "string")
        has_default = "default" in spec
        required = spec.get("required", not has_default) and not has_default and kind != "boolean"
        help_text = spec.get("description", "")
        common = {"label": name, "required": required, "help_text": help_text, "initial": spec.get("default")}
        if kind == "integer":
            return forms.IntegerField(**common)
        if kind == "number":
            return forms.FloatField(**common, widget=forms.NumberInput(attrs={"step": "any"}))
        if kind == "boolean":
            return forms.BooleanField(**{**common, "initial": bool(spec.get("default", False))})
        if kind in ("object", "array"):
            example = "{}" if kind == "object" else "[]"
            common["help_text"] = f"{common['help_text']} JSON {kind}, e.g. {example}.".strip()
            return JSONInput(**common, widget=forms.Textarea(attrs={"rows": 4, "class": "code", "spellcheck": "false"}))
        return forms.CharField(**common, strip=False, widget=forms.Textarea(attrs={"rows": 2}))

    def clean(self):
        cleaned = super().clean()
        for name, spec in self.declared.items():
            kind = spec.get("type", "string")
            value = cleaned.get(name)
            if kind == "object" and value is not None and not isinstance(value, dict):
                self.add_error(name, 'A JSON object, like {"key": "value"}.')
            if kind == "array" and value is not None and not isinstance(value, list):
                self.add_error(name, "A JSON array, like [1, 2].")
        return cleaned

    def inputs(self) -> dict:
        """The values given; an empty optional field is left out, so the definition's default applies."""
        values = {}
        for name, spec in self.declared.items():
            value = self.cleaned_data.get(name)
            kind = spec.get("type", "string")
            if kind == "boolean":
                values[name] = bool(value)
            elif value is None or (value == "" and "default" in spec):
                continue
            else:
                values[name] = value
        return values


class ShareForm(accounts_forms.ShareForm):
    level_help = "view: they see it and its diagram; use: they can run it too (with their own budget)."


class ScheduleForm(forms.Form):
    cron = forms.CharField(
        max_length=100,
        label="Cron",
        initial="0 6 * * 1",
        help_text="minute hour day-of-month month day-of-week, in UTC (0 6 * * 1: Mondays at 06:00).",
    )
    inputs = forms.JSONField(
        required=False,
        initial=dict,
        label="Inputs (JSON)",
        widget=forms.Textarea(attrs={"rows": 3, "class": "code", "spellcheck": "false"}),
    )

    def clean_inputs(self):
        value = self.cleaned_data["inputs"]
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError("A JSON object of the workflow's inputs.")
        return value


class DecisionForm(forms.Form):
    comment = forms.CharField(max_length=1000, required=False, widget=forms.Textarea(attrs={"rows": 2}))
