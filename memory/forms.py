from django import forms

from accounts.models import User
from accounts.services import SHARE_LEVELS
from memory.models import Memory


class MemoryForm(forms.Form):
    content = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=20000)
    namespace = forms.SlugField(max_length=100, initial="default")
    kind = forms.ChoiceField(choices=Memory.Kind.choices, initial=Memory.Kind.FACT)
    importance = forms.FloatField(min_value=0, max_value=1, initial=0.5)


class SearchForm(forms.Form):
    query = forms.CharField(required=False, max_length=2000, label="Search")
    namespace = forms.SlugField(required=False, max_length=100)
    kind = forms.ChoiceField(required=False, choices=[("", "any kind"), *Memory.Kind.choices])
    archived = forms.BooleanField(required=False, label="Include archived")


class ShareForm(forms.Form):
    namespace = forms.SlugField(max_length=100, initial="default")
    username = forms.CharField(max_length=150, label="With user")
    level = forms.ChoiceField(
        choices=[(level, level) for level in SHARE_LEVELS],
        initial="view",
        help_text="view: they read and search it; use: their agents draw on it too.",
    )

    def clean_username(self):
        user = User.objects.filter(username=self.cleaned_data["username"], is_active=True).first()
        if user is None:
            raise forms.ValidationError("No such user.")
        return user
