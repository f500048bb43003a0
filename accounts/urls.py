from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views
from accounts.api import auth, keys, me, users

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup/", views.signup, name="signup"),
    path("password/", views.PasswordChangeView.as_view(), name="password_change"),
    path("password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("password/reset/", auth_views.PasswordResetView.as_view(), name="password_reset"),
    path("password/reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path("password/reset/<uidb64>/<token>/", views.PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path("password/reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("profile/", views.profile, name="profile"),
    path("keys/", views.keys, name="keys"),
    path("keys/<int:pk>/rotate/", views.key_rotate, name="key_rotate"),
    path("keys/<int:pk>/revoke/", views.key_revoke, name="key_revoke"),
    path("preferences/", views.preferences, name="preferences"),
    path("security/", views.security, name="security"),
]

# Mounted under /api/v1/ by platform_site.urls.
api_urlpatterns = [
    path("auth/signup", auth.SignupView.as_view(), name="api-signup"),
    path("auth/login", auth.LoginView.as_view(), name="api-login"),
    path("auth/logout", auth.LogoutView.as_view(), name="api-logout"),
    path("auth/password", auth.PasswordChangeView.as_view(), name="api-password-change"),
    path("auth/password-reset", auth.PasswordResetView.as_view(), name="api-password-reset"),
    path("auth/password-reset/confirm", auth.PasswordResetConfirmView.as_view(), name="api-password-reset-confirm"),
    path("me", me.MeView.as_view(), name="api-me"),
    path("preferences", me.PreferencesView.as_view(), name="api-preferences"),
]

api_routes = [
    ("keys", keys.ApiKeyViewSet, "apikey"),
    ("security-events", me.SecurityEventViewSet, "securityevent"),
    ("users", users.UserViewSet, "user"),
    ("roles", users.RoleViewSet, "role"),
]
