from django import forms

from agents.models import Agent


class AgentForm(forms.ModelForm):
    class Meta:
        model = Agent
        fields = ["name", "agent_type", "model", "system_prompt", "temperature", "max_tokens"]
        widgets = {"system_prompt": forms.Textarea(attrs={"rows": 3})}


class ChatForm(forms.Form):
    message = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=20000, strip=True)
