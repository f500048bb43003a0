"""Sign-up, sign-in and out, password change and reset. JSON only: a cross-site HTML form cannot post JSON,
so no login CSRF."""

from django.conf import settings
from django.contrib.auth import authenticate, login, logout, update_session_auth_hash
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import serializers, services
from accounts.permissions import PolicyMixin
from accounts.security import TooManyAttempts, login_rate_exceeded, signup_rate_exceeded
from core.parsers import JSONParser


class LockedOut(exceptions.Throttled):
    default_detail = "Too many failed logins from this account or address; try again later."


class PublicJSONView(APIView):
    permission_classes = [AllowAny]
    parser_classes = [JSONParser]  # a cross-site HTML form cannot post JSON: no login CSRF


@extend_schema(tags=["auth"])
class SignupView(PublicJSONView):
    action_errors = {"post": (429,)}

    @extend_schema(request=serializers.SignupSerializer, responses={201: serializers.MeSerializer})
    def post(self, request):
        if not settings.REGISTRATION_OPEN:
            raise exceptions.PermissionDenied("Registration is closed; ask an admin for an account.")
        if signup_rate_exceeded(request._request):
            raise TooManyAttempts()
        data = serializers.SignupSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_register(**data.validated_data, request=request)
        return Response(serializers.MeSerializer(user, context={"request": request}).data, status=201)


@extend_schema(tags=["auth"])
class LoginView(PublicJSONView):
    """Start a browser-style session (cookie); agents use API keys instead."""

    action_errors = {"post": (429,)}

    @extend_schema(request=serializers.LoginSerializer, responses={200: serializers.MeSerializer})
    def post(self, request):
        data = serializers.LoginSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        django_request = request._request
        if login_rate_exceeded(django_request, data.validated_data["username"]):
            raise TooManyAttempts()
        user = authenticate(django_request, **data.validated_data)
        if getattr(django_request, "axes_locked_out", False):
            raise LockedOut(wait=settings.AXES_COOLOFF_TIME.total_seconds())
        if user is None:
            raise exceptions.AuthenticationFailed("Invalid username or password.")
        login(django_request, user)
        return Response(serializers.MeSerializer(user, context={"request": request}).data)


@extend_schema(tags=["auth"])
class LogoutView(PolicyMixin, APIView):
    action_policies = {"post": (None, None)}

    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        logout(request._request)
        return Response(status=204)


@extend_schema(tags=["auth"])
class PasswordChangeView(PolicyMixin, APIView):
    action_policies = {"post": (None, "account:write")}

    @extend_schema(request=serializers.PasswordChangeSerializer, responses={204: None})
    def post(self, request):
        data = serializers.PasswordChangeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_change_password(user=request.user, **data.validated_data, request=request)
        if request.auth is None:
            update_session_auth_hash(request._request, user)
        return Response(status=204)


@extend_schema(tags=["auth"])
class PasswordResetView(PublicJSONView):
    """Email a reset link if an account has this address; the answer is the same either way."""

    @extend_schema(request=serializers.PasswordResetSerializer, responses={202: None})
    def post(self, request):
        data = serializers.PasswordResetSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.password_reset_request(
            email=data.validated_data["email"], request=request._request, use_https=request.is_secure()
        )
        return Response(status=202)


@extend_schema(tags=["auth"])
class PasswordResetConfirmView(PublicJSONView):
    @extend_schema(request=serializers.PasswordResetConfirmSerializer, responses={204: None})
    def post(self, request):
        data = serializers.PasswordResetConfirmSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.password_reset_confirm(**data.validated_data, request=request)
        return Response(status=204)
