"""GET /api/projects/{id}/export: Label Studio's easy export, streamed."""

import io
import json
import re
import threading

import pytest
from django.core.management import call_command
from django.urls import reverse
from label_studio_sdk import LabelStudio
from label_studio_sdk.converter import Converter
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from exports import easy
from exports.converters.registry import FORMATS
from exports.interpolation import interpolate_key_frames
from projects.label_config import parse_label_config
from projects.models import AnnotationDraft
from projects.services import tasks_import
from tests.exports.helpers import create_export, download_url
from tests.factories import fill_project, make_project, rectangle, task_payload

pytestmark = pytest.mark.django_db

NAME = re.compile(r"project-(\d+)-at-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-[0-9a-f]{8}\.json")
VIDEO_CONFIG = """<View>
  <Video name="video" value="$video"/>
  <VideoRectangle name="box" toName="video"/>
</View>"""


def export_url(project, query: str = "") -> str:
    url = reverse("project-export", kwargs={"pk": project.pk})
    return f"{url}?{query}" if query else url


def read_ahead_threads() -> int:
    return sum(thread.name == "snapshot-read-ahead" for thread in threading.enumerate())


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def parsed(response):
    assert response.status_code == 200, response.content
    return json.loads(body_of(response))


@pytest.fixture
def project(user):
    """Tasks 0-1 annotated, 2 only a cancelled annotation, 3-4 none; task 0 also has a draft."""
    project = make_project(user=user, title="Easy")
    payload = [
        task_payload(0, annotations=2),
        task_payload(1, ground_truth=True),
        task_payload(2, cancelled=True),
        task_payload(3, annotations=0),
        task_payload(4, annotations=0),
    ]
    tasks_import(project=project, user=user, payload=payload)
    first = project.tasks.order_by("pk").first()
    AnnotationDraft.objects.create(task=first, user=user, result=[rectangle("Person")], lead_time=3.0)
    return project


def task_ids(project) -> list[int]:
    return list(project.tasks.order_by("pk").values_list("pk", flat=True))


def test_default_exports_tasks_with_any_annotation(api_client, project):
    """As Label Studio (`annotations__isnull=False`): a task whose only annotation is cancelled is included."""
    ids = task_ids(project)
    tasks = parsed(api_client.get(export_url(project)))
    assert [t["id"] for t in tasks] == ids[:3]
    assert [len(t["annotations"]) for t in tasks] == [2, 1, 1]
    assert tasks[2]["annotations"][0]["was_cancelled"] is True


@pytest.mark.parametrize("value", ["true", "True", "1"])
def test_download_all_tasks(api_client, project, value):
    tasks = parsed(api_client.get(export_url(project, f"download_all_tasks={value}")))
    assert [t["id"] for t in tasks] == task_ids(project)


def test_download_all_tasks_false_is_the_default(api_client, project):
    explicit = parsed(api_client.get(export_url(project, "download_all_tasks=false")))
    assert [t["id"] for t in explicit] == task_ids(project)[:3]


def test_drafts_are_full_objects_and_predictions_ids(api_client, project, user):
    first = parsed(api_client.get(export_url(project)))[0]
    (draft,) = first["drafts"]
    assert draft["user"] == user.pk
    assert draft["result"][0]["value"]["rectanglelabels"] == ["Person"]
    assert draft["lead_time"] == 3.0
    assert first["predictions"] == [project.predictions.get(task_id=first["id"]).pk]


@pytest.mark.parametrize(
    ("snapshot_body", "query"),
    [
        (
            {
                "task_filter_options": {"only_with_annotations": True},
                "serialization_options": {"drafts": {"only_id": False}},
            },
            "",
        ),
        ({"serialization_options": {"drafts": {"only_id": False}}}, "download_all_tasks=true"),
    ],
)
def test_json_equals_the_snapshot_of_the_same_tasks(
    api_client, project, django_capture_on_commit_callbacks, snapshot_body, query
):
    created = create_export(api_client, project, django_capture_on_commit_callbacks, snapshot_body)
    snapshot = json.loads(body_of(api_client.get(download_url(project, created["id"]))))
    assert parsed(api_client.get(export_url(project, query))) == snapshot


@pytest.mark.parametrize("parameter", ["exportType", "export_type"])
def test_both_type_parameter_names(api_client, project, parameter):
    plain = parsed(api_client.get(export_url(project)))
    assert parsed(api_client.get(export_url(project, f"{parameter}=JSON"))) == plain
    records = parsed(api_client.get(export_url(project, f"{parameter}=JSON_MIN")))
    assert {"image", "id", "annotator", "annotation_id"} <= set(records[0])


def test_export_type_wins_over_its_old_name(api_client, project):
    records = parsed(api_client.get(export_url(project, "exportType=JSON_MIN&export_type=JSON")))
    assert "annotations" not in records[0]


@pytest.mark.parametrize("form", ["ids[]={a}&ids[]={b}", "ids={a}&ids={b}", "ids={a},{b}", "ids={b}, {a}&ids[]={a}"])
def test_ids_in_every_form(api_client, project, form):
    ids = task_ids(project)
    query = form.format(a=ids[0], b=ids[3]) + "&download_all_tasks=true"
    assert [t["id"] for t in parsed(api_client.get(export_url(project, query)))] == [ids[0], ids[3]]


def test_ids_keep_the_annotated_only_default(api_client, project):
    """As Label Studio: without download_all_tasks, the ids are narrowed to annotated tasks."""
    ids = task_ids(project)
    tasks = parsed(api_client.get(export_url(project, f"ids={ids[0]},{ids[3]}")))
    assert [t["id"] for t in tasks] == [ids[0]]


def test_ids_of_another_project_are_not_exported(api_client, project, user):
    other = make_project(user=user, title="Other")
    (foreign,) = fill_project(other, user=user, count=1)
    tasks = parsed(api_client.get(export_url(project, f"ids={foreign}&download_all_tasks=true")))
    assert tasks == []


def test_empty_ids_mean_no_filter(api_client, project):
    tasks = parsed(api_client.get(export_url(project, "ids=&download_all_tasks=true")))
    assert [t["id"] for t in tasks] == task_ids(project)


def test_json_min_is_what_label_studio_converter_makes_of_the_json(api_client, project, tmp_path):
    snapshot = tmp_path / "export.json"
    snapshot.write_bytes(body_of(api_client.get(export_url(project, "download_all_tasks=true"))))
    converter = Converter(config=parse_label_config(project.label_config), project_dir=None, download_resources=False)
    converter.convert(str(snapshot), str(tmp_path / "out"), "JSON_MIN", is_dir=False)
    expected = json.loads((tmp_path / "out" / "result.json").read_text(encoding="utf-8"))

    records = parsed(api_client.get(export_url(project, "exportType=JSON_MIN&download_all_tasks=true")))
    assert records == expected
    ids = task_ids(project)
    # Task 0 has two annotations (two records), task 2 only a cancelled one (none), tasks 3-4 none (data only).
    assert [r["id"] for r in records] == [ids[0], ids[0], ids[1], ids[3], ids[4]]
    assert records[0]["quality"] == "Good"
    assert records[0]["label"][0]["rectanglelabels"] == ["Car"]
    assert records[3] == {
        "image": "https://example.com/img/3.jpg",
        "id": ids[3],
        "annotator": None,
        "annotation_id": None,
        "created_at": None,
        "updated_at": None,
        "lead_time": None,
    }


def test_json_min_of_annotated_tasks(api_client, project, user):
    records = parsed(api_client.get(export_url(project, "exportType=JSON_MIN")))
    ids = task_ids(project)
    assert [r["id"] for r in records] == [ids[0], ids[0], ids[1]]
    assert {r["annotator"] for r in records} == {user.pk}


def test_response_is_streamed_and_starts_before_any_query(api_client, project, django_assert_num_queries):
    response = api_client.get(export_url(project))
    assert response.streaming
    chunks = iter(response.streaming_content)
    with django_assert_num_queries(0):
        assert next(chunks) == b"["
    assert json.loads(b"[" + b"".join(chunks))


def test_headers(api_client, project):
    response = api_client.get(export_url(project))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    name = response["filename"]
    match = NAME.fullmatch(name)
    assert match
    assert int(match.group(1)) == project.pk
    assert response["Content-Disposition"] == f'attachment; filename="{name}"'
    assert not response.has_header("Content-Length")
    assert api_client.get(export_url(project))["filename"] != name  # a fresh tag on every download


def test_headers_whatever_the_client_accepts(api_client, project):
    response = api_client.get(export_url(project), HTTP_ACCEPT="application/octet-stream")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


def test_head_answers_the_headers_without_building_the_file(api_client, project, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):  # token (with its user) and project: no task is read
        response = api_client.head(export_url(project))
    assert response.status_code == 200
    assert NAME.fullmatch(response["filename"])
    assert body_of(response) == b""


@pytest.mark.parametrize("parameter", ["exportType", "export_type"])
def test_unknown_type_is_400_naming_the_valid_ones(api_client, project, parameter):
    response = api_client.get(export_url(project, f"{parameter}=FOO"))
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "Validation error"
    valid = ", ".join(fmt.name for fmt in FORMATS)
    assert body["validation_errors"] == {parameter: [f"FOO is not supported export format. Valid: {valid}"]}


def test_export_types_are_case_sensitive(api_client, project):
    assert api_client.get(export_url(project, "exportType=json")).status_code == 400


def test_bad_boolean_is_400_as_label_studio(api_client, project):
    response = api_client.get(export_url(project, "download_all_tasks=maybe"))
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"id", "status_code", "version", "detail", "exc_info", "validation_errors"}
    assert body["status_code"] == 400
    assert body["validation_errors"] == {"download_all_tasks": ["Must be a valid boolean."]}


@pytest.mark.parametrize("name", ["interpolate_key_frames", "download_resources"])
def test_other_booleans_are_checked(api_client, project, name):
    response = api_client.get(export_url(project, f"{name}=perhaps"))
    assert response.status_code == 400
    assert response.json()["validation_errors"] == {name: ["Must be a valid boolean."]}


@pytest.mark.parametrize(
    "query", ["ids=abc", "ids[]=1&ids[]=x", "ids=1,2.5", "ids=-3", "ids=1234567890123456789", "ids=١"]
)
def test_bad_ids_are_400(api_client, project, query):
    response = api_client.get(export_url(project, query))
    assert response.status_code == 400
    (message,) = response.json()["validation_errors"]["ids"]
    assert "is not a task id" in message


def test_download_resources_is_accepted_and_ignored(api_client, project):
    plain = parsed(api_client.get(export_url(project)))
    assert parsed(api_client.get(export_url(project, "download_resources=true"))) == plain
    assert parsed(api_client.get(export_url(project, "download_resources=false"))) == plain


def test_interpolate_key_frames_is_passed_on(api_client, user):
    project = make_project(user=user, title="Video", label_config=VIDEO_CONFIG)
    keyframe = {"enabled": True, "x": 10, "y": 10, "width": 5, "height": 5, "rotation": 0}
    result = [
        {
            "id": "v1",
            "from_name": "box",
            "to_name": "video",
            "type": "videorectangle",
            "value": {
                "framesCount": 10,
                "duration": 1.0,
                "sequence": [
                    {**keyframe, "frame": 1, "time": 0.0},
                    {**keyframe, "frame": 4, "x": 40, "enabled": False, "time": 0.3},
                ],
            },
        }
    ]
    tasks_import(
        project=project, user=user, payload=[{"data": {"video": "v.mp4"}, "annotations": [{"result": result}]}]
    )
    plain = parsed(api_client.get(export_url(project)))[0]["annotations"][0]["result"]
    expanded = parsed(api_client.get(export_url(project, "interpolate_key_frames=true")))[0]["annotations"][0]["result"]
    assert plain == result
    assert expanded == interpolate_key_frames(result)
    assert expanded != result


def test_fields_parameters_do_not_apply(api_client, project):
    """The body is a file, not an object list: fields/omit/expand are neither honoured nor rejected."""
    plain = parsed(api_client.get(export_url(project)))
    assert parsed(api_client.get(export_url(project, "fields=id&omit=data&expand=project"))) == plain


def test_another_organizations_project_is_404(other_client, project):
    response = other_client.get(export_url(project))
    assert response.status_code == 404
    assert response.json()["detail"] == "No Project matches the given query."


def test_unknown_project_is_404_before_bad_input(api_client, project):
    url = reverse("project-export", kwargs={"pk": project.pk + 1000})
    response = api_client.get(url + "?exportType=FOO")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"


def test_the_other_slash_form_answers_directly(api_client, project):
    response = api_client.get(export_url(project).rstrip("/") + "/")
    assert response.status_code == 200
    assert parsed(response) == parsed(api_client.get(export_url(project)))


def test_other_methods_are_405_json(api_client, project):
    response = api_client.post(export_url(project), {}, format="json")
    assert response.status_code == 405
    assert response.json()["status_code"] == 405


def test_without_credentials_is_401(project):
    response = APIClient().get(export_url(project))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json()["status_code"] == 401


def test_batches_are_joined_into_one_array(api_client, user, monkeypatch):
    monkeypatch.setattr(easy, "BATCH_SIZE", 2)
    project = make_project(user=user, title="Batches")
    ids = fill_project(project, user=user, count=5)
    assert [t["id"] for t in parsed(api_client.get(export_url(project)))] == ids
    records = parsed(api_client.get(export_url(project, "exportType=JSON_MIN")))
    assert [r["id"] for r in records] == ids


def test_an_empty_export_is_an_empty_array(api_client, user):
    project = make_project(user=user, title="Empty")
    assert body_of(api_client.get(export_url(project))) == b"[]"
    assert body_of(api_client.get(export_url(project, "exportType=JSON_MIN"))) == b"[]"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_batches_are_read_ahead_and_stop_when_the_client_leaves(api_client, user, monkeypatch):
    """The deployed path on PostgreSQL: a second thread reads the next batch; closing the response ends it."""
    monkeypatch.setattr(easy, "BATCH_SIZE", 2)
    project = make_project(user=user, title="Ahead")
    ids = fill_project(project, user=user, count=7)
    assert [t["id"] for t in parsed(api_client.get(export_url(project)))] == ids

    response = api_client.get(export_url(project, "exportType=JSON_MIN"))
    chunks = iter(response.streaming_content)
    assert next(chunks) == b"["
    assert next(chunks).startswith(b"{")
    assert read_ahead_threads() == 1
    response.close()
    assert read_ahead_threads() == 0


@pytest.mark.django_db(transaction=True)
def test_sdk_download_sync_against_a_live_server(live_server, user, monkeypatch):
    """label-studio-sdk's easy export sends `ids` as repeated keys (which Label Studio itself ignores)."""
    monkeypatch.setattr(easy, "BATCH_SIZE", 2)
    project = make_project(user=user, title="SDK")
    ids = fill_project(project, user=user, count=5)
    ls = LabelStudio(base_url=live_server.url, api_key=Token.objects.create(user=user).key)
    chunks = ls.projects.exports.download_sync(
        project.pk, export_type="JSON_MIN", download_all_tasks=True, ids=[ids[0], ids[2], ids[4]]
    )
    records = json.loads(b"".join(chunks))
    assert [record["id"] for record in records] == [ids[0], ids[2], ids[4]]
    assert all(record["annotator"] == user.pk for record in records)


@pytest.mark.parametrize("export_type", ["JSON", "JSON_MIN"])
@pytest.mark.parametrize("count", [1, 9])
def test_query_count_does_not_grow_with_tasks(
    api_client, user, monkeypatch, django_assert_max_num_queries, export_type, count
):
    """Token and project, then per batch of up to 10 tasks: tasks, annotations, predictions, drafts; then the
    query that finds no more tasks."""
    monkeypatch.setattr(easy, "BATCH_SIZE", 10)
    project = make_project(user=user, title="Queries")
    fill_project(project, user=user, count=count)
    with django_assert_max_num_queries(7):
        response = api_client.get(export_url(project, f"exportType={export_type}"))
        items = json.loads(b"".join(response.streaming_content))
    assert len({item["id"] for item in items}) == count


def test_schema_documents_the_operation():
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", stdout=out)
    operation = json.loads(out.getvalue())["paths"]["/api/projects/{id}/export"]["get"]
    assert operation["operationId"] == "api_projects_export_retrieve"
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert names == {
        "id",
        "exportType",
        "export_type",
        "download_all_tasks",
        "download_resources",
        "interpolate_key_frames",
        "ids",
    }
    assert "streamed" in operation["description"]
    assert "converted" in operation["description"]
    content = operation["responses"]["200"]["content"]
    assert content["text/csv"]["schema"]["format"] == "binary"
    assert content["application/zip"]["schema"]["format"] == "binary"
    assert "application/json" in content
    enum = next(p for p in operation["parameters"] if p["name"] == "exportType")["schema"]["enum"]
    assert sorted(enum) == sorted(fmt.name for fmt in FORMATS)  # spectacular sorts enums
