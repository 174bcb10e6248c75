"""The snapshot body is read one way for the list and the detail: the same exact body, a bounded query count."""

import pytest

from exports.models import ConvertedFormat, Export, Status
from tests.exports.helpers import create_export, detail_url, list_url
from tests.factories import fill_project, make_project

pytestmark = pytest.mark.django_db


def iso(value) -> str:
    return value.isoformat().replace("+00:00", "Z")


@pytest.fixture
def export(api_client, user, django_capture_on_commit_callbacks):
    project = make_project(user=user, title="Body")
    fill_project(project, user=user, count=3)
    created = create_export(api_client, project, django_capture_on_commit_callbacks)
    export = Export.objects.get(pk=created["id"])
    ConvertedFormat.objects.create(export=export, export_type="CSV", status=Status.FAILED, traceback="no rows")
    ConvertedFormat.objects.create(export=export, export_type="TSV")
    return export


def expected_body(export: Export, user) -> dict:
    export.refresh_from_db()
    formats = export.converted_formats.order_by("id")
    return {
        "title": export.title,
        "id": export.pk,
        "created_by": {
            "id": user.pk,
            "username": user.username,
            "email": user.email,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "avatar": None,
        },
        "created_at": iso(export.created_at),
        "finished_at": iso(export.finished_at),
        "status": "completed",
        "md5": export.md5,
        "counters": export.counters,
        "converted_formats": [
            {"id": cf.pk, "status": cf.status, "export_type": cf.export_type, "traceback": cf.traceback}
            for cf in formats
        ],
    }


def test_detail_and_list_show_the_same_exact_body(api_client, user, export):
    body = expected_body(export, user)
    assert body["counters"]["task_number"] == 3
    detail = api_client.get(detail_url(export.project, export.pk))
    listed = api_client.get(list_url(export.project))
    assert detail.json() == body
    assert listed.json() == [body]
    assert list(detail.json()) == list(listed.json()[0]) == list(body)


@pytest.mark.parametrize(("url", "queries"), [(detail_url, 3), (list_url, 4)])
def test_query_counts_are_pinned(api_client, export, django_assert_num_queries, url, queries):
    """Detail: token with its user, the snapshot with project and creator, its conversions. The list reads the
    project first (404 before anything else), then the same two."""
    target = url(export.project, export.pk) if url is detail_url else url(export.project)
    with django_assert_num_queries(queries):
        assert api_client.get(target).status_code == 200
