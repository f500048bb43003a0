from django import forms

from accounts.models import Preferences, User
from accounts.scopes import default_key_scopes_for, key_scopes_for
from accounts.selectors import agent_choices, model_choices
from accounts.services import PREFERENCE_FIELDS, SHARE_LEVELS


class SignupForm(forms.Form):
    username = forms.RegexField(regex=r"^[\w.@+-]+\Z", max_length=150, help_text="Letters, digits and @ . + - _ only.")
    email = forms.EmailField(max_length=254)
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}), max_length=256, strip=False
    )


class ProfileForm(forms.ModelForm):
    current_password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        required=False,
        max_length=256,
        strip=False,
        help_text="Needed only to change your email address.",
    )

    class Meta:
        model = User
        fields = ["first_name", "last_name", "email"]


class ApiKeyCreateForm(forms.Form):
    """A new key of `user`'s: only the scopes their role can use are offered (and accepted)."""

    name = forms.CharField(max_length=100)
    scopes = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)
    expires_in_days = forms.IntegerField(
        min_value=1, max_value=3650, required=False, help_text="Leave empty for a key that does not expire."
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["scopes"].choices = [(scope, f"{scope} — {text}") for scope, text in key_scopes_for(user).items()]
        self.fields["scopes"].initial = default_key_scopes_for(user)


class PreferencesForm(forms.ModelForm):
    """The user's preferences; the default agent and model are picked from what exists and they may use."""

    notification_webhook = forms.URLField(assume_scheme="https", required=False, max_length=500)
    default_agent = forms.ChoiceField(required=False, help_text="Used when you do not name an agent.")
    default_model = forms.ChoiceField(required=False, help_text="A model of the catalog.")

    class Meta:
        model = Preferences
        fields = PREFERENCE_FIELDS

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["default_agent"].choices = [("", "None")] + agent_choices(user)
        self.fields["default_model"].choices = [("", "None")] + model_choices()


class ShareForm(forms.Form):
    """Share an object with another active user at a level; each app's form says what the levels mean there
    (`level_help`)."""

    level_help = ""

    username = forms.CharField(max_length=150, label="With user")
    level = forms.ChoiceField(choices=[(level, level) for level in SHARE_LEVELS], initial="view")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["level"].help_text = self.level_help

    def clean_username(self):
        user = User.objects.filter(username=self.cleaned_data["username"], is_active=True).first()
        if user is None:
            raise forms.ValidationError("No such user.")
        return user
