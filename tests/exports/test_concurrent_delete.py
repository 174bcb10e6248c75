"""Deleting one snapshot from many callers at once: exactly one deletes it (204), the others find it gone (404)."""

import threading

import pytest
import requests
from rest_framework.authtoken.models import Token

from exports.models import Export, Status
from exports.views import ExportDetailAPI
from tests.exports.helpers import detail_url
from tests.factories import make_project

CALLERS = 10


@pytest.mark.django_db
def test_a_second_delete_answers_404(api_client, user):
    project = make_project(user=user)
    export = Export.objects.create(project=project, created_by=user, status=Status.COMPLETED)

    assert api_client.delete(detail_url(project, export.pk)).status_code == 204
    response = api_client.delete(detail_url(project, export.pk))
    assert response.status_code == 404
    assert response.json()["status_code"] == 404
    assert not Export.objects.filter(pk=export.pk).exists()


@pytest.mark.django_db
def test_a_delete_that_loses_the_race_answers_404(api_client, user, monkeypatch):
    """Another caller deletes the snapshot after this one found it but before it locked it: this one is a 404."""
    project = make_project(user=user)
    export = Export.objects.create(project=project, created_by=user, status=Status.COMPLETED)
    found = ExportDetailAPI.get_object

    def found_then_deleted_by_another(self):
        instance = found(self)
        Export.objects.filter(pk=export.pk).delete()
        return instance

    monkeypatch.setattr(ExportDetailAPI, "get_object", found_then_deleted_by_another)
    response = api_client.delete(detail_url(project, export.pk))
    assert response.status_code == 404
    assert response.json()["status_code"] == 404


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_deletes_of_one_snapshot_answer_one_204(live_server, user):
    project = make_project(user=user)
    export = Export.objects.create(project=project, created_by=user, status=Status.COMPLETED)
    url = live_server.url + detail_url(project, export.pk)
    headers = {"Authorization": f"Token {Token.objects.create(user=user).key}"}
    barrier = threading.Barrier(CALLERS)
    answers: list[tuple[int, str]] = []

    def delete() -> None:
        with requests.Session() as session:
            barrier.wait(10)
            response = session.delete(url, headers=headers, timeout=30)
            answers.append((response.status_code, response.headers.get("Content-Type", "")))

    threads = [threading.Thread(target=delete) for _ in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    statuses = sorted(status for status, _ in answers)
    assert statuses == [204] + [404] * (CALLERS - 1)
    assert all(content_type == "application/json" for status, content_type in answers if status == 404)
    assert not Export.objects.filter(pk=export.pk).exists()
