import hashlib
import json

import pytest

from exports.models import Export, Status
from tests.exports.helpers import create_export, download_url
from tests.factories import fill_project, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(user):
    project = make_project(user=user, title="Anchor A")
    fill_project(project, user=user, count=4)
    return project


@pytest.fixture
def export(api_client, project, django_capture_on_commit_callbacks):
    return create_export(api_client, project, django_capture_on_commit_callbacks)


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_download_serves_the_bytes_the_md5_describes(api_client, project, export):
    response = api_client.get(download_url(project, export["id"]))
    assert response.status_code == 200
    content = body_of(response)
    detail_md5 = Export.objects.get(pk=export["id"]).md5
    assert hashlib.md5(content).hexdigest() == detail_md5
    assert response["Content-Type"] == "application/json"
    assert response["Content-Length"] == str(len(content))
    name = Export.objects.get(pk=export["id"]).download_name()
    assert name.startswith(f"project-{project.pk}-at-")
    assert name.endswith(f"-{detail_md5[:8]}.json")
    assert response["Content-Disposition"] == f'attachment; filename="{name}"'
    assert response["filename"] == name


def test_snapshot_holds_every_task_in_label_studio_shape(api_client, project, export):
    tasks = json.loads(body_of(api_client.get(download_url(project, export["id"]))))
    assert [task["id"] for task in tasks] == sorted(project.tasks.values_list("id", flat=True))
    task = tasks[0]
    for key in (
        "id",
        "annotations",
        "drafts",
        "predictions",
        "data",
        "meta",
        "created_at",
        "updated_at",
        "inner_id",
        "total_annotations",
        "cancelled_annotations",
        "total_predictions",
        "project",
        "updated_by",
        "comment_authors",
    ):
        assert key in task
    assert task["data"] == {"image": "https://example.com/img/0.jpg"}
    annotation = task["annotations"][0]
    assert annotation["completed_by"] == project.created_by_id
    assert annotation["task"] == task["id"]
    assert annotation["result"][0]["value"]["rectanglelabels"] == ["Car"]
    assert task["predictions"] == [project.predictions.get(task_id=task["id"]).pk]
    assert task["created_at"].endswith("Z")


def test_explicit_json_type_gives_the_same_bytes(api_client, project, export):
    plain = body_of(api_client.get(download_url(project, export["id"])))
    typed = body_of(api_client.get(download_url(project, export["id"]) + "?exportType=JSON"))
    assert plain == typed


@pytest.mark.parametrize("export_type", ["FOO", "json"])
def test_unknown_type_is_a_400(api_client, project, export, export_type):
    response = api_client.get(download_url(project, export["id"]) + f"?exportType={export_type}")
    assert response.status_code == 400
    assert "JSON" in response.json()["validation_errors"]["exportType"][0]


def test_ranges(api_client, project, export):
    full = body_of(api_client.get(download_url(project, export["id"])))
    response = api_client.get(download_url(project, export["id"]), HTTP_RANGE="bytes=0-9")
    assert response.status_code == 206
    assert body_of(response) == full[:10]
    assert response["Content-Range"] == f"bytes 0-9/{len(full)}"
    response = api_client.get(download_url(project, export["id"]), HTTP_RANGE="bytes=-5")
    assert response.status_code == 206
    assert body_of(response) == full[-5:]
    response = api_client.get(download_url(project, export["id"]), HTTP_RANGE="bytes=10-")
    assert body_of(response) == full[10:]
    response = api_client.get(download_url(project, export["id"]), HTTP_RANGE=f"bytes={len(full)}-")
    assert response.status_code == 416
    assert response.json()["status_code"] == 416
    assert response["Content-Range"] == f"bytes */{len(full)}"


def test_head(api_client, project, export):
    full = body_of(api_client.get(download_url(project, export["id"])))
    response = api_client.head(download_url(project, export["id"]))
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(full))
    assert body_of(response) == b""


@pytest.mark.parametrize("state", [Status.CREATED, Status.IN_PROGRESS, Status.FAILED])
def test_not_completed_is_a_json_404(api_client, user, project, state):
    export = Export.objects.create(project=project, created_by=user, status=state)
    response = api_client.get(download_url(project, export.pk))
    assert response.status_code == 404
    assert "not completed" in response.json()["detail"]


def test_empty_project_gives_an_empty_array(api_client, user, django_capture_on_commit_callbacks):
    project = make_project(user=user, title="Empty")
    export = create_export(api_client, project, django_capture_on_commit_callbacks)
    content = body_of(api_client.get(download_url(project, export["id"])))
    assert content == b"[]"
    assert Export.objects.get(pk=export["id"]).md5 == hashlib.md5(b"[]").hexdigest()


def test_a_storage_failure_is_a_json_503_without_paths(api_client, project, export, monkeypatch, settings):
    """The storage's own message (with its paths) goes to the log, never to the caller."""
    from exports import storage
    from exports.exceptions import ExportStorageError

    secret_path = f"{settings.DATA_DIR}/exports/{project.pk}/export-{export['id']}.json"

    def unreachable(name):
        raise ExportStorageError(f"Could not read {secret_path}: [Errno 5] Input/output error")

    monkeypatch.setattr(storage, "size", unreachable)
    response = api_client.get(download_url(project, export["id"]))
    assert response.status_code == 503
    body = response.json()
    assert body["status_code"] == 503
    assert body["detail"].startswith("The export storage is unavailable")
    assert str(settings.DATA_DIR) not in response.content.decode()
    assert "Errno" not in response.content.decode()
