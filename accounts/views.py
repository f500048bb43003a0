"""Browser pages of accounts: sign-up and sign-in, profile, API keys, preferences, security events."""

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts import selectors, services
from accounts.forms import ApiKeyCreateForm, PreferencesForm, ProfileForm, SignupForm
from accounts.models import SecurityEvent, User
from accounts.security import (
    LimiterUnavailable,
    key_creation_rate_exceeded,
    login_rate_exceeded,
    signup_rate_exceeded,
)
from core.exceptions import Conflict


def _too_many(request, check, *args) -> bool:
    """Whether a django-ratelimit check refuses; an unreachable limiter refuses too (fails closed)."""
    try:
        return check(*args)
    except LimiterUnavailable:
        return True


def _add_errors(form, error: ValidationError) -> None:
    for field, messages_ in error.message_dict.items():
        form.add_error(field if field in form.fields else None, messages_)


class LoginView(auth_views.LoginView):
    """Django's login, slowed per address and per account before django-axes locks them out."""

    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        try:
            too_fast = login_rate_exceeded(request, request.POST.get("username", ""))
        except LimiterUnavailable:
            return render(
                request, "registration/login.html", {"form": self.get_form(), "unavailable": True}, status=503
            )
        if too_fast:
            return render(request, "registration/login.html", {"form": self.get_form(), "too_fast": True}, status=429)
        return super().post(request, *args, **kwargs)


class PasswordChangeView(auth_views.PasswordChangeView):
    def form_valid(self, form):
        response = super().form_valid(form)
        services.security_event_record(
            kind=SecurityEvent.Kind.PASSWORD_CHANGED,
            request=self.request,
            actor=self.request.user,
            user=self.request.user,
        )
        return response


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    def form_valid(self, form):
        response = super().form_valid(form)
        services.security_event_record(
            kind=SecurityEvent.Kind.PASSWORD_RESET, request=self.request, actor=form.user, user=form.user
        )
        return response


def locked_out(request, original_response, credentials):
    """django-axes' answer to a locked-out login: the API's own 429 body for the API, a page for people."""
    if request.path.startswith("/api/") and original_response is not None:
        return original_response
    retry_after = int(settings.AXES_COOLOFF_TIME.total_seconds())
    response = render(request, "registration/locked_out.html", {"minutes": retry_after // 60}, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def signup(request):
    if not settings.REGISTRATION_OPEN:
        return render(request, "accounts/signup.html", {"closed": True}, status=403)
    if request.user.is_authenticated:
        return redirect("dashboard")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and _too_many(request, signup_rate_exceeded, request):
        return render(request, "accounts/signup.html", {"form": form, "too_fast": True}, status=429)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_register(**form.cleaned_data, request=request)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, "Welcome to Switchboard. Create an API key to let your agents in.")
            return redirect("keys")
    return render(request, "accounts/signup.html", {"form": form})


@login_required
def profile(request):
    # The form edits a copy: the service compares against the saved email and writes the real user.
    form = ProfileForm(request.POST or None, instance=User.objects.get(pk=request.user.pk))
    if request.method == "POST" and form.is_valid():
        try:
            services.user_update_profile(user=request.user, request=request, **form.cleaned_data)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, "Profile saved.")
            return redirect("profile")
    return render(request, "accounts/profile.html", {"form": form})


@login_required
@never_cache
def keys(request):
    form = ApiKeyCreateForm(request.POST or None, user=request.user)
    if request.method == "POST" and _too_many(request, key_creation_rate_exceeded, request, request.user):
        messages.error(request, "Too many keys created recently; try again later.")
        return redirect("keys")
    if request.method == "POST" and form.is_valid():
        days = form.cleaned_data["expires_in_days"]
        try:
            key, full_key = services.apikey_create(
                user=request.user,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                expires_at=timezone.now() + timedelta(days=days) if days else None,
                actor=request.user,
                request=request,
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            return render(request, "accounts/key_secret.html", {"key": key, "full_key": full_key, "created": True})
    return render(request, "accounts/keys.html", {"form": form, "keys": selectors.apikey_list(user=request.user)})


@login_required
@never_cache
@require_POST
def key_rotate(request, pk):
    key = selectors.apikey_get(user=request.user, pk=pk, own_only=True)
    if _too_many(request, key_creation_rate_exceeded, request, request.user):
        messages.error(request, "Too many keys created or rotated recently; try again later.")
        return redirect("keys")
    try:
        key, full_key = services.apikey_rotate(key=key, actor=request.user, request=request)
    except Conflict as error:
        messages.error(request, str(error))
        return redirect("keys")
    return render(request, "accounts/key_secret.html", {"key": key, "full_key": full_key, "created": False})


@login_required
@require_POST
def key_revoke(request, pk):
    key = selectors.apikey_get(user=request.user, pk=pk, own_only=True)
    services.apikey_revoke(key=key, actor=request.user, request=request)
    messages.success(request, f"Key {key.prefix} revoked; it stopped working at once.")
    return redirect("keys")


@login_required
def preferences(request):
    form = PreferencesForm(
        request.POST or None, instance=selectors.preferences_get(user=request.user), user=request.user
    )
    if request.method == "POST" and form.is_valid():
        fields = {name: form.cleaned_data[name] for name in form.Meta.fields}
        services.preferences_update(user=request.user, **fields)
        messages.success(request, "Preferences saved.")
        return redirect("preferences")
    return render(request, "accounts/preferences.html", {"form": form})


@login_required
def security(request):
    page = Paginator(selectors.security_event_list(user=request.user), 50).get_page(request.GET.get("page"))
    return render(request, "accounts/security.html", {"page": page})
