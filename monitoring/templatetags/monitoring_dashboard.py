"""The admin index's data, loaded by templates/admin/index.html: Django's default admin site stays as it is (every
`admin.site.register` keeps working, no settings to change) and only the index page runs these reads."""

from django import template
from django.utils import timezone

from monitoring import dashboard
from monitoring.selectors import alerts_open

register = template.Library()


@register.simple_tag
def operators_dashboard() -> dict:
    figures = dashboard.dashboard()
    return {**figures, "charts": dashboard.chart_data(figures["windows"]), "status": dashboard.system_status()}


@register.filter
def in_operator_order(app_list):
    return dashboard.apps_in_order(app_list)


@register.simple_tag
def open_alerts(limit: int = 20) -> list:
    """The open alerts (critical first, newest first), in monitoring/admin/open_alerts.html."""
    return alerts_open(limit=limit)


@register.filter
def is_silenced(alert) -> bool:
    return alert.silenced(timezone.now())
