"""The quota policy form of the admin: agent type and model are picked from what exists, not typed."""

from django import forms
from django.apps import apps

from quotas.models import QuotaPolicy


def agent_type_choices() -> list[tuple[str, str]]:
    """Agent types by slug. Agents live above quotas: the model is looked up by its label, not imported."""
    slugs = apps.get_model("agents", "AgentType").objects.order_by("slug").values_list("slug", flat=True)
    return [("", "Any agent type")] + [(slug, slug) for slug in slugs]


def model_choices() -> list[tuple[str, str]]:
    names = apps.get_model("agents", "LanguageModel").objects.order_by("name").values_list("name", flat=True)
    return [("", "Any model")] + [(name, name) for name in names]


class QuotaPolicyForm(forms.ModelForm):
    agent_type = forms.ChoiceField(required=False, help_text="Blank: any agent type.")
    model = forms.ChoiceField(required=False, help_text="A model of the catalog; blank: any model.")

    class Meta:
        model = QuotaPolicy
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["agent_type"].choices = agent_type_choices()
        self.fields["model"].choices = model_choices()
