from auditlog.middleware import AuditlogMiddleware

from accounts.security import client_ip


class AuditContextMiddleware(AuditlogMiddleware):
    """django-auditlog's actor and address, with the address taken under the trusted-proxy rule.

    API-key requests are authenticated later, inside DRF; `ApiKeyAuthentication` sets the actor then.
    """

    @staticmethod
    def _get_remote_addr(request):
        return client_ip(request)
