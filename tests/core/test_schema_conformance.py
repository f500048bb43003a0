"""Schemathesis over the whole OpenAPI schema, against a live server: no generated request, valid or not,
gets a server error or an answer its operation's schema does not describe (status, content type, body).

Examples are bounded per operation and derandomized, so a run is repeatable; the operation that can revoke
the caller's own key gets a fresh key for every request. Not checked: that every schema-invalid request
is refused (DRF turns a number sent for a text field into text, as documented by DRF).
"""

import json
import os

import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from rest_framework.renderers import JSONRenderer
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.scopes import key_scopes
from tests.conftest import make_key, make_user

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", 20))  # per operation and mode; raise it for a deeper run
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
REVOKES_THE_CALLER = {"POST /api/v1/keys/{id}/revoke"}

SCHEMA = schemathesis.openapi.from_dict(
    json.loads(JSONRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_every_answer_is_one_the_schema_describes(operation, mode, live_server):
    admin = make_user("fuzzer", role="admin")  # the only admin: it can neither demote nor deactivate itself
    shared_key = make_key(admin, scopes=list(key_scopes()))

    def headers():
        key = make_key(admin, scopes=list(key_scopes())) if operation.label in REVOKES_THE_CALLER else shared_key
        return {"Authorization": f"Bearer {key}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def exercise(case):
        case.call_and_validate(base_url=live_server.url, headers=headers(), checks=CHECKS)

    exercise()
