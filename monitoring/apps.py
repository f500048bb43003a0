from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Observability for operators: alert rules and alerts, and the dashboard on the admin index."""

    name = "monitoring"
    verbose_name = "Monitoring"

    # Operators manage the alert rules and read the alerts and their notifications (accounts.roles).
    role_permissions = {
        "operator": [
            "monitoring.view_alertrule",
            "monitoring.add_alertrule",
            "monitoring.change_alertrule",
            "monitoring.delete_alertrule",
            "monitoring.view_alert",
            "monitoring.view_alertnotification",
        ],
    }

    def ready(self):
        from django.contrib import admin

        # The admin is the platform's, not "Django administration" (every admin page's header and title).
        admin.site.site_header = admin.site.site_title = "Switchboard administration"
        admin.site.index_title = "Operators' dashboard"
