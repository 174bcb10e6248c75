"""LOG_FORMAT=json: every line is one JSON object with the time, level, logger and message, and the request id,
user id and job id where known; each request gets an id (the client's when sane), echoed in `X-Request-ID`, and
one access line. The default text format writes the plain message, as before."""

import io
import json
import logging
import logging.config
import re
from datetime import datetime

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

from config.logs import REQUEST_ID_HEADER, logging_config
from exports import jobs
from exports.models import Export, Status
from tests.exports.helpers import list_url
from tests.factories import make_project

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


class Logs:
    """What the handler of a `logging_config(...)` wrote, line by line."""

    def __init__(self, log_format: str):
        self.stream = io.StringIO()
        config = logging_config(log_format, level="INFO")
        config["handlers"]["console"]["stream"] = self.stream
        logging.config.dictConfig(config)

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.lines()]

    def access(self) -> list[dict]:
        return [record for record in self.records() if record["logger"] == "access"]


@pytest.fixture
def json_logs(settings):
    """Logging set up as settings set it up with LOG_FORMAT=json; the test run's own setup is restored after."""
    yield Logs("json")
    logging.config.dictConfig(settings.LOGGING)


@pytest.fixture
def text_logs(settings):
    yield Logs("text")
    logging.config.dictConfig(settings.LOGGING)


def test_a_request_logs_json_lines_with_its_id_and_user(json_logs, api_client, user):
    response = api_client.get(reverse("project-list"), HTTP_X_REQUEST_ID="client-id_1.2")
    assert response.status_code == 200
    assert response[REQUEST_ID_HEADER] == "client-id_1.2"
    [line] = json_logs.access()
    assert line["request_id"] == "client-id_1.2"
    assert line["user_id"] == user.pk
    assert line["level"] == "INFO"
    assert line["message"].startswith("GET /api/projects/ 200 ")
    assert (line["method"], line["path"], line["status"]) == ("GET", "/api/projects/", 200)
    assert isinstance(line["duration_ms"], float)
    assert datetime.fromisoformat(line["time"]).utcoffset().total_seconds() == 0
    assert line["time"].endswith("Z")
    # No credentials in any line.
    key = Token.objects.get(user=user).key
    assert key not in json_logs.stream.getvalue()
    assert "authorization" not in json_logs.stream.getvalue().lower()


@pytest.mark.parametrize(
    "incoming",
    [None, "", "has space", "semi;colon", "x" * 65, "ünïcode", "new\nline"],
    ids=["missing", "empty", "space", "semicolon", "too-long", "non-ascii", "newline"],
)
def test_an_unusable_request_id_is_replaced(json_logs, api_client, incoming):
    headers = {} if incoming is None else {"HTTP_X_REQUEST_ID": incoming}
    response = api_client.get(reverse("project-list"), **headers)
    generated = response[REQUEST_ID_HEADER]
    assert GENERATED_ID.fullmatch(generated)
    assert json_logs.access()[0]["request_id"] == generated


def test_the_longest_sane_request_id_is_kept(json_logs, api_client):
    incoming = "A" * 64
    assert api_client.get(reverse("project-list"), HTTP_X_REQUEST_ID=incoming)[REQUEST_ID_HEADER] == incoming


def test_unauthenticated_and_unmatched_requests_get_an_id_but_no_user(json_logs, db):
    response = Client().get("/api/no-such-path/")
    assert response.status_code == 404
    [line] = json_logs.access()
    assert line["request_id"] == response[REQUEST_ID_HEADER]
    assert line["status"] == 404
    assert "user_id" not in line


def test_a_session_user_is_logged_too(json_logs, user):
    client = Client()
    client.force_login(user)
    assert client.get(reverse("project-list")).status_code == 200
    assert json_logs.access()[0]["user_id"] == user.pk


def test_records_inside_a_request_carry_its_ids(json_logs, api_client, user, monkeypatch):
    """Records written while the request is handled (here about an unhandled error) carry its ids too."""

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("projects.views.ProjectListAPI.list", explode)
    response = api_client.get(reverse("project-list"), HTTP_X_REQUEST_ID="req-500")
    assert response.status_code == 500
    errors = [record for record in json_logs.records() if record["level"] == "ERROR"]
    assert {record["logger"] for record in errors} == {"config.api.exceptions", "django.request"}
    for error in errors:  # Django's own line, written after the middleware returned, too
        assert (error["request_id"], error["user_id"]) == ("req-500", user.pk)
    [unhandled] = [error for error in errors if error["logger"] == "config.api.exceptions"]
    assert "RuntimeError: boom" in unhandled["exception"]
    assert json_logs.access()[0]["status"] == 500


def test_a_background_job_logs_its_job_id(json_logs, api_client, user, monkeypatch, django_capture_on_commit_callbacks):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(jobs.SnapshotWriter, "for_export", broken)
    project = make_project(user=user)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(list_url(project), {}, format="json")
    assert response.status_code == 201
    export_id = response.json()["id"]
    assert Export.objects.get(pk=export_id).status == Status.FAILED
    [failure] = [record for record in json_logs.records() if record["logger"] == "exports.jobs"]
    assert failure["job_id"] == f"run_export:{export_id}"
    assert failure["level"] == "ERROR"
    assert failure["message"] == f"Export {export_id} failed"
    assert "RuntimeError: disk on fire" in failure["exception"]
    # Every line is one JSON object, the multi-line traceback included.
    assert len(json_logs.lines()) == len(json_logs.records())


def test_a_celery_task_logs_its_job_id(json_logs, user, monkeypatch):
    from exports import tasks

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(jobs.SnapshotWriter, "for_export", broken)
    export = Export.objects.create(project=make_project(user=user), created_by=user)
    tasks.run_export_task.apply(args=(export.pk,))
    [failure] = [record for record in json_logs.records() if record["logger"] == "exports.jobs"]
    assert failure["job_id"] == f"run_export:{export.pk}"
    logging.getLogger("exports.jobs").warning("after the task")
    assert "job_id" not in json_logs.records()[-1]


def test_extra_fields_and_newlines_stay_on_one_line(json_logs):
    logging.getLogger("exports.jobs").warning("two\nlines", extra={"export_id": 7})
    [line] = json_logs.lines()
    record = json.loads(line)
    assert record["message"] == "two\nlines"
    assert record["export_id"] == 7
    assert record["logger"] == "exports.jobs"
    assert record["level"] == "WARNING"
    assert not {"request_id", "user_id", "job_id", "exception"} & set(record)


def test_the_default_text_format_writes_the_plain_message(text_logs, api_client):
    logging.getLogger("exports.jobs").warning("Export %s failed", 3)
    response = api_client.get(reverse("project-list"))
    assert GENERATED_ID.fullmatch(response[REQUEST_ID_HEADER])  # the id is echoed in either format
    assert text_logs.lines() == ["Export 3 failed"]  # no JSON, and no access line (gunicorn writes those)


def test_an_unknown_log_format_refuses_to_start():
    with pytest.raises(ImproperlyConfigured, match="LOG_FORMAT"):
        logging_config("xml")
