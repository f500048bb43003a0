from django import forms

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
