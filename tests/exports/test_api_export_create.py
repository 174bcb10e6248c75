import re

import pytest

from exports.models import Export, Status
from tests.exports.helpers import EXPORT_KEYS, OPTION_KEYS, create_export, detail_url, list_url
from tests.factories import fill_project, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(user):
    project = make_project(user=user, title="Anchor A")
    fill_project(project, user=user, count=3)
    return project


def test_create_answers_at_once_and_job_completes_after_commit(api_client, project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_client.post(list_url(project), {}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == EXPORT_KEYS | OPTION_KEYS
    assert body["status"] == "created"
    assert body["md5"] == ""
    assert len(callbacks) == 1

    callbacks[0]()
    detail = api_client.get(detail_url(project, body["id"])).json()
    assert detail["status"] == "completed"
    assert re.fullmatch(r"[0-9a-f]{32}", detail["md5"])
    assert detail["counters"]["task_number"] == 3
    assert detail["counters"]["annotation_number"] == 3
    assert detail["counters"]["prediction_number"] == 3
    assert detail["finished_at"] >= detail["created_at"]


def test_default_title_and_created_by(api_client, user, project, django_capture_on_commit_callbacks):
    body = create_export(api_client, project, django_capture_on_commit_callbacks)
    assert re.fullmatch(r"Anchor-A-at-\d{4}-\d\d-\d\d-\d\d-\d\d", body["title"])
    assert body["created_by"] == {
        "id": user.pk,
        "username": "alice",
        "first_name": "",
        "last_name": "",
        "email": "alice@example.com",
        "avatar": None,
    }
    assert body["task_filter_options"] is None
    assert body["converted_formats"] == []
    assert body["created_at"].endswith("Z")


def test_given_title_and_read_only_fields_ignored(api_client, project, django_capture_on_commit_callbacks):
    body = create_export(
        api_client,
        project,
        django_capture_on_commit_callbacks,
        {"title": "my snapshot", "status": "failed", "md5": "x", "counters": {"task_number": 42}, "id": 999},
    )
    export = Export.objects.get(pk=body["id"])
    assert export.title == "my snapshot"
    assert export.status == Status.COMPLETED
    assert export.counters["task_number"] == 3
    assert body["id"] != 999 or Export.objects.count() == 1


def test_options_are_validated_per_field(api_client, project):
    response = api_client.post(
        list_url(project),
        {"task_filter_options": {"skipped": "bogus", "view": "x"}, "annotation_filter_options": {"usual": "maybe"}},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "Validation error"
    assert body["validation_errors"] == {
        "task_filter_options": {
            "view": ["A valid integer is required."],
            "skipped": ['"bogus" is not a valid choice.'],
        },
        "annotation_filter_options": {"usual": ["Must be a valid boolean."]},
    }
    assert Export.objects.count() == 0


def test_unknown_view_is_rejected(api_client, project):
    response = api_client.post(list_url(project), {"task_filter_options": {"view": 5}}, format="json")
    assert response.status_code == 400
    assert "view" in response.json()["validation_errors"]["task_filter_options"]


def test_title_too_long(api_client, project):
    response = api_client.post(list_url(project), {"title": "x" * 2049}, format="json")
    assert response.status_code == 400
    assert response.json()["validation_errors"] == {"title": ["Ensure this field has no more than 2048 characters."]}


def test_body_must_be_an_object(api_client, project):
    response = api_client.post(list_url(project), [1, 2], format="json")
    assert response.status_code == 400
    assert response.json()["validation_errors"] == {
        "non_field_errors": ["Invalid data. Expected a dictionary, but got list."]
    }


def test_empty_body_creates(api_client, project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.generic("POST", list_url(project), "", content_type="application/json")
    assert response.status_code == 201


def test_malformed_json_is_a_json_400(api_client, project):
    response = api_client.generic("POST", list_url(project), "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["status_code"] == 400


def test_options_are_echoed_as_applied(api_client, project, django_capture_on_commit_callbacks):
    body = create_export(
        api_client,
        project,
        django_capture_on_commit_callbacks,
        {"annotation_filter_options": {}, "serialization_options": {"predictions": {"only_id": False}}},
    )
    assert body["annotation_filter_options"] == {"usual": True, "ground_truth": False, "skipped": False}
    assert body["serialization_options"]["predictions"] == {"only_id": False}
    assert body["serialization_options"]["drafts"] == {"only_id": True}
    assert body["task_filter_options"] is None


@pytest.mark.django_db(transaction=True)
def test_create_answers_created_even_when_the_job_runs_at_once(api_client, project):
    """A job that starts the moment the row commits (here: in the committing thread) cannot change the answer:
    the POST shows the snapshot as it recorded it."""
    response = api_client.post(list_url(project), {}, format="json")
    assert response.status_code == 201
    assert response.json()["status"] == "created"
    assert response.json()["md5"] == ""
    assert api_client.get(detail_url(project, response.json()["id"])).json()["status"] == "completed"
