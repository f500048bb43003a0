"""Browser forms of agents. What names something (the agent type, the model, a share level) is a choice of
what exists, checked on the server; the services validate again (agents.services.agents)."""

from django import forms

from accounts import forms as accounts_forms
from agents import selectors
from agents.models import Agent, LanguageModel


class ModelChoice(forms.ModelChoiceField):
    def label_from_instance(self, model: LanguageModel) -> str:
        if model.provider.kind == "echo":
            return f"{model.name} (built in: answers with your message)"
        if model.input_price_per_mtok is None or model.output_price_per_mtok is None:
            return f"{model.name} (no price: calls are refused)"
        return (
            f"{model.name} (${model.input_price_per_mtok:.2f} in / ${model.output_price_per_mtok:.2f} out per M tokens)"
        )


class AgentForm(forms.ModelForm):
    """Every field of an agent its owner sets. Bound to a copy of the agent when editing: a ModelForm writes
    its values on its instance, and the update service compares against the agent as it was."""

    model = ModelChoice(
        queryset=LanguageModel.objects.none(),
        required=False,
        empty_label="The agent type's default model",
        help_text="From the model catalog.",
    )

    class Meta:
        model = Agent
        fields = ["name", "agent_type", "model", "system_prompt", "temperature", "max_tokens", "use_memory"]
        widgets = {
            "system_prompt": forms.Textarea(attrs={"rows": 4}),
            "temperature": forms.NumberInput(attrs={"step": "0.1", "min": "0", "max": "2"}),
            "max_tokens": forms.NumberInput(attrs={"min": "1"}),
        }
        labels = {"use_memory": "Use memory", "max_tokens": "Max tokens"}
        help_texts = {
            "temperature": "0 to 2. Empty: the agent type's default.",
            "max_tokens": "The longest answer, in tokens. Empty: the agent type's default.",
            "use_memory": "Put the memories nearest to each question in the prompt: yours (of this agent or of "
            "none) and those of namespaces shared with you for use. The memory switch in your Preferences must "
            "be on too.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["agent_type"].queryset = selectors.agent_type_list()
        self.fields["agent_type"].empty_label = None
        models = selectors.model_list()
        current = self.instance.model_id
        if current is not None:  # a model since switched off stays choosable on its agent
            models = models | LanguageModel.objects.filter(pk=current).select_related("provider")
        self.fields["model"].queryset = models.order_by("name")


class ChatForm(forms.Form):
    message = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=20000, strip=True)


class ShareForm(accounts_forms.ShareForm):
    level_help = (
        "view: they see the agent and its settings; use: they can chat with it and invoke it too "
        "(with their own budget)."
    )
