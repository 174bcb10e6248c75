"""POST /api/projects/{id}/duplicate/: a copy of the settings, with or without the labeling data."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from projects import copying
from projects.models import Annotation, AnnotationDraft, Prediction, Project, Task
from projects.services import tasks_import
from tests.factories import IMAGE_CONFIG, fill_project, make_project, rectangle

pytestmark = pytest.mark.django_db

TASK_FIELDS = [
    "data",
    "meta",
    "inner_id",
    "created_at",
    "updated_at",
    "is_labeled",
    "allow_skip",
    "total_annotations",
    "cancelled_annotations",
    "total_predictions",
    "updated_by_id",
    "file_upload",
]
ANNOTATION_FIELDS = [
    "completed_by_id",
    "result",
    "was_cancelled",
    "ground_truth",
    "created_at",
    "updated_at",
    "draft_created_at",
    "lead_time",
    "prediction",
    "result_count",
    "import_id",
    "last_action",
    "bulk_created",
    "updated_by_id",
    "last_created_by_id",
]
PREDICTION_FIELDS = [
    "result",
    "model_version",
    "score",
    "cluster",
    "neighbors",
    "mislabeling",
    "created_at",
    "updated_at",
]
COUNTERS = [
    "task_number",
    "finished_task_number",
    "total_predictions_number",
    "total_annotations_number",
    "num_tasks_with_annotations",
    "useful_annotation_number",
    "ground_truth_number",
    "skipped_annotations_number",
]


def duplicate_url(project) -> str:
    return reverse("project-duplicate", kwargs={"pk": project.pk})


def detail(project_id: int) -> str:
    return reverse("project-detail", kwargs={"pk": project_id})


@pytest.fixture
def project(user):
    project = make_project(
        user=user, title="Original", description="the original", color="#123456", maximum_annotations=2
    )
    fill_project(project, user=user, count=3)
    fill_project(project, user=user, count=1, cancelled=True)
    fill_project(project, user=user, count=2, ground_truth=True, annotations=2)
    tasks_import(
        project=project,
        user=user,
        payload=[
            {"data": {"image": "bare.jpg"}, "meta": {"source": "camera"}},
            {"data": {"image": "draft.jpg"}, "drafts": [{"result": [rectangle()], "lead_time": 3.0}]},
        ],
    )
    return project


def test_settings_and_data_copies_tasks_annotations_and_predictions(api_client, user, project):
    response = api_client.post(
        duplicate_url(project), {"mode": "settings,data", "title": "Copy", "workspace": 7}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert list(body) == ["id"]
    copy = Project.objects.get(pk=body["id"])
    assert copy.pk != project.pk
    assert (copy.title, copy.description, copy.organization_id, copy.created_by_id) == (
        "Copy",
        "the original",
        project.organization_id,
        user.pk,
    )
    assert (copy.label_config, copy.color, copy.maximum_annotations, copy.control_weights) == (
        IMAGE_CONFIG,
        "#123456",
        2,
        project.control_weights,
    )

    original_tasks = list(project.tasks.order_by("id"))
    copied_tasks = list(copy.tasks.order_by("id"))
    assert len(copied_tasks) == len(original_tasks) == 8
    assert not {task.pk for task in copied_tasks} & {task.pk for task in original_tasks}
    as_values = [{name: getattr(task, name) for name in TASK_FIELDS} for task in original_tasks]
    assert [{name: getattr(task, name) for name in TASK_FIELDS} for task in copied_tasks] == as_values
    new_id = {old.pk: new.pk for old, new in zip(original_tasks, copied_tasks, strict=True)}

    for model, fields in ((Annotation, ANNOTATION_FIELDS), (Prediction, PREDICTION_FIELDS)):
        originals = list(model.objects.filter(project=project).order_by("id").values("task_id", *fields))
        copies = list(model.objects.filter(project=copy).order_by("id").values("task_id", *fields))
        assert originals, model
        assert copies == [{**row, "task_id": new_id[row["task_id"]]} for row in originals], model
        # Every copy hangs off a task of the copy, and the task's project is the copy.
        assert set(model.objects.filter(project=copy).values_list("task__project", flat=True)) == {copy.pk}

    unique_ids = Annotation.objects.filter(project__in=[project, copy]).values_list("unique_id", flat=True)
    assert len(set(unique_ids)) == len(unique_ids)
    # Drafts are their authors' unsubmitted work and stay with the original.
    assert AnnotationDraft.objects.filter(task__project=copy).count() == 0
    assert AnnotationDraft.objects.filter(task__project=project).count() == 1

    original = api_client.get(detail(project.pk)).json()
    copied = api_client.get(detail(copy.pk)).json()
    assert {key: copied[key] for key in COUNTERS} == {key: original[key] for key in COUNTERS}
    assert copied["task_number"] == 8
    assert copied["total_annotations_number"] == 7


def test_settings_mode_copies_no_data(api_client, project):
    response = api_client.post(
        duplicate_url(project), {"mode": "settings", "title": "Empty copy", "description": "new"}, format="json"
    )
    assert response.status_code == 201
    copy = Project.objects.get(pk=response.json()["id"])
    assert (copy.title, copy.description, copy.label_config) == ("Empty copy", "new", IMAGE_CONFIG)
    assert copy.tasks.count() == 0
    assert Annotation.objects.filter(project=copy).count() == 0
    assert api_client.get(detail(copy.pk)).json()["task_number"] == 0


def test_original_is_untouched_and_the_copy_lives_on_its_own(api_client, user, project):
    before = api_client.get(detail(project.pk)).json()
    copy_id = api_client.post(duplicate_url(project), {"mode": "settings,data", "title": "C"}, format="json").json()[
        "id"
    ]
    assert api_client.get(detail(project.pk)).json() == before
    # New ids do not collide with later imports, and deleting the copy leaves the original whole.
    fill_project(project, user=user, count=2)
    fill_project(Project.objects.get(pk=copy_id), user=user, count=2)
    assert api_client.delete(detail(copy_id)).status_code == 204
    assert project.tasks.count() == 10
    assert Annotation.objects.filter(project=project).count() == 10


def test_a_copy_of_a_copy(api_client, project):
    first = api_client.post(duplicate_url(project), {"mode": "settings,data", "title": "C1"}, format="json")
    second = api_client.post(duplicate_url(project), {"mode": "settings,data", "title": "C2"}, format="json")
    third = api_client.post(
        reverse("project-duplicate", kwargs={"pk": first.json()["id"]}),
        {"mode": "settings,data", "title": "C3"},
        format="json",
    )
    assert [r.status_code for r in (first, second, third)] == [201, 201, 201]
    counts = [Task.objects.filter(project_id=r.json()["id"]).count() for r in (first, second, third)]
    assert counts == [8, 8, 8]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mode": "settings_and_tasks", "title": "dup"}, "mode"),  # the mode of recording 32
        ({"title": "dup"}, "mode"),
        ({"mode": "settings"}, "title"),
        ({"mode": "settings", "title": ""}, "title"),
        ({"mode": "settings", "title": "x" * 51}, "title"),
    ],
)
def test_bad_input_is_a_400(api_client, project, body, field):
    response = api_client.post(duplicate_url(project), body, format="json")
    assert response.status_code == 400
    assert field in response.json()["validation_errors"]
    assert Project.objects.count() == 1


def test_other_organization_gets_404(other_client, project):
    response = other_client.post(duplicate_url(project), {"mode": "settings,data", "title": "Stolen"}, format="json")
    assert response.status_code == 404
    assert Project.objects.count() == 1


def test_unauthenticated_gets_401(client, project):
    assert client.post(duplicate_url(project), {"mode": "settings", "title": "x"}).status_code == 401


def test_query_count_does_not_grow_with_tasks(api_client, user):
    counts = []
    for total in (1, 6):
        project = make_project(user=user, title=f"P{total}")
        fill_project(project, user=user, count=total)
        with CaptureQueriesContext(connection) as captured:
            response = api_client.post(duplicate_url(project), {"mode": "settings,data", "title": "C"}, format="json")
        assert response.status_code == 201
        assert Task.objects.filter(project_id=response.json()["id"]).count() == total
        counts.append(len(captured))
    assert counts[0] == counts[1]


def test_a_failure_midway_leaves_no_partial_copy(api_client, project, monkeypatch):
    """Tasks and annotations already copied go away with the new project when a later step fails."""
    copy_rows = copying._copy_rows

    def fail_on_predictions(cursor, model, **kwargs):
        if model is Prediction:
            raise RuntimeError("disk full")
        copy_rows(cursor, model, **kwargs)

    monkeypatch.setattr(copying, "_copy_rows", fail_on_predictions)
    before = (Project.objects.count(), Task.objects.count(), Annotation.objects.count(), Prediction.objects.count())
    api_client.raise_request_exception = False
    response = api_client.post(duplicate_url(project), {"mode": "settings,data", "title": "Half"}, format="json")
    assert response.status_code == 500
    assert response.json()["status_code"] == 500
    after = (Project.objects.count(), Task.objects.count(), Annotation.objects.count(), Prediction.objects.count())
    assert after == before
    assert not Project.objects.filter(title="Half").exists()
