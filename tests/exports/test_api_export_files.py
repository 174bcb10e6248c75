"""GET /api/projects/{id}/export/files: Label Studio's older list of export files, read by its export page."""

import pytest
from django.urls import reverse

from exports.models import Export, Status
from tests.exports.helpers import create_export
from tests.factories import fill_project, make_project

pytestmark = pytest.mark.django_db


def files_url(project) -> str:
    return reverse("project-export-files", kwargs={"pk": project.pk})


@pytest.fixture
def project(user):
    project = make_project(user=user, title="Files")
    fill_project(project, user=user, count=2)
    return project


def test_completed_snapshots_newest_first_each_downloadable(api_client, project, django_capture_on_commit_callbacks):
    older = create_export(api_client, project, django_capture_on_commit_callbacks)
    newer = create_export(api_client, project, django_capture_on_commit_callbacks)
    Export.objects.create(project=project, status=Status.FAILED)  # not a file
    Export.objects.create(project=project)  # not written yet

    response = api_client.get(files_url(project))

    assert response.status_code == 200
    files = response.json()["export_files"]
    expected = [Export.objects.get(pk=item["id"]) for item in (newer, older)]
    assert files == [
        {
            "name": export.download_name("json").removesuffix(".json"),
            "url": reverse("project-exports-download", kwargs={"pk": project.pk, "export_pk": export.pk}),
        }
        for export in expected
    ]
    download = api_client.get(files[0]["url"])
    assert download.status_code == 200
    assert download["filename"] == f"{files[0]['name']}.json"


def test_no_snapshot_is_an_empty_list(api_client, project):
    assert api_client.get(files_url(project)).json() == {"export_files": []}


def test_without_credentials_is_a_401(client, project):
    response = client.get(files_url(project))
    assert response.status_code == 401
    assert response.json()["status_code"] == 401


def test_queries_do_not_grow_with_snapshots(api_client, project, django_assert_num_queries):
    for count in (1, 5):
        Export.objects.bulk_create(
            Export(project=project, status=Status.COMPLETED, md5=f"{count:032d}") for _ in range(count)
        )
        with django_assert_num_queries(3):  # token with its user, the project, the snapshots
            assert api_client.get(files_url(project)).status_code == 200
