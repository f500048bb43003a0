"""How errors appear in the OpenAPI schema: one error body for every status, and on each operation every
status it can answer.

Every operation may answer 400 (a parameter or body that does not validate), 500 and 503 (a service it
needs is down); one with a body also 413. A view lists what else its actions can answer:

    action_errors = {"invoke": (409, 422, 429, 502, 504)}      # for a plain APIView, by HTTP method
"""

from drf_standardized_errors.openapi import AutoSchema as StandardAutoSchema
from rest_framework import serializers

ALWAYS = {"400", "500", "503"}
WITH_A_BODY = {"413"}


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable, e.g. required, not_found, quota_exceeded.")
    detail = serializers.CharField()
    attr = serializers.CharField(allow_null=True, help_text="The field or parameter at fault, if one is.")


class QuotaSerializer(serializers.Serializer):
    policy = serializers.CharField()
    limit = serializers.CharField(help_text="Which limit of the policy, e.g. tokens_per_day.")
    value = serializers.CharField()
    window_seconds = serializers.IntegerField()
    reset_seconds = serializers.IntegerField()


class ErrorResponseSerializer(serializers.Serializer):
    """The one error body (see core.api_errors); `quota` only on a 429 from a quota."""

    type = serializers.ChoiceField(choices=["validation_error", "client_error", "server_error"])
    errors = ErrorDetailSerializer(many=True)
    quota = QuotaSerializer(required=False)


class AutoSchema(StandardAutoSchema):
    def _should_add_error_response(self, responses: dict, status_code: str) -> bool:
        if status_code in responses:
            return False
        action = getattr(self.view, "action", None) or self.method.lower()
        if int(status_code) in getattr(self.view, "action_errors", {}).get(action, ()) or status_code in ALWAYS:
            return True
        if status_code in WITH_A_BODY:
            return self.method in ("POST", "PUT", "PATCH")
        if status_code in ("409", "422", "502", "504"):  # only where a view declares them
            return False
        return super()._should_add_error_response(responses, status_code)
