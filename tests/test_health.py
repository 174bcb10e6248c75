"""Operator endpoints: /health, /ready and /metrics answer without credentials, in JSON or Prometheus text."""

import re

import pytest
from django.test import Client
from prometheus_client import CONTENT_TYPE_LATEST

from config import health
from exports.models import ConvertedFormat, Export, Status
from tests.factories import make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return Client()  # no credentials, no session


def gauge(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{labels} not in:\n{text}"
    return float(match.group(1))


def test_health_is_up_without_credentials_or_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/health")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "UP"}


def test_ready_reports_each_check(client):
    response = client.get("/ready")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "UP", "checks": {"database": "UP", "storage": "UP"}}


def test_ready_names_the_database_when_it_does_not_answer(client, monkeypatch):
    def broken(alias="default"):
        raise health.connections[alias].Database.OperationalError("connection refused at /secret/path")

    monkeypatch.setattr(health, "check_database", broken)
    response = client.get("/ready")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "DOWN", "checks": {"database": "DOWN", "storage": "UP"}}
    assert b"secret" not in response.content


def test_ready_names_the_database_when_the_cursor_fails(client, monkeypatch):
    def broken_cursor(*args, **kwargs):
        raise health.connections["default"].Database.OperationalError("no")

    monkeypatch.setattr(health.connections["default"], "cursor", broken_cursor)
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "DOWN", "storage": "UP"}


def test_ready_names_the_storage_when_its_folder_is_not_usable(client, settings, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the export folder should be")
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(blocker)}},
    }
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json() == {"status": "DOWN", "checks": {"database": "UP", "storage": "DOWN"}}
    assert str(tmp_path).encode() not in response.content


def test_ready_checks_the_broker_with_celery(client, settings, monkeypatch):
    settings.JOBS_BACKEND = "celery"
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    monkeypatch.setattr(health, "BROKER_TIMEOUT", 0.5)
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json() == {"status": "DOWN", "checks": {"database": "UP", "storage": "UP", "broker": "DOWN"}}
    assert b"redis" not in response.content


def test_metrics_counts_snapshots_and_conversions_by_status(client, user):
    project = make_project(user=user, title="Metrics")
    for status, count in [(Status.CREATED, 2), (Status.IN_PROGRESS, 1), (Status.COMPLETED, 3), (Status.FAILED, 1)]:
        for _ in range(count):
            Export.objects.create(project=project, created_by=user, status=status)
    done = Export.objects.filter(status=Status.COMPLETED)
    ConvertedFormat.objects.create(export=done[0], export_type="CSV", status=Status.CREATED)
    ConvertedFormat.objects.create(export=done[1], export_type="CSV", status=Status.COMPLETED)
    ConvertedFormat.objects.create(export=done[2], export_type="CSV", status=Status.FAILED)

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPE_LATEST
    text = response.content.decode()
    assert gauge(text, "lsexport_database_up") == 1
    assert gauge(text, "lsexport_snapshots", '{status="created"}') == 2
    assert gauge(text, "lsexport_snapshots", '{status="in_progress"}') == 1
    assert gauge(text, "lsexport_snapshots", '{status="completed"}') == 3
    assert gauge(text, "lsexport_snapshots", '{status="failed"}') == 1
    assert gauge(text, "lsexport_conversions", '{status="created"}') == 1
    assert gauge(text, "lsexport_conversions", '{status="in_progress"}') == 0
    assert gauge(text, "lsexport_conversions", '{status="completed"}') == 1
    assert gauge(text, "lsexport_conversions", '{status="failed"}') == 1
    assert gauge(text, "lsexport_jobs_waiting") == 3
    assert "project" not in text
    assert "user" not in text


def test_metrics_are_read_at_scrape_time(client, user):
    assert gauge(client.get("/metrics").content.decode(), "lsexport_snapshots", '{status="created"}') == 0
    Export.objects.create(project=make_project(user=user), created_by=user)
    assert gauge(client.get("/metrics").content.decode(), "lsexport_snapshots", '{status="created"}') == 1


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics"])
def test_operator_endpoints_need_no_credentials_and_never_answer_html(client, path):
    response = client.get(path, HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert not response["Content-Type"].startswith("text/html")
    assert b"<html" not in response.content.lower()


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics"])
def test_operator_endpoints_only_read(client, path):
    response = client.delete(path)
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response["Allow"] == "GET, HEAD"


def test_operator_endpoints_stay_out_of_the_schema(client, api_client):
    paths = api_client.get("/api/schema/", {"format": "json"}).json()["paths"]
    assert not {"/health", "/ready", "/metrics"} & set(paths)
