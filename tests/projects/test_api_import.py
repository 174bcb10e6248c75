import pytest
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


def test_import_is_all_or_nothing_across_batches(api_client, project, monkeypatch):
    monkeypatch.setattr("projects.services.IMPORT_BATCH_SIZE", 2)
    payload = [{"image": f"{i}"} for i in range(5)] + [{"text": "missing image"}]
    assert api_client.post(import_url(project), payload, format="json").status_code == 400
    assert Task.objects.count() == 0


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
