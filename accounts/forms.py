from django import forms

from accounts.models import Preferences, User
from accounts.scopes import default_key_scopes, key_scopes
from accounts.services import PREFERENCE_FIELDS


class SignupForm(forms.Form):
    username = forms.RegexField(regex=r"^[\w.@+-]+\Z", max_length=150, help_text="Letters, digits and @ . + - _ only.")
    email = forms.EmailField()
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}), max_length=256, strip=False
    )


class ProfileForm(forms.ModelForm):
    current_password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        required=False,
        strip=False,
        help_text="Needed only to change your email address.",
    )

    class Meta:
        model = User
        fields = ["first_name", "last_name", "email"]


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=100)
    scopes = forms.MultipleChoiceField(
        choices=lambda: [(scope, f"{scope} — {text}") for scope, text in key_scopes().items()],
        widget=forms.CheckboxSelectMultiple,
        initial=default_key_scopes,
    )
    expires_in_days = forms.IntegerField(
        min_value=1, max_value=3650, required=False, help_text="Leave empty for a key that does not expire."
    )


class PreferencesForm(forms.ModelForm):
    notification_webhook = forms.URLField(assume_scheme="https", required=False, max_length=500)

    class Meta:
        model = Preferences
        fields = PREFERENCE_FIELDS
