import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from projects.models import Project, Task
from tests.factories import IMAGE_CONFIG, fill_project, make_project

pytestmark = pytest.mark.django_db

LIST = reverse("project-list")
COUNTS = reverse("project-counts")


def detail(project_id: int) -> str:
    return reverse("project-detail", kwargs={"pk": project_id})


def test_create_with_config_and_read_back(api_client, user):
    response = api_client.post(
        LIST, {"title": "Anchor A", "description": "d", "label_config": IMAGE_CONFIG}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["title"] == "Anchor A"
    assert body["label_config"] == IMAGE_CONFIG
    assert body["organization"] == user.active_organization_id
    assert body["created_by"]["email"] == "alice@example.com"
    assert body["task_number"] == 0
    assert body["parsed_label_config"]["label"]["labels"] == ["Car", "Person"]
    assert body["control_weights"]["quality"]["labels"] == {"Good": 1.0, "Bad": 1.0}
    assert body["config_has_control_tags"] is True
    assert api_client.get(detail(body["id"])).json() == body


def test_create_minimal_and_empty(api_client):
    body = api_client.post(LIST, {}, format="json").json()
    assert body["title"] == ""
    assert body["label_config"] == "<View></View>"
    assert body["parsed_label_config"] == {}
    assert body["config_has_control_tags"] is False


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            '<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="nonexistent">'
            '<Label value="Car"/></RectangleLabels></View>',
            "nonexistent",
        ),
        ('<View><Image name="image" value="$image"></View', "line 1"),
    ],
)
def test_invalid_config_is_a_400_on_label_config(api_client, config, message):
    response = api_client.post(LIST, {"title": "Bad", "label_config": config}, format="json")
    assert response.status_code == 400
    errors = response.json()["validation_errors"]["label_config"]
    assert message in errors[0]
    assert Project.objects.count() == 0


def test_patch_updates_and_keeps_the_rest(api_client, user):
    project = make_project(user=user, title="Anchor A")
    response = api_client.patch(detail(project.pk), {"description": "patched", "color": "#FF0000"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["description"], body["color"], body["title"], body["label_config"]) == (
        "patched",
        "#FF0000",
        "Anchor A",
        IMAGE_CONFIG,
    )
    project.refresh_from_db()
    assert project.description == "patched"


def test_patch_with_invalid_config_changes_nothing(api_client, user):
    project = make_project(user=user)
    bad = '<View><Image name="i" value="$i"/><Choices name="c" toName="x"><Choice value="a"/></Choices></View>'
    response = api_client.patch(detail(project.pk), {"label_config": bad}, format="json")
    assert response.status_code == 400
    project.refresh_from_db()
    assert project.label_config == IMAGE_CONFIG


def test_delete_removes_project_tasks_and_exports(api_client, user):
    project = make_project(user=user)
    fill_project(project, user=user, count=2)
    assert api_client.delete(detail(project.pk)).status_code == 204
    assert api_client.get(detail(project.pk)).status_code == 404
    assert Task.objects.count() == 0


def test_counters(api_client, user):
    project = make_project(user=user)
    fill_project(project, user=user, count=2)
    fill_project(project, user=user, count=1, cancelled=True)
    fill_project(project, user=user, count=1, ground_truth=True)
    body = api_client.get(detail(project.pk)).json()
    assert body["task_number"] == 4
    assert body["total_annotations_number"] == 3
    assert body["skipped_annotations_number"] == 1
    assert body["ground_truth_number"] == 1
    assert body["useful_annotation_number"] == 2
    assert body["num_tasks_with_annotations"] == 2
    assert body["finished_task_number"] == 3
    assert body["total_predictions_number"] == 4
    counts = api_client.get(COUNTS).json()
    assert counts["count"] == 1
    row = counts["results"][0]
    assert row == {key: body[key] for key in row}
    assert set(row) == {
        "id",
        "task_number",
        "finished_task_number",
        "total_predictions_number",
        "total_annotations_number",
        "num_tasks_with_annotations",
        "useful_annotation_number",
        "ground_truth_number",
        "skipped_annotations_number",
    }


def test_list_pages_newest_first(api_client, user):
    ids = [make_project(user=user, title=f"P{i}").pk for i in range(5)]
    body = api_client.get(LIST + "?page=1&page_size=2").json()
    assert body["count"] == 5
    assert [p["id"] for p in body["results"]] == ids[::-1][:2]
    assert "page=2" in body["next"]
    assert body["previous"] is None
    last = api_client.get(LIST + "?page=3&page_size=2").json()
    assert [p["id"] for p in last["results"]] == [ids[0]]
    assert last["next"] is None
    for bad in ("?page=99", "?page=abc"):
        response = api_client.get(LIST + bad)
        assert response.status_code == 404
        assert response.json()["detail"] == "Invalid page."
    assert len(api_client.get(LIST + "?page_size=1000").json()["results"]) == 5


def test_ordering_title_filter_and_include(api_client, user):
    for title in ("b", "a", "c"):
        make_project(user=user, title=title)
    titles = [p["title"] for p in api_client.get(LIST + "?ordering=title").json()["results"]]
    assert titles == ["a", "b", "c"]
    assert [p["title"] for p in api_client.get(LIST + "?title=b").json()["results"]] == ["b"]
    results = api_client.get(LIST + "?include=id,title,task_number").json()["results"]
    assert all(set(p) == {"id", "title", "task_number"} for p in results)
    assert api_client.get(LIST + "?fields=id,created_by.email").json()["results"][0]["created_by"] == {
        "email": "alice@example.com"
    }
    assert api_client.get(LIST + "?include=nope").status_code == 400


@pytest.mark.parametrize("url", [LIST, COUNTS])
def test_list_query_count_does_not_grow_with_rows(api_client, user, url):
    counts = []
    for total in (1, 5):
        Project.objects.all().delete()
        for i in range(total):
            fill_project(make_project(user=user, title=f"P{i}"), user=user, count=2)
        with CaptureQueriesContext(connection) as captured:
            assert api_client.get(url).status_code == 200
        counts.append(len(captured))
    assert counts[0] == counts[1]
