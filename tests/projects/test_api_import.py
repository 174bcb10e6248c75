import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from projects.models import Annotation, Prediction, Task
from tests.factories import make_project, task_payload

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(user):
    return make_project(user=user)


def import_url(project) -> str:
    return reverse("project-import", kwargs={"pk": project.pk})


def test_import_list_with_annotations_and_predictions(api_client, project):
    payload = [task_payload(i) for i in range(3)] + [{"data": {"image": "x.jpg"}}]
    response = api_client.post(import_url(project) + "?return_task_ids=true", payload, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["task_count"] == 4
    assert body["annotation_count"] == 3
    assert body["prediction_count"] == body["predictions_count"] == 3
    assert body["task_ids"] == list(Task.objects.order_by("id").values_list("id", flat=True))
    assert isinstance(body["duration"], float)
    assert {"file_upload_ids", "could_be_tasks_list", "found_formats", "data_columns"} <= set(body)
    task = Task.objects.get(pk=body["task_ids"][0])
    assert task.data == {"image": "https://example.com/img/0.jpg"}
    assert (task.total_annotations, task.total_predictions, task.is_labeled) == (1, 1, True)
    annotation = Annotation.objects.get(task=task)
    assert annotation.result[0]["value"]["rectanglelabels"] == ["Car"]
    assert annotation.completed_by == project.created_by
    assert annotation.lead_time == 12.5
    assert Prediction.objects.get(task=task).model_version == "v1"
    project.refresh_from_db()
    assert project.model_version == "v1"


def test_import_single_object_is_one_task_of_its_data(api_client, project):
    response = api_client.post(import_url(project), {"image": "https://example.com/5.jpg"}, format="json")
    assert response.status_code == 201
    assert "task_ids" not in response.json()
    assert Task.objects.get().data == {"image": "https://example.com/5.jpg"}


def test_import_without_trailing_slash_variants(api_client, project):
    response = api_client.post(import_url(project) + "/", [{"image": "a"}], format="json")
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "No tasks added"),
        ([{"image": "a"}, 5], "item 1"),
        ([{"image": "a"}, {"text": "no image"}], '"image" key is expected'),
        ([{"data": {"image": "a"}, "annotations": {"result": []}}], "annotations"),
        ([{"data": {"image": "a"}, "predictions": [{"result": "nope"}]}], "result"),
    ],
)
def test_bad_import_is_a_400_and_writes_nothing(api_client, project, payload, message):
    response = api_client.post(import_url(project), payload, format="json")
    assert response.status_code == 400
    errors = response.json()["validation_errors"]["non_field_errors"]
    assert message in errors[0]
    assert Task.objects.count() == 0


def test_a_bad_task_at_the_end_of_a_long_list_writes_nothing(api_client, project):
    payload = [task_payload(i) for i in range(2500)] + [{"text": "missing image"}]
    response = api_client.post(import_url(project), payload, format="json")
    assert response.status_code == 400
    assert response.json()["validation_errors"]["non_field_errors"] == [
        'Error at item 2500: "image" key is expected in task data'
    ]
    assert Task.objects.count() == Annotation.objects.count() == Prediction.objects.count() == 0


def test_malformed_json_body_is_a_json_400(api_client, project):
    response = api_client.post(import_url(project), b'[{"image": }]', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error")


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ({"data": {"image": "a"}, "meta": [1]}, '"meta" must be a JSON object'),
        ({"data": {"image": "a"}, "annotations": [{"result": [], "lead_time": "slow"}]}, "lead_time must be a number"),
        ({"data": {"image": "a"}, "annotations": [7]}, '"annotations" must be a list of objects'),
        ({"data": {"image": "a"}, "annotations": [{"draft_created_at": "yesterday"}]}, "draft_created_at must be"),
        ({"data": {"image": "a"}, "annotations": [{"draft_created_at": "2024-13-45T00:00"}]}, "draft_created_at"),
        (
            {"data": {"image": "a"}, "annotations": [{"draft_created_at": "9999-12-31T23:00:00-05:00"}]},
            "draft_created_at is out of range",
        ),
        ({"data": {"image": "a"}, "predictions": [{"result": [], "score": "NaN"}]}, "score must be a number"),
        ({"data": {"image": "a"}, "annotations": [{"last_action": "x" * 129}]}, "last_action must be a string"),
        ({"data": {"image": "a"}, "predictions": [{"result": [], "score": True}]}, "score must be a number"),
        ({"data": {"image": "a"}, "drafts": [{"result": {"a": 1}}]}, "drafts: result must be a list"),
        ({"data": {"image": "a\u0000b"}}, "NUL character"),
        ({"data": "image"}, '"data" must be a JSON object'),
    ],
)
def test_task_problems_name_the_item(api_client, project, task, message):
    response = api_client.post(import_url(project), [{"image": "fine"}, task], format="json")
    assert response.status_code == 400
    error = response.json()["validation_errors"]["non_field_errors"][0]
    assert error.startswith("Error at item 1: ")
    assert message in error
    assert Task.objects.count() == 0


def test_counters_and_inner_ids_across_imports(api_client, user):
    project = make_project(user=user, maximum_annotations=2)
    api_client.post(import_url(project), [{"image": "first"}], format="json")
    payload = [task_payload(1), task_payload(2, annotations=2), task_payload(3, cancelled=True)]
    response = api_client.post(import_url(project) + "?return_task_ids=true", payload, format="json")
    assert response.status_code == 201
    assert response.json()["annotation_count"] == 4
    tasks = Task.objects.filter(pk__in=response.json()["task_ids"]).order_by("id")
    assert [task.inner_id for task in tasks] == [2, 3, 4]
    # Overlap 2: as Label Studio, no imported task is finished, as all its annotations are the importer's
    # (tests/projects/test_finished_rule.py).
    assert [(t.total_annotations, t.cancelled_annotations, t.total_predictions, t.is_labeled) for t in tasks] == [
        (1, 0, 1, False),
        (2, 0, 1, False),
        (0, 1, 1, False),
    ]


def test_annotation_fields_are_kept(api_client, project, user):
    annotation = {
        "result": [
            {"id": "r", "from_name": "quality", "to_name": "image", "type": "choices", "value": {"choices": ["Bad"]}}
        ],
        "was_cancelled": False,
        "ground_truth": False,
        "lead_time": "3.5",
        "draft_created_at": "2024-01-15T09:30:00",
        "last_action": "imported",
    }
    task = {
        "data": {"image": "a"},
        "meta": {"source": "s3"},
        "annotations": [annotation, {"result": [], "was_cancelled": True}],
        "predictions": [{"result": [], "score": "0.25", "model_version": "m2"}],
        "drafts": [{"result": [{"x": 1}], "lead_time": 2}],
    }
    assert api_client.post(import_url(project), [task], format="json").status_code == 201
    stored = Task.objects.get()
    assert stored.meta == {"source": "s3"}
    kept, cancelled = stored.annotations.order_by("id")
    assert (kept.result, kept.ground_truth, kept.lead_time, kept.last_action) == (
        annotation["result"],
        False,
        3.5,
        "imported",
    )
    assert kept.draft_created_at.isoformat() == "2024-01-15T09:30:00+00:00"
    assert (kept.completed_by, kept.bulk_created, kept.project) == (user, True, project)
    assert kept.unique_id != cancelled.unique_id
    # No `ground_truth` given: ground truth, skipped or not, as Label Studio 1.23.2 imports it
    # (tests/e2e/test_labelstudio_finished_parity.py checks that against it).
    assert (cancelled.was_cancelled, cancelled.ground_truth) == (True, True)
    prediction = stored.predictions.get()
    assert (prediction.score, prediction.model_version, prediction.project) == (0.25, "m2", project)
    draft = stored.drafts.get()
    assert (draft.result, draft.lead_time, draft.user) == ([{"x": 1}], 2.0, user)


def test_text_survives_the_bulk_insert_byte_for_byte(api_client, project):
    """Backslashes, tabs, newlines, quotes and non-ASCII text come back exactly (COPY's text format escapes them)."""
    tricky = 'tab\there \\N \\ "quoted" \r\nline é 😀 \\u0000 %s ?'
    task = {
        "data": {"image": tricky, tricky: [tricky]},
        "annotations": [{"result": [{"value": {"text": [tricky]}}], "last_action": "a\tb\nc\\"}],
        "predictions": [{"result": [], "model_version": "v\t1\\N"}],
    }
    body = json.dumps([task]).encode()
    assert api_client.post(import_url(project), body, content_type="application/json").status_code == 201
    stored = Task.objects.get()
    assert stored.data == {"image": tricky, tricky: [tricky]}
    assert stored.annotations.get().result == [{"value": {"text": [tricky]}}]
    assert stored.annotations.get().last_action == "a\tb\nc\\"
    assert stored.predictions.get().model_version == "v\t1\\N"


def test_model_version_of_the_project_is_set_once(api_client, project):
    api_client.post(import_url(project), [task_payload(0)], format="json")
    later = task_payload(1)
    later["predictions"][0]["model_version"] = "v2"
    api_client.post(import_url(project), [later], format="json")
    project.refresh_from_db()
    assert project.model_version == "v1"


def test_query_count_does_not_grow_with_tasks(api_client, project):
    def queries_for(count: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = api_client.post(import_url(project), [task_payload(i) for i in range(count)], format="json")
        assert response.status_code == 201
        return len(captured)

    queries_for(1)  # the first import also sets the project's model_version
    assert queries_for(1) == queries_for(30)


def test_import_predictions(api_client, project):
    task_ids = api_client.post(import_url(project) + "?return_task_ids=true", [{"image": "a"}], format="json").json()[
        "task_ids"
    ]
    url = reverse("project-import-predictions", kwargs={"pk": project.pk})
    response = api_client.post(
        url, [{"task": task_ids[0], "result": [], "score": 0.5, "model_version": "m"}], format="json"
    )
    assert response.status_code == 201
    assert response.json() == {"created": 1}
    assert Task.objects.get().total_predictions == 1
    response = api_client.post(url, [{"task": 99999999, "result": []}], format="json")
    assert response.status_code == 400
    assert Prediction.objects.count() == 1


def test_body_over_the_limit_is_a_json_413(api_client, project, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = api_client.post(import_url(project), [{"image": "x" * 200}], format="json")
    assert response.status_code == 413
    assert response.json()["status_code"] == 413
    assert Task.objects.count() == 0


def test_import_predictions_counts_per_task_and_writes_nothing_on_an_unknown_task(api_client, project):
    response = api_client.post(import_url(project) + "?return_task_ids=true", [{"image": "a"}] * 3, format="json")
    first, second, third = response.json()["task_ids"]
    url = reverse("project-import-predictions", kwargs={"pk": project.pk})
    items = [{"task": first, "result": []}, {"task": first, "result": []}, {"task": second, "result": [{"a": 1}]}]
    response = api_client.post(url, items, format="json")
    assert response.json() == {"created": 3}
    assert [t.total_predictions for t in Task.objects.order_by("id")] == [2, 1, 0]
    assert Prediction.objects.get(task_id=second).result == [{"a": 1}]
    response = api_client.post(url, [{"task": third, "result": []}, {"task": 99999999, "result": []}], format="json")
    assert response.status_code == 400
    assert "99999999" in response.json()["validation_errors"]["non_field_errors"][0]
    assert Prediction.objects.count() == 3
    assert Task.objects.get(pk=third).total_predictions == 0


def test_import_into_another_organizations_project_is_a_404(other_client, project):
    assert other_client.post(import_url(project), [{"image": "a"}], format="json").status_code == 404
    assert Task.objects.count() == 0


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ([{"value": {"text": ["a\u0000b"]}}], "NUL character"),
        ([{"value": {"x": 2**70}}], "cannot be stored as JSON"),
    ],
    ids=["nul", "integer-beyond-64-bits"],
)
def test_import_predictions_that_cannot_be_stored_are_a_400(api_client, project, result, message):
    """A result the database cannot hold is refused as a whole, naming the item, before anything is written."""
    response = api_client.post(import_url(project) + "?return_task_ids=true", [{"image": "a"}], format="json")
    (task_id,) = response.json()["task_ids"]
    url = reverse("project-import-predictions", kwargs={"pk": project.pk})
    items = [{"task": task_id, "result": []}, {"task": task_id, "result": result}]
    response = api_client.post(url, items, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["validation_errors"]["non_field_errors"][0]
    assert error.startswith("Error at item 1: ")
    assert message in error
    assert Prediction.objects.count() == 0
    assert Task.objects.get().total_predictions == 0
