import io
import json
import logging

import pytest
from django.http import JsonResponse
from django.urls import path

from core import log_formats
from tests.worker_tasks import report_request_id_task


def start_task_view(request):
    """Stands for any view that starts background work."""
    result = report_request_id_task.delay()
    return JsonResponse({"task_id": result.id})


urlpatterns = [path("start-task", start_task_view)]


def json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue  # the worker's start-up banner is plain text
    return lines


def test_a_well_formed_request_id_is_kept_and_returned(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="req-42.a:b")

    assert response["X-Request-ID"] == "req-42.a:b"


@pytest.mark.parametrize("supplied", ["", "has spaces", "x" * 129, 'inject"\n{"level":"ERROR"}'])
def test_a_missing_or_malformed_request_id_is_replaced_by_a_generated_one(client, supplied):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=supplied)

    generated = response["X-Request-ID"]
    assert generated != supplied
    assert len(generated) == 32 and generated.isalnum()


@pytest.fixture
def log_output():
    """What the configured console handler writes, for the duration of a test."""
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "name", None) == "console")
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


@pytest.mark.django_db
def test_log_lines_are_json_with_the_request_id_and_the_user_id(client, django_user_model, log_output):
    alice = django_user_model.objects.create_user("alice", password="unused-password-1")
    client.force_login(alice)

    client.get("/", HTTP_X_REQUEST_ID="trace-alice-1")

    access = [line for line in json_lines(log_output.getvalue()) if line.get("logger") == "switchboard.access"]
    assert access, "no access log line written"
    line = access[-1]
    assert line["request_id"] == "trace-alice-1"
    assert line["user_id"] == alice.pk
    assert line["level"] == "INFO"
    assert line["path"] == "/" and line["status"] == 200
    assert {"timestamp", "message"} <= line.keys()


@pytest.mark.django_db
def test_text_log_lines_are_one_readable_line_with_the_same_fields(client, django_user_model, log_output):
    """LOG_FORMAT=text, as `make run` prints: the message first, then only the fields that are set."""
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "name", None) == "console")
    previous = handler.formatter
    handler.setFormatter(log_formats.TextFormatter())
    try:
        alice = django_user_model.objects.create_user("alice", password="unused-password-1")
        client.force_login(alice)
        client.get("/", HTTP_X_REQUEST_ID="trace-alice-2")
        try:
            raise ValueError("the detail")
        except ValueError:
            logging.getLogger("switchboard.test").exception("it broke")
    finally:
        handler.setFormatter(previous)

    lines = log_output.getvalue().splitlines()
    [access] = [line for line in lines if line.startswith("INFO switchboard.access: ")]
    assert "request_id=trace-alice-2" in access and f"user_id={alice.pk}" in access and "status=200" in access
    assert "task_id=" not in access  # unset: left out
    broke = lines.index("ERROR switchboard.test: it broke")  # no request here: nothing after the message
    assert lines[broke + 1] == "Traceback (most recent call last):" and "ValueError: the detail" in lines
    assert not json_lines(log_output.getvalue())


@pytest.mark.urls(__name__)
@pytest.mark.django_db(transaction=True)
def test_the_request_id_travels_into_the_celery_task_the_request_started(client, celery_worker):
    response = client.get("/start-task", HTTP_X_REQUEST_ID="trace-into-task-7")
    task_id = response.json()["task_id"]

    seen_by_task = report_request_id_task.AsyncResult(task_id).get(timeout=30)

    assert seen_by_task == "trace-into-task-7"
    task_lines = [line for line in json_lines(celery_worker.log_text()) if line.get("task_id") == task_id]
    assert any(line["message"] == "reporting the request id" for line in task_lines)
    assert all(line["request_id"] == "trace-into-task-7" for line in task_lines)
