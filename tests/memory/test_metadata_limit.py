"""A memory's metadata is bounded (10,000 characters as JSON) through the API and an import; the browser form
checks the same limit (memory/forms.py)."""

import json

import pytest

from memory.models import Memory
from memory.services import METADATA_MAX_CHARS, ImportProblems, memory_import
from tests.conftest import api_client

TOO_MUCH = {"notes": "x" * METADATA_MAX_CHARS}


@pytest.mark.django_db
def test_the_api_refuses_metadata_past_the_limit_and_stores_nothing(alice):
    response = api_client(alice).post("/api/v1/memories", {"content": "a fact", "metadata": TOO_MUCH}, format="json")
    assert response.status_code == 400
    assert "At most 10,000 characters of metadata." in json.dumps(response.json())
    assert not Memory.objects.filter(owner=alice).exists()


@pytest.mark.django_db
def test_an_import_names_the_line_whose_metadata_is_too_large(alice):
    lines = json.dumps({"content": "fine"}) + "\n" + json.dumps({"content": "big", "metadata": TOO_MUCH}) + "\n"
    with pytest.raises(ImportProblems) as problems:
        memory_import(owner=alice, lines=lines)
    assert "Line 2: at most 10,000 characters of metadata." in problems.value.messages
