from django import forms

from tasks.models import WebhookEndpoint


class WebhookEndpointForm(forms.Form):
    url = forms.URLField(max_length=500, assume_scheme="https", label="URL")
    events = forms.MultipleChoiceField(
        choices=[(name, f"{name} — {text}") for name, text in WebhookEndpoint.EVENT_TYPES.items()],
        widget=forms.CheckboxSelectMultiple,
        initial=["task.succeeded", "task.failed"],
    )
    description = forms.CharField(max_length=200, required=False)
