"""Snapshot options change the file's contents the way Label Studio's do (checked on the downloaded file)."""

import json

import pytest

from exports.interpolation import interpolate_key_frames
from projects.models import AnnotationDraft, Task
from projects.services import tasks_import
from tests.exports.helpers import create_export, download_url
from tests.factories import choice, make_project, rectangle

pytestmark = pytest.mark.django_db

VIDEO_CONFIG = """<View>
  <Video name="video" value="$video"/>
  <VideoRectangle name="box" toName="video"/>
  <Labels name="videoLabels" toName="video"><Label value="Car"/></Labels>
</View>"""


def annotation(*, cancelled=False, ground_truth=False, label="Car"):
    return {"result": [rectangle(label), choice()], "was_cancelled": cancelled, "ground_truth": ground_truth}


@pytest.fixture
def project(user):
    """Five tasks: usual; cancelled only; ground truth + usual; none; two usual (labeled)."""
    project = make_project(user=user, title="Options")
    payload = [
        {"data": {"image": "0"}, "annotations": [annotation()], "predictions": [{"result": [rectangle()]}]},
        {"data": {"image": "1"}, "annotations": [annotation(cancelled=True)]},
        {"data": {"image": "2"}, "annotations": [annotation(ground_truth=True), annotation(label="Person")]},
        {"data": {"image": "3"}, "predictions": [{"result": [], "score": 0.1, "model_version": "m2"}]},
        {"data": {"image": "4"}, "annotations": [annotation(), annotation()]},
    ]
    tasks_import(project=project, user=user, payload=payload)
    return project


def snapshot(api_client, project, django_capture_on_commit_callbacks, **body):
    created = create_export(api_client, project, django_capture_on_commit_callbacks, body)
    response = api_client.get(download_url(project, created["id"]))
    tasks = json.loads(b"".join(response.streaming_content))
    detail = api_client.get(download_url(project, created["id"]).rsplit("/download", 1)[0]).json()
    return tasks, detail, created


def images(tasks):
    return [task["data"]["image"] for task in tasks]


def test_no_options_keeps_every_task_and_annotation(api_client, project, django_capture_on_commit_callbacks):
    tasks, detail, created = snapshot(api_client, project, django_capture_on_commit_callbacks)
    assert images(tasks) == ["0", "1", "2", "3", "4"]
    assert sum(len(t["annotations"]) for t in tasks) == 6
    assert detail["counters"]["task_number"] == 5
    assert detail["counters"]["annotation_number"] == 6
    assert detail["counters"]["prediction_number"] == 2
    assert created["task_filter_options"] is None


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"annotated": "only"}, ["0", "2", "4"]),
        ({"annotated": "exclude"}, ["1", "3"]),
        ({"skipped": "only"}, ["1"]),
        ({"skipped": "exclude"}, ["0", "2", "3", "4"]),
        # Label Studio finishes an imported task with any annotation, a skipped one too (test_finished_rule.py)
        ({"finished": "only"}, ["0", "1", "2", "4"]),
        ({"finished": "exclude"}, ["3"]),
        ({"only_with_annotations": True}, ["0", "1", "2", "4"]),
        ({"annotated": "only", "skipped": "exclude", "only_with_annotations": True}, ["0", "2", "4"]),
    ],
)
def test_task_filters(api_client, project, django_capture_on_commit_callbacks, options, expected):
    tasks, detail, created = snapshot(
        api_client, project, django_capture_on_commit_callbacks, task_filter_options=options
    )
    assert images(tasks) == expected
    assert detail["counters"]["task_number"] == len(expected)
    assert {k: v for k, v in created["task_filter_options"].items() if k in options} == options


@pytest.mark.parametrize(
    ("options", "per_task"),
    [
        ({}, {"0": 1, "1": 0, "2": 1, "3": 0, "4": 2}),
        ({"usual": False, "ground_truth": True}, {"0": 0, "1": 0, "2": 1, "3": 0, "4": 0}),
        ({"usual": False, "skipped": True}, {"0": 0, "1": 1, "2": 0, "3": 0, "4": 0}),
        ({"usual": True, "ground_truth": True, "skipped": True}, {"0": 1, "1": 1, "2": 2, "3": 0, "4": 2}),
        ({"usual": False}, {"0": 0, "1": 0, "2": 0, "3": 0, "4": 0}),
    ],
)
def test_annotation_filters_are_ored(api_client, project, django_capture_on_commit_callbacks, options, per_task):
    tasks, detail, _ = snapshot(
        api_client, project, django_capture_on_commit_callbacks, annotation_filter_options=options
    )
    assert {t["data"]["image"]: len(t["annotations"]) for t in tasks} == per_task
    assert detail["counters"]["annotation_number"] == sum(per_task.values())
    for task in tasks:
        for item in task["annotations"]:
            if item["was_cancelled"]:
                assert options.get("skipped")
            elif item["ground_truth"]:
                assert options.get("ground_truth")


def test_ids_are_the_default_serialization(api_client, user, project, django_capture_on_commit_callbacks):
    AnnotationDraft.objects.create(task=Task.objects.get(data__image="3"), user=user, result=[choice("Bad")])
    tasks, _, _ = snapshot(api_client, project, django_capture_on_commit_callbacks)
    first = tasks[0]
    assert first["annotations"][0]["completed_by"] == user.pk
    assert all(isinstance(p, int) for p in first["predictions"])
    assert all(isinstance(d, int) for d in tasks[3]["drafts"])
    assert len(tasks[3]["drafts"]) == 1


def test_full_objects_when_only_id_is_false(api_client, user, project, django_capture_on_commit_callbacks):
    AnnotationDraft.objects.create(task=Task.objects.get(data__image="3"), user=user, result=[choice("Bad")])
    options = {key: {"only_id": False} for key in ("drafts", "predictions", "annotations__completed_by")}
    tasks, _, created = snapshot(api_client, project, django_capture_on_commit_callbacks, serialization_options=options)
    assert created["serialization_options"]["predictions"] == {"only_id": False}
    completed_by = tasks[0]["annotations"][0]["completed_by"]
    assert completed_by == {"id": user.pk, "email": user.email, "first_name": "", "last_name": ""}
    prediction = tasks[3]["predictions"][0]
    assert prediction["model_version"] == "m2"
    assert prediction["score"] == 0.1
    assert prediction["result"] == []
    assert prediction["task"] == tasks[3]["id"]
    draft = tasks[3]["drafts"][0]
    assert draft["result"] == [choice("Bad")]
    assert draft["user"] == user.pk
    assert draft["task"] == tasks[3]["id"]


def test_annotation_history_is_accepted(api_client, project, django_capture_on_commit_callbacks):
    """No annotation history is kept, as in Label Studio Community: the option changes nothing."""
    plain, _, _ = snapshot(api_client, project, django_capture_on_commit_callbacks)
    with_history, _, created = snapshot(
        api_client,
        project,
        django_capture_on_commit_callbacks,
        serialization_options={"include_annotation_history": True},
    )
    assert created["serialization_options"]["include_annotation_history"] is True
    assert with_history == plain


def video_result():
    return [
        {
            "id": "v1",
            "from_name": "box",
            "to_name": "video",
            "type": "videorectangle",
            "value": {
                "framesCount": 10,
                "duration": 1.0,
                "labels": ["Car"],
                "sequence": [
                    {
                        "frame": 1,
                        "enabled": True,
                        "x": 10,
                        "y": 10,
                        "width": 5,
                        "height": 5,
                        "rotation": 0,
                        "time": 0.0,
                    },
                    {
                        "frame": 4,
                        "enabled": False,
                        "x": 40,
                        "y": 10,
                        "width": 5,
                        "height": 5,
                        "rotation": 0,
                        "time": 0.3,
                    },
                ],
            },
        }
    ]


def test_key_frames_are_interpolated_on_request(api_client, user, django_capture_on_commit_callbacks):
    project = make_project(user=user, title="Video", label_config=VIDEO_CONFIG)
    payload = [
        {
            "data": {"video": "v.mp4"},
            "annotations": [{"result": video_result()}],
            "predictions": [{"result": video_result()}],
        }
    ]
    tasks_import(project=project, user=user, payload=payload)
    plain, _, _ = snapshot(api_client, project, django_capture_on_commit_callbacks)
    assert plain[0]["annotations"][0]["result"] == video_result()
    expanded, _, _ = snapshot(
        api_client, project, django_capture_on_commit_callbacks, serialization_options={"interpolate_key_frames": True}
    )
    result = expanded[0]["annotations"][0]["result"]
    assert result == interpolate_key_frames(video_result())
    assert [frame["frame"] for frame in result[0]["value"]["sequence"]] == [1, 2, 3, 4]
    assert expanded[0]["predictions"] == plain[0]["predictions"]


def test_interpolation_leaves_non_video_projects_alone(api_client, project, django_capture_on_commit_callbacks):
    plain, _, _ = snapshot(api_client, project, django_capture_on_commit_callbacks)
    expanded, _, _ = snapshot(
        api_client, project, django_capture_on_commit_callbacks, serialization_options={"interpolate_key_frames": True}
    )
    assert expanded == plain
