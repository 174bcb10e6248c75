import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from exports import storage
from exports.models import Export
from projects.models import Annotation, AnnotationDraft, FileUpload, Prediction, Project, Task
from projects.services import tasks_import
from tests.conftest import client_for
from tests.exports.helpers import create_export
from tests.factories import IMAGE_CONFIG, fill_project, make_project, make_user

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
    assert body["finished_task_number"] == 4  # the skipped one too, as Label Studio finishes imported tasks
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


# The keys, in order, of Label Studio 1.23.2's project (recordings 02, 08, 17, 19 and 30 agree).
PROJECT_KEYS = [
    "id",
    "title",
    "description",
    "label_config",
    "expert_instruction",
    "show_instruction",
    "show_skip_button",
    "enable_empty_annotation",
    "show_annotation_history",
    "organization",
    "color",
    "maximum_annotations",
    "is_published",
    "model_version",
    "is_draft",
    "created_by",
    "created_at",
    "min_annotations_to_start_training",
    "start_training_on_annotation_update",
    "show_collab_predictions",
    "num_tasks_with_annotations",
    "task_number",
    "useful_annotation_number",
    "ground_truth_number",
    "skipped_annotations_number",
    "total_annotations_number",
    "total_predictions_number",
    "sampling",
    "show_ground_truth_first",
    "annotator_evaluation_enabled",
    "show_overlap_first",
    "overlap_cohort_percentage",
    "task_data_login",
    "task_data_password",
    "control_weights",
    "parsed_label_config",
    "evaluate_predictions_automatically",
    "config_has_control_tags",
    "skip_queue",
    "reveal_preannotations_interactively",
    "pinned_at",
    "finished_task_number",
    "queue_total",
    "queue_done",
    "config_suitable_for_bulk_annotation",
    "state",
]


def test_every_response_carries_label_studios_keys_in_its_order(api_client, user):
    created = api_client.post(LIST, {"title": "Anchor A", "label_config": IMAGE_CONFIG}, format="json").json()
    project_id = created["id"]
    listed = api_client.get(LIST).json()["results"][0]
    patched = api_client.patch(detail(project_id), {"color": "#FF0000"}, format="json").json()
    fetched = api_client.get(detail(project_id)).json()
    for body in (created, listed, patched, fetched):
        assert list(body) == PROJECT_KEYS
    assert list(fetched["created_by"]) == ["id", "username", "first_name", "last_name", "email", "avatar"]
    assert (fetched["config_has_control_tags"], fetched["config_suitable_for_bulk_annotation"]) == (True, False)
    assert fetched["state"] is None


def test_computed_values_after_import(api_client, user, org):
    """The shape of recording 30: 8 tasks, 3 of them labeled by the caller, 5 predictions."""
    project = make_project(user=user)
    fill_project(project, user=user, count=3, ground_truth=True)
    fill_project(project, user=user, count=2)
    Annotation.objects.filter(project=project, ground_truth=False).delete()
    Task.objects.filter(project=project, annotations__isnull=True).update(is_labeled=False)
    tasks_import(project=project, user=user, payload=[{"data": {"image": f"{i}.jpg"}} for i in range(3)])
    body = api_client.get(detail(project.pk)).json()
    assert {key: body[key] for key in ("task_number", "finished_task_number", "queue_total", "queue_done")} == {
        "task_number": 8,
        "finished_task_number": 3,
        "queue_total": 8,
        "queue_done": 3,
    }
    assert (body["ground_truth_number"], body["total_annotations_number"], body["useful_annotation_number"]) == (
        3,
        3,
        0,
    )


def test_queue_values_are_the_callers(api_client, user, org):
    """queue_total: tasks not labeled yet or labeled by the caller; queue_done: tasks the caller annotated."""
    bob = make_user(email="bob@example.com", organization=org)
    project = make_project(user=user)
    fill_project(project, user=user, count=3)  # labeled by alice
    fill_project(project, user=bob, count=2)  # labeled by bob
    fill_project(project, user=user, count=1, cancelled=True)  # skipped by alice: labeled (imported)
    tasks_import(project=project, user=user, payload=[{"data": {"image": "new.jpg"}}])

    def queue(client) -> tuple[int, int]:
        body = client.get(detail(project.pk)).json()
        listed = client.get(LIST).json()["results"][0]
        assert (listed["queue_total"], listed["queue_done"]) == (body["queue_total"], body["queue_done"])
        return body["queue_total"], body["queue_done"]

    assert queue(api_client) == (5, 4)  # 1 unlabeled + 4 of hers; she annotated 4 tasks (one skipped)
    assert queue(client_for(bob)) == (3, 2)
    Project.objects.filter(pk=project.pk).update(skip_queue=Project.SkipQueue.REQUEUE_FOR_ME)
    assert queue(api_client) == (5, 3)  # her skipped task comes back to her, so it is not done


def test_list_default_order_is_pinned_then_newest(api_client, user):
    old, pinned, new = (make_project(user=user, title=title) for title in ("old", "pinned", "new"))
    Project.objects.filter(pk=pinned.pk).update(pinned_at=timezone.now())
    assert [p["id"] for p in api_client.get(LIST).json()["results"]] == [pinned.pk, new.pk, old.pk]


def test_ordering_by_any_stored_field_or_counter(api_client, user):
    small = make_project(user=user, title="b")
    big = make_project(user=user, title="a")
    same = make_project(user=user, title="a")
    fill_project(big, user=user, count=3)
    fill_project(same, user=user, count=1)

    def ids(query: str) -> list[int]:
        response = api_client.get(LIST + query)
        assert response.status_code == 200, response.content
        return [p["id"] for p in response.json()["results"]]

    assert ids("?ordering=title") == [big.pk, same.pk, small.pk]  # equal titles in id order
    assert ids("?ordering=-title") == [small.pk, big.pk, same.pk]
    assert ids("?ordering=id") == [small.pk, big.pk, same.pk]
    assert ids("?ordering=-created_at") == [same.pk, big.pk, small.pk]
    assert ids("?ordering=-task_number") == [big.pk, same.pk, small.pk]
    assert ids("?ordering=-task_number&include=id,title") == [big.pk, same.pk, small.pk]
    assert ids("?ordering=title,-id") == [same.pk, big.pk, small.pk]
    assert ids("?ordering=-queue_done") == [big.pk, same.pk, small.pk]
    assert ids("?ordering=,-task_number,") == [big.pk, same.pk, small.pk]
    assert ids("?ordering=") == [same.pk, big.pk, small.pk]  # the default: newest first
    assert [p["id"] for p in api_client.get(COUNTS + "?ordering=-total_annotations_number").json()["results"]] == [
        big.pk,
        same.pk,
        small.pk,
    ]


@pytest.mark.parametrize("url", [LIST, COUNTS])
@pytest.mark.parametrize("value", ["nope", "-nope", "id,nope", "parsed_label_config"])
def test_unknown_ordering_field_is_a_400(api_client, user, url, value):
    make_project(user=user)
    response = api_client.get(f"{url}?ordering={value}")
    assert response.status_code == 400
    message = response.json()["validation_errors"]["ordering"][0]
    assert message.startswith("Unknown field '")
    assert "Valid: id, title" in message


def test_filters(api_client, user):
    first = make_project(user=user, title="Cars", description="street")
    second = make_project(user=user, title="Birds", description="cars in the background")
    pinned = make_project(user=user, title="Trees")
    Project.objects.filter(pk=pinned.pk).update(pinned_at=timezone.now())

    def ids(query: str) -> set[int]:
        response = api_client.get(LIST + query)
        assert response.status_code == 200, response.content
        counts = api_client.get(COUNTS + query).json()["results"]
        assert {p["id"] for p in counts} == {p["id"] for p in response.json()["results"]}
        return {p["id"] for p in response.json()["results"]}

    assert ids("?title=car") == {first.pk}
    assert ids("?search=CAR") == {first.pk, second.pk}
    assert ids(f"?ids={first.pk},{pinned.pk}") == {first.pk, pinned.pk}
    assert ids(f"?ids={second.pk}&ids={pinned.pk}") == {second.pk, pinned.pk}
    assert ids("?filter=pinned_only") == {pinned.pk}
    assert ids("?filter=exclude_pinned") == {first.pk, second.pk}
    assert ids("?filter=all") == {first.pk, second.pk, pinned.pk}
    # An id past a 64-bit integer matches nothing (the database would refuse to compare it).
    assert ids(f"?ids={first.pk},{2**63},{10**30}") == {first.pk}
    for bad, field in (("?ids=1,x", "ids"), ("?filter=some", "filter")):
        response = api_client.get(LIST + bad)
        assert response.status_code == 400
        assert field in response.json()["validation_errors"]


def test_include_fields_omit_and_expand(api_client, user):
    """`include` is Label Studio's sparse-fields parameter (recording 15); fields/omit/expand work as elsewhere."""
    make_project(user=user, title="A")
    results = api_client.get(LIST + "?include=id,title,task_number").json()["results"]
    assert [list(p) for p in results] == [["id", "title", "task_number"]]
    assert list(api_client.get(COUNTS + "?include=id,task_number").json()["results"][0]) == ["id", "task_number"]
    omitted = api_client.get(LIST + "?omit=parsed_label_config,created_by.avatar").json()["results"][0]
    assert "parsed_label_config" not in omitted
    assert list(omitted["created_by"]) == ["id", "username", "first_name", "last_name", "email"]
    project_id = results[0]["id"]
    assert api_client.get(detail(project_id) + "?fields=id,queue_total").json() == {"id": project_id, "queue_total": 0}
    for bad in ("?omit=nope", "?expand=nope", "?fields=created_by.nope"):
        assert api_client.get(LIST + bad).status_code == 400, bad
        assert api_client.get(detail(project_id) + bad).status_code == 400, bad


def test_sparse_fields_compute_only_what_is_asked(api_client, user):
    """A list restricted to a few fields does not compute the counters it does not show."""
    fill_project(make_project(user=user), user=user, count=2)
    with CaptureQueriesContext(connection) as captured:
        api_client.get(LIST + "?include=id,title")
    assert not any("COUNT(" in query["sql"].upper() for query in captured if "projects_task" in query["sql"])
    assert api_client.get(LIST + "?include=id,task_number").json()["results"][0]["task_number"] == 2


def test_detail_query_count_does_not_grow_with_data(api_client, user, django_assert_num_queries):
    for total in (1, 5):
        project = make_project(user=user, title=f"P{total}")
        fill_project(project, user=user, count=total)
        with django_assert_num_queries(2):  # token, project with its counters and creator
            assert api_client.get(detail(project.pk)).json()["task_number"] == total


def test_delete_is_set_based(api_client, user):
    """Deleting a project removes its drafts, annotations, predictions, tasks and uploads in a fixed number of
    queries, whatever its size; other projects keep theirs."""
    other = make_project(user=user, title="Other")
    fill_project(other, user=user, count=2)
    counts = []
    for total in (1, 6):
        project = make_project(user=user, title=f"P{total}")
        fill_project(project, user=user, count=total)
        draft = {"result": [], "lead_time": 1}
        tasks_import(project=project, user=user, payload=[{"data": {"image": "d.jpg"}, "drafts": [draft]}])
        with CaptureQueriesContext(connection) as captured:
            assert api_client.delete(detail(project.pk)).status_code == 204
        counts.append(len(captured))
        assert not Task.objects.filter(project_id=project.pk).exists()
        assert not Annotation.objects.filter(project_id=project.pk).exists()
        assert not Prediction.objects.filter(project_id=project.pk).exists()
        assert not AnnotationDraft.objects.filter(task__project_id=project.pk).exists()
    assert counts[0] == counts[1]
    assert (other.tasks.count(), Annotation.objects.filter(project=other).count()) == (2, 2)


def test_a_delete_that_fails_midway_keeps_the_project_its_data_and_files(
    api_client, user, monkeypatch, django_capture_on_commit_callbacks
):
    """The set-based deletes of the labeling data roll back with the project's own delete, and no file goes."""
    project = make_project(user=user)
    fill_project(project, user=user, count=3)
    export = create_export(api_client, project, django_capture_on_commit_callbacks)
    snapshot = Export.objects.get(pk=export["id"]).file

    def refuse(self, *args, **kwargs):
        raise RuntimeError("lost connection")

    monkeypatch.setattr(Project, "delete", refuse)
    api_client.raise_request_exception = False
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.delete(detail(project.pk))
    assert response.status_code == 500
    assert Project.objects.filter(pk=project.pk).exists()
    assert (project.tasks.count(), project.annotations.count(), project.predictions.count()) == (3, 3, 3)
    assert Export.objects.filter(pk=export["id"]).exists()
    assert storage.export_storage().exists(snapshot)


def test_delete_removes_snapshot_and_upload_files_once_committed(api_client, user, django_capture_on_commit_callbacks):
    project = make_project(user=user)
    upload = SimpleUploadedFile("tasks.json", b'[{"image": "a.jpg"}]', "application/json")
    import_url = reverse("project-import", kwargs={"pk": project.pk})
    with django_capture_on_commit_callbacks(execute=True):
        assert api_client.post(import_url, {"file": upload}).status_code == 201
    export = create_export(api_client, project, django_capture_on_commit_callbacks)
    snapshot = Export.objects.get(pk=export["id"]).file
    uploaded = FileUpload.objects.get(project=project).file
    assert storage.export_storage().exists(snapshot)
    assert uploaded.storage.exists(uploaded.name)

    with django_capture_on_commit_callbacks(execute=True):
        assert api_client.delete(detail(project.pk)).status_code == 204
    assert not Export.objects.filter(pk=export["id"]).exists()
    assert not storage.export_storage().exists(snapshot)
    assert not uploaded.storage.exists(uploaded.name)
    assert not FileUpload.objects.filter(project_id=project.pk).exists()


def test_form_null_for_control_weights_is_a_400_not_a_500(api_client):
    """A multipart `control_weights=null` is parsed to None after DRF's null check; it must still be refused."""
    response = api_client.post("/api/projects/", {"title": "x", "control_weights": "null"}, format="multipart")
    assert response.status_code == 400
    assert "control_weights" in response.json()["validation_errors"]


@pytest.mark.parametrize("weights", [{"a\u0000": {"overall": 1.0}}, {"label": {"labels": {"Car\u0000": 1.0}}}])
@pytest.mark.parametrize("method", ["post", "patch"])
def test_control_weights_with_a_nul_character_are_a_400(api_client, user, weights, method):
    """PostgreSQL's jsonb cannot hold \\u0000: refused as input, on every database, instead of failing to save."""
    project = make_project(user=user)
    if method == "post":
        response = api_client.post(LIST, {"title": "x", "control_weights": weights}, format="json")
    else:
        response = api_client.patch(detail(project.pk), {"control_weights": weights}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["validation_errors"] == {"control_weights": ["Null characters are not allowed."]}
    assert Project.objects.count() == 1


def test_pinned_at_before_year_1000_keeps_four_year_digits(api_client):
    created = api_client.post("/api/projects/", {"title": "old"}, format="json").json()
    response = api_client.patch(
        f"/api/projects/{created['id']}/", {"pinned_at": "0112-04-17T11:41:35.6804Z"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["pinned_at"] == "0112-04-17T11:41:35.680400Z"


@pytest.mark.parametrize("encoding", ["multipart", "form"])
def test_a_form_body_keeps_the_json_defaults(api_client, encoding):
    """Booleans left out of a form or multipart body take their defaults, as when left out of JSON (DRF alone
    would read them as false, like unticked checkboxes); ones that are sent still count."""
    data = {"title": "From a form", "show_instruction": "true", "show_skip_button": "false"}
    if encoding == "form":
        response = api_client.generic(
            "POST",
            LIST,
            "title=From+a+form&show_instruction=true&show_skip_button=false",
            content_type="application/x-www-form-urlencoded",
        )
    else:
        response = api_client.post(LIST, data, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    from_json = api_client.post(LIST, {"title": "From JSON"}, format="json").json()
    for name in ("enable_empty_annotation", "show_collab_predictions", "show_annotation_history", "is_published"):
        assert body[name] == from_json[name], name
    assert body["enable_empty_annotation"] is True
    assert body["show_collab_predictions"] is True
    assert body["show_instruction"] is True
    assert body["show_skip_button"] is False
