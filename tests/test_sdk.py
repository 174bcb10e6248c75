"""End-to-end: the official `label-studio-sdk` 2.1.2 drives a live server (spec/SDK.md, spec/API.md §2-3).

The SDK parses responses without validating them, so every test asserts the values it gets back.
"""

import datetime as dt
import hashlib
import itertools
import json
import re
import threading
import time

import pytest
from label_studio_sdk import (
    LabelStudio,
    LseAnnotationFilterOptionsRequest,
    LseTaskFilterOptionsRequest,
    SerializationOptionRequest,
    SerializationOptionsRequest,
)
from label_studio_sdk.core.api_error import ApiError
from rest_framework.authtoken.models import Token

from exports import jobs, queue
from tests.factories import IMAGE_CONFIG, choice, make_org, make_user, rectangle

pytestmark = pytest.mark.django_db(transaction=True)

STATUSES = {"created", "in_progress", "failed", "completed"}
MD5 = re.compile(r"^[0-9a-f]{32}$")
NO_RETRIES = {"max_retries": 0}


def sdk_for(base_url: str, user) -> LabelStudio:
    token = Token.objects.create(user=user)
    return LabelStudio(base_url=base_url, api_key=token.key)


@pytest.fixture
def sdk_user(db):
    return make_user(email="sdk.user@example.com", organization=make_org(title="SDK Org"), first_name="Sdk")


@pytest.fixture
def ls(live_server, sdk_user) -> LabelStudio:
    return sdk_for(live_server.url, sdk_user)


def task(index: int, *, annotations: list[dict] | None = None) -> dict:
    """An image task with one prediction; `annotations` are (was_cancelled, ground_truth) specs."""
    return {
        "data": {"image": f"https://example.com/sdk/{index}.jpg", "index": index},
        "annotations": annotations if annotations is not None else [annotation()],
        "predictions": [{"result": [rectangle("Person", 5.0 + index)], "score": 0.5, "model_version": "sdk-v1"}],
    }


def annotation(*, cancelled: bool = False, ground_truth: bool = False) -> dict:
    result = [] if cancelled else [rectangle("Car", 11.0), choice("Bad")]
    return {"result": result, "was_cancelled": cancelled, "ground_truth": ground_truth}


def create_project(ls: LabelStudio, title: str = "SDK Project"):
    project = ls.projects.create(title=title, label_config=IMAGE_CONFIG)
    assert isinstance(project.id, int)
    return project


def import_tasks(ls: LabelStudio, project_id: int, tasks: list[dict]):
    result = ls.projects.import_tasks(id=project_id, request=tasks, return_task_ids=True)
    assert result.task_count == len(tasks)
    return result


def wait_completed(ls: LabelStudio, project_id: int, export_id: int, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        export = ls.projects.exports.get(id=project_id, export_pk=export_id)
        assert export.status in STATUSES
        assert export.status != "failed", export
        if export.status == "completed":
            return export
        assert time.monotonic() < deadline, f"export {export_id} still {export.status} after {timeout} s"
        time.sleep(0.1)


def listed_projects(ls: LabelStudio, limit: int = 100, **params) -> list:
    """Every project the SDK pager yields; a server that ignores `page` would make it loop forever."""
    projects = list(itertools.islice(ls.projects.list(**params), limit + 1))
    assert len(projects) <= limit, "the pager did not stop"
    return projects


def download(ls: LabelStudio, project_id: int, export_id: int, **kwargs) -> bytes:
    return b"".join(ls.projects.exports.download(id=project_id, export_pk=export_id, **kwargs))


def as_datetime(value) -> dt.datetime:
    """The SDK leaves an unparseable datetime as a string; a parseable one must be timezone-aware."""
    assert isinstance(value, dt.datetime), value
    assert value.tzinfo is not None
    return value


# --- projects ---------------------------------------------------------------------------------------------


def test_project_create_and_get(ls):
    created = ls.projects.create(title="Cars and people", label_config=IMAGE_CONFIG, description="from the SDK")

    assert isinstance(created.id, int)
    assert created.title == "Cars and people"
    assert created.label_config == IMAGE_CONFIG
    assert created.description == "from the SDK"

    fetched = ls.projects.get(id=created.id)
    assert fetched.id == created.id
    assert fetched.title == "Cars and people"
    assert fetched.label_config == IMAGE_CONFIG
    assert fetched.task_number == 0
    assert fetched.get_label_interface() is not None


def test_project_update_persists_title_and_keeps_label_config(ls):
    project = create_project(ls, "Before")

    updated = ls.projects.update(id=project.id, title="After")

    assert updated.id == project.id
    assert updated.title == "After"
    assert updated.label_config == IMAGE_CONFIG
    fetched = ls.projects.get(id=project.id)
    assert fetched.title == "After"
    assert fetched.label_config == IMAGE_CONFIG


def test_project_delete_then_get_is_404(ls):
    project = create_project(ls)

    assert ls.projects.delete(id=project.id) is None

    with pytest.raises(ApiError) as caught:
        ls.projects.get(id=project.id)
    assert caught.value.status_code == 404
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["status_code"] == 404
    assert project.id not in [p.id for p in listed_projects(ls)]


def test_project_list_pager_walks_every_page_once(ls):
    ids = [create_project(ls, f"Paged {n}").id for n in range(5)]

    pager = ls.projects.list(page_size=2)
    seen = [project.id for project in itertools.islice(pager, 50)]  # a pager that never stops would reach 50

    assert pager.response.count == 5
    assert len(pager.items) == 2
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(set(seen)) == 5
    titles = {project.title for project in listed_projects(ls, page_size=2)}
    assert titles == {f"Paged {n}" for n in range(5)}
    with pytest.raises(ApiError) as caught:  # past the last page: how Label Studio ends the walk
        ls.projects.list(page=4, page_size=2)
    assert caught.value.status_code == 404
    assert caught.value.body["detail"] == "Invalid page."


def test_project_list_pager_ends_on_empty_first_page(ls):
    assert listed_projects(ls) == []


def test_project_list_and_get_stay_inside_the_organization(ls, live_server):
    mine = create_project(ls, "Mine")
    other = sdk_for(live_server.url, make_user(email="other@example.com", organization=make_org(title="Other")))
    theirs = create_project(other, "Theirs")

    assert [p.id for p in listed_projects(ls)] == [mine.id]
    assert [p.id for p in listed_projects(other)] == [theirs.id]
    with pytest.raises(ApiError) as caught:
        ls.projects.get(id=theirs.id)
    assert caught.value.status_code == 404
    with pytest.raises(ApiError) as caught:
        ls.projects.exports.list(id=theirs.id)
    assert caught.value.status_code == 404


# --- import -----------------------------------------------------------------------------------------------


def test_import_tasks_counts_and_task_number(ls):
    project = create_project(ls)
    tasks = [
        task(0),
        task(1, annotations=[annotation(cancelled=True)]),
        task(2, annotations=[annotation(), annotation(ground_truth=True)]),
        task(3, annotations=[]),
    ]

    result = ls.projects.import_tasks(id=project.id, request=tasks, return_task_ids=True)

    assert result.task_count == 4
    assert result.annotation_count == 4
    prediction_count = result.predictions_count
    if prediction_count is None:
        prediction_count = (result.model_extra or {}).get("prediction_count")
    assert prediction_count == 4
    task_ids = (result.model_extra or {}).get("task_ids")
    assert isinstance(task_ids, list)
    assert len(task_ids) == len(set(task_ids)) == 4
    assert all(isinstance(task_id, int) for task_id in task_ids)

    fetched = ls.projects.get(id=project.id)
    assert fetched.task_number == 4
    assert fetched.total_predictions_number == 4
    assert fetched.total_annotations_number == 3  # the cancelled one is not counted
    assert fetched.skipped_annotations_number == 1


def test_import_tasks_without_return_task_ids_omits_them(ls):
    project = create_project(ls)

    result = ls.projects.import_tasks(id=project.id, request=[task(0), task(1)])

    assert result.task_count == 2
    assert "task_ids" not in (result.model_extra or {})
    assert ls.projects.get(id=project.id).task_number == 2


def test_import_tasks_missing_data_key_is_400_and_imports_nothing(ls):
    project = create_project(ls)

    with pytest.raises(ApiError) as caught:
        ls.projects.import_tasks(id=project.id, request=[task(0), {"data": {"text": "no image"}}])

    assert caught.value.status_code == 400
    assert isinstance(caught.value.body, dict)
    assert "image" in json.dumps(caught.value.body["validation_errors"])
    assert ls.projects.get(id=project.id).task_number == 0


# --- export snapshots -------------------------------------------------------------------------------------


def test_export_snapshot_lifecycle(ls, sdk_user):
    project = create_project(ls, "Snap Shot")
    tasks = [task(0), task(1, annotations=[annotation(cancelled=True)]), task(2, annotations=[]), task(3)]
    imported = import_tasks(ls, project.id, tasks)

    created = ls.projects.exports.create(id=project.id, title="first snapshot")
    assert isinstance(created.id, int)
    assert created.status in STATUSES
    assert created.title == "first snapshot"

    export = wait_completed(ls, project.id, created.id)
    assert export.id == created.id
    assert export.title == "first snapshot"
    assert export.created_by.id == sdk_user.pk
    assert export.created_by.email == "sdk.user@example.com"
    assert export.created_by.username == "sdk.user"
    created_at = as_datetime(export.created_at)
    assert as_datetime(export.finished_at) >= created_at
    assert MD5.match(export.md5)
    assert export.counters["task_number"] == 4
    assert export.counters["annotation_number"] == 3
    assert export.counters["prediction_number"] == 4
    assert export.converted_formats == []

    body = download(ls, project.id, export.id)
    assert hashlib.md5(body).hexdigest() == export.md5
    snapshot = json.loads(body)
    assert isinstance(snapshot, list)
    assert [item["data"] for item in snapshot] == [t["data"] for t in tasks]
    assert [item["id"] for item in snapshot] == imported.model_extra["task_ids"]
    assert [len(item["annotations"]) for item in snapshot] == [1, 1, 0, 1]
    assert [a["was_cancelled"] for item in snapshot for a in item["annotations"]] == [False, True, False]
    assert all(a["completed_by"] == sdk_user.pk for item in snapshot for a in item["annotations"])
    assert snapshot[0]["annotations"][0]["result"] == tasks[0]["annotations"][0]["result"]
    assert all(len(item["predictions"]) == 1 and isinstance(item["predictions"][0], int) for item in snapshot)
    assert all(item["project"] == project.id for item in snapshot)
    assert download(ls, project.id, export.id, export_type="JSON") == body

    second = ls.projects.exports.create(id=project.id)
    second = wait_completed(ls, project.id, second.id)
    assert re.fullmatch(r"Snap-Shot-at-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}", second.title)
    listed = ls.projects.exports.list(id=project.id)
    assert [item.id for item in listed] == [second.id, export.id]  # newest first
    assert listed[1].md5 == export.md5
    assert all(item.status == "completed" for item in listed)
    assert download(ls, project.id, second.id) == body  # same data, same bytes

    assert ls.projects.exports.delete(id=project.id, export_pk=export.id) is None
    with pytest.raises(ApiError) as caught:
        ls.projects.exports.get(id=project.id, export_pk=export.id)
    assert caught.value.status_code == 404
    assert isinstance(caught.value.body, dict)
    with pytest.raises(ApiError) as caught:
        download(ls, project.id, export.id)
    assert caught.value.status_code == 404
    assert [item.id for item in ls.projects.exports.list(id=project.id)] == [second.id]


def test_export_create_ignores_read_only_fields_the_sdk_can_send(ls, sdk_user):
    project = create_project(ls)
    import_tasks(ls, project.id, [task(0), task(1)])

    created = ls.projects.exports.create(
        id=project.id,
        title="honest",
        status="failed",
        md5="0" * 32,
        counters={"task_number": 99},
        converted_formats=[{"export_type": "CSV", "status": "completed"}],
        finished_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        created_by={"username": "someone-else"},
    )
    export = wait_completed(ls, project.id, created.id)

    assert export.title == "honest"
    assert export.md5 != "0" * 32
    assert export.md5 == hashlib.md5(download(ls, project.id, export.id)).hexdigest()
    assert export.counters["task_number"] == 2
    assert export.converted_formats == []
    assert as_datetime(export.finished_at) >= as_datetime(export.created_at)
    assert export.finished_at.year > 2020
    assert export.created_by.id == sdk_user.pk


def test_export_download_headers(ls):
    project = create_project(ls)
    import_tasks(ls, project.id, [task(0)])
    export = wait_completed(ls, project.id, ls.projects.exports.create(id=project.id).id)

    with ls.projects.exports.with_raw_response.download(id=project.id, export_pk=export.id) as response:
        body = b"".join(response.data)
        headers = response.headers

    stamp = export.created_at.astimezone(dt.UTC).strftime("%Y-%m-%d-%H-%M")
    name = f"project-{project.id}-at-{stamp}-{export.md5[:8]}.json"
    assert headers["content-type"].startswith("application/json")
    assert headers["content-disposition"] == f'attachment; filename="{name}"'
    assert headers["filename"] == name
    assert int(headers["content-length"]) == len(body)
    assert hashlib.md5(body).hexdigest() == export.md5


def test_export_of_empty_project_is_an_empty_list(ls):
    project = create_project(ls)

    export = wait_completed(ls, project.id, ls.projects.exports.create(id=project.id).id)

    body = download(ls, project.id, export.id)
    assert json.loads(body) == []
    assert export.md5 == hashlib.md5(body).hexdigest()
    assert export.counters["task_number"] == 0


FILTERED_OPTIONS = {
    "sdk types": {
        "task_filter_options": LseTaskFilterOptionsRequest(annotated="only"),
        "annotation_filter_options": LseAnnotationFilterOptionsRequest(usual=True, ground_truth=True, skipped=False),
        "serialization_options": SerializationOptionsRequest(
            predictions=SerializationOptionRequest(only_id=False),
            annotations_completed_by=SerializationOptionRequest(only_id=False),
        ),
    },
    "plain dicts": {
        "task_filter_options": {"annotated": "only"},
        "annotation_filter_options": {"usual": True, "ground_truth": True, "skipped": False},
        "serialization_options": {
            "predictions": {"only_id": False},
            "annotations__completed_by": {"only_id": False},
        },
    },
}


@pytest.mark.parametrize("options", FILTERED_OPTIONS.values(), ids=FILTERED_OPTIONS.keys())
def test_export_with_filters_and_serialization_options(ls, sdk_user, options):
    project = create_project(ls)
    tasks = [
        task(0),  # usual annotation: kept
        task(1, annotations=[annotation(cancelled=True)]),  # only cancelled: not annotated, dropped
        task(2, annotations=[annotation(), annotation(cancelled=True)]),  # kept, its cancelled annotation dropped
        task(3, annotations=[annotation(ground_truth=True)]),  # ground truth: kept
        task(4, annotations=[]),  # not annotated: dropped
    ]
    task_ids = import_tasks(ls, project.id, tasks).model_extra["task_ids"]

    created = ls.projects.exports.create(id=project.id, title="filtered", **options)
    assert created.status in STATUSES
    assert created.task_filter_options.annotated == "only"
    export = wait_completed(ls, project.id, created.id)
    body = download(ls, project.id, export.id)
    snapshot = json.loads(body)

    assert hashlib.md5(body).hexdigest() == export.md5
    assert [item["id"] for item in snapshot] == [task_ids[0], task_ids[2], task_ids[3]]
    assert [item["data"]["index"] for item in snapshot] == [0, 2, 3]
    assert export.counters["task_number"] == 3
    annotations = [a for item in snapshot for a in item["annotations"]]
    assert len(annotations) == 3
    assert not any(a["was_cancelled"] for a in annotations)
    assert [a["ground_truth"] for a in annotations] == [False, False, True]
    for item in annotations:
        assert isinstance(item["completed_by"], dict)
        assert item["completed_by"]["id"] == sdk_user.pk
        assert item["completed_by"]["email"] == "sdk.user@example.com"
        assert item["completed_by"]["first_name"] == "Sdk"
    for item in snapshot:
        assert len(item["predictions"]) == 1
        prediction = item["predictions"][0]
        assert isinstance(prediction, dict)
        assert prediction["model_version"] == "sdk-v1"
        assert prediction["score"] == 0.5
        assert prediction["result"] == tasks[item["data"]["index"]]["predictions"][0]["result"]
        assert prediction["task"] == item["id"]


def test_export_create_with_invalid_options_is_400(ls):
    project = create_project(ls)

    with pytest.raises(ApiError) as caught:
        ls.projects.exports.create(id=project.id, task_filter_options={"annotated": "sometimes"})

    assert caught.value.status_code == 400
    assert isinstance(caught.value.body, dict)
    assert "task_filter_options" in caught.value.body["validation_errors"]
    assert ls.projects.exports.list(id=project.id) == []


def test_export_runs_in_the_embedded_thread_pool(ls, settings, monkeypatch):
    """JOBS_BACKEND=thread: the request returns, a `jobs` pool thread builds the file, polling sees it complete."""
    settings.JOBS_BACKEND = "thread"
    # A fresh pool for this test, restored afterwards; the stale-job sweeper sleeps past the end of the run.
    monkeypatch.setattr(queue, "_pool", None)
    monkeypatch.setattr(queue, "_started", False)
    monkeypatch.setattr(queue, "SWEEP_SECONDS", 24 * 3600)
    threads = []
    real_run_export = jobs.run_export

    def recording_run_export(export_id):
        threads.append(threading.current_thread().name)
        real_run_export(export_id)

    monkeypatch.setattr(jobs, "run_export", recording_run_export)
    project = create_project(ls)
    import_tasks(ls, project.id, [task(n) for n in range(3)])

    try:
        created = ls.projects.exports.create(id=project.id, title="threaded")
        assert created.status in STATUSES
        export = wait_completed(ls, project.id, created.id, timeout=30.0)
    finally:
        if queue._pool is not None:
            queue._pool.shutdown(wait=True)

    assert len(threads) == 1
    assert threads[0].startswith("jobs")
    assert export.title == "threaded"
    assert export.counters["task_number"] == 3
    body = download(ls, project.id, export.id)
    assert hashlib.md5(body).hexdigest() == export.md5
    assert [item["data"]["index"] for item in json.loads(body)] == [0, 1, 2]


# --- errors -----------------------------------------------------------------------------------------------


def test_bad_token_is_401(ls, live_server):
    project = create_project(ls)
    intruder = LabelStudio(base_url=live_server.url, api_key="0" * 40)

    with pytest.raises(ApiError) as caught:
        intruder.projects.get(id=project.id)
    assert caught.value.status_code == 401
    assert caught.value.headers["www-authenticate"] == "Token"
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["status_code"] == 401
    with pytest.raises(ApiError) as caught:
        intruder.projects.list()
    assert caught.value.status_code == 401
    with pytest.raises(ApiError) as caught:
        intruder.projects.exports.create(id=project.id)
    assert caught.value.status_code == 401
    assert ls.projects.exports.list(id=project.id) == []


def test_unknown_project_and_export_are_404_json(ls):
    with pytest.raises(ApiError) as caught:
        ls.projects.get(id=987654, request_options=NO_RETRIES)
    assert caught.value.status_code == 404
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["status_code"] == 404
    assert caught.value.body["detail"]

    project = create_project(ls)
    with pytest.raises(ApiError) as caught:
        ls.projects.exports.get(id=project.id, export_pk=987654)
    assert caught.value.status_code == 404
    assert isinstance(caught.value.body, dict)
    with pytest.raises(ApiError) as caught:
        ls.projects.import_tasks(id=987654, request=[task(0)])
    assert caught.value.status_code == 404
    with pytest.raises(ApiError) as caught:
        ls.projects.exports.create(id=987654)
    assert caught.value.status_code == 404


def test_as_json_helper_uses_the_easy_export(ls):
    """The SDK's `as_json` reads /api/version/ ("Community") and then downloads through the easy export."""
    version = ls.versions.get()
    assert version.edition == "Community"
    assert version.release
    project = create_project(ls)
    import_tasks(ls, project.id, [task(n) for n in range(3)])
    tasks = ls.projects.exports.as_json(project.id)
    assert sorted(item["data"]["index"] for item in tasks) == [0, 1, 2]
