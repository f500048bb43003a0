from django.contrib.auth.models import Group
from rest_framework import serializers

from accounts.models import API_KEY_STATUSES, ROLES, ApiKey, Preferences, SecurityEvent, User
from accounts.scopes import key_scopes
from accounts.selectors import agent_choices, model_choices
from accounts.services import PREFERENCE_FIELDS, SHARE_LEVELS

# --- auth ----------------------------------------------------------------------------------------------


class SignupSerializer(serializers.Serializer):
    username = serializers.RegexField(r"^[\w.@+-]+\Z", max_length=150)
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(
        write_only=True, max_length=256, trim_whitespace=False, style={"input_type": "password"}
    )


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(
        write_only=True, max_length=256, trim_whitespace=False, style={"input_type": "password"}
    )


class PasswordChangeSerializer(serializers.Serializer):
    old_password = serializers.CharField(write_only=True, max_length=256, trim_whitespace=False)
    new_password = serializers.CharField(write_only=True, max_length=256, trim_whitespace=False)


class PasswordResetSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)


class PasswordResetConfirmSerializer(serializers.Serializer):
    uid = serializers.CharField(max_length=64, help_text="The uid part of the link in the reset email.")
    token = serializers.CharField(max_length=128, help_text="The token part of the link in the reset email.")
    new_password = serializers.CharField(write_only=True, max_length=256, trim_whitespace=False)


# --- me and users --------------------------------------------------------------------------------------


class MeSerializer(serializers.ModelSerializer):
    role = serializers.CharField(read_only=True, allow_null=True)
    scopes = serializers.SerializerMethodField(help_text="Scopes of the API key used; null for a browser session.")

    class Meta:
        model = User
        fields = ["id", "username", "email", "first_name", "last_name", "role", "is_staff", "date_joined", "scopes"]
        read_only_fields = ["id", "username", "role", "is_staff", "date_joined"]

    def get_scopes(self, user) -> list[str] | None:
        key = self.context["request"].auth
        return sorted(key.scopes) if isinstance(key, ApiKey) else None


class ProfileUpdateSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254, required=False)
    current_password = serializers.CharField(
        write_only=True,
        required=False,
        max_length=256,
        trim_whitespace=False,
        help_text="Needed to change the email address.",
    )
    first_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=150, required=False, allow_blank=True)


class UserSerializer(serializers.ModelSerializer):
    role = serializers.CharField(read_only=True, allow_null=True)

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "email",
            "first_name",
            "last_name",
            "role",
            "is_active",
            "is_staff",
            "date_joined",
            "last_login",
        ]
        read_only_fields = fields


class UserCreateSerializer(SignupSerializer):
    role = serializers.ChoiceField(choices=ROLES, required=False)


class UserUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=ROLES, required=False)
    is_active = serializers.BooleanField(required=False)


class RoleSerializer(serializers.ModelSerializer):
    permissions = serializers.SerializerMethodField()

    class Meta:
        model = Group
        fields = ["name", "permissions"]

    def get_permissions(self, group) -> list[str]:
        return sorted(f"{perm.content_type.app_label}.{perm.codename}" for perm in group.permissions.all())


# --- API keys ------------------------------------------------------------------------------------------


class ApiKeySerializer(serializers.ModelSerializer):
    prefix = serializers.CharField(read_only=True, help_text="The public part of the key: sb_<key id>.")
    status = serializers.ChoiceField(choices=API_KEY_STATUSES, read_only=True)
    user = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "prefix",
            "name",
            "user",
            "scopes",
            "status",
            "created_at",
            "rotated_at",
            "previous_valid_until",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "last_used_ip",
        ]
        read_only_fields = fields


class ApiKeyWithSecretSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The full key. Shown this once; store it now.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(key_scopes())), min_length=1, max_length=len(key_scopes())
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    user = serializers.IntegerField(required=False, help_text="Operators: create the key for this user (by id).")


class ApiKeyRotateSerializer(serializers.Serializer):
    grace_hours = serializers.FloatField(
        required=False,
        min_value=0,
        max_value=24 * 30,
        help_text="How long the current secret keeps working; default API_KEY_ROTATION_GRACE_HOURS.",
    )


# --- preferences, events, shares -----------------------------------------------------------------------


class PreferencesSerializer(serializers.ModelSerializer):
    """The default agent and model name something: only an agent the user may invoke (`agent:<id>`) and a
    model of the catalog are taken, as on the Preferences page."""

    class Meta:
        model = Preferences
        fields = [*PREFERENCE_FIELDS, "updated_at"]
        read_only_fields = ["updated_at"]

    def validate_default_agent(self, value: str) -> str:
        if value and value not in dict(agent_choices(self.instance.user)):
            raise serializers.ValidationError("Not an agent you may invoke: give `agent:<id>` of one of them.")
        return value

    def validate_default_model(self, value: str) -> str:
        if value and value not in dict(model_choices()):
            raise serializers.ValidationError("Not a model of the catalog.")
        return value


class SecurityEventSerializer(serializers.ModelSerializer):
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    api_key = serializers.CharField(source="api_key.prefix", read_only=True, allow_null=True, default=None)

    class Meta:
        model = SecurityEvent
        fields = ["id", "kind", "created_at", "actor", "api_key", "ip_address", "user_agent", "request_id", "detail"]
        read_only_fields = fields


class ShareSerializer(serializers.Serializer):
    user = serializers.SlugRelatedField(slug_field="username", queryset=User.objects.filter(is_active=True))
    level = serializers.ChoiceField(choices=SHARE_LEVELS)
