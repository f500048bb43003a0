from monitoring.models import Alert


def alerts_open(*, limit: int = 100) -> list[Alert]:
    """The open alerts, critical first, then the most recent (for the dashboard and the command line)."""
    alerts = Alert.objects.filter(state=Alert.State.OPEN).select_related("rule")
    return sorted(alerts.order_by("-opened_at")[:limit], key=lambda alert: alert.rule.severity != "critical")
