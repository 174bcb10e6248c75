"""`ls.projects.exports` methods of label-studio-sdk 2.1.2 (spec/SDK.md §3) against a live server, in both
auth modes: snapshots created, polled, listed, downloaded (streamed, and byte for byte what a plain GET serves),
converted and deleted; the formats list; the easy export and the `as_json` helper built on it."""

import csv
import datetime as dt
import hashlib
import io
import json
import re
import threading

import httpx
import pytest
from label_studio_sdk import (
    LseAnnotationFilterOptionsRequest,
    LseTaskFilterOptionsRequest,
    SerializationOptionRequest,
    SerializationOptionsRequest,
)
from label_studio_sdk.converter import Converter
from label_studio_sdk.core.api_error import ApiError
from rest_framework.authtoken.models import Token

from exports import jobs, queue, recovery
from tests.factories import IMAGE_CONFIG
from tests.sdk.helpers import (
    MD5,
    NO_RETRIES,
    STATUSES,
    annotation,
    as_datetime,
    create_project,
    download,
    import_tasks,
    task,
    wait_completed,
    wait_converted,
)

pytestmark = pytest.mark.django_db(transaction=True)


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
    monkeypatch.setattr(recovery, "_started", False)
    monkeypatch.setattr(recovery, "SWEEP_SECONDS", 24 * 3600)
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


def test_download_streams_the_same_bytes_as_a_plain_get(ls, live_server, sdk_user):
    """The SDK's generator yields the file in chunks; joined, they are exactly what an HTTP GET returns."""
    project = create_project(ls)
    import_tasks(ls, project.id, [task(n) for n in range(12)])
    export = wait_completed(ls, project.id, ls.projects.exports.create(id=project.id).id)

    chunks = list(
        ls.projects.exports.download(id=project.id, export_pk=export.id, request_options={"chunk_size": 1024})
    )

    assert len(chunks) > 1
    assert all(isinstance(chunk, bytes) for chunk in chunks)
    body = b"".join(chunks)
    key = Token.objects.get_or_create(user=sdk_user)[0].key
    url = f"{live_server.url}/api/projects/{project.id}/exports/{export.id}/download"
    plain = httpx.get(url, headers={"Authorization": f"Token {key}"})
    assert plain.status_code == 200
    assert plain.content == body
    assert hashlib.md5(body).hexdigest() == export.md5
    assert len(json.loads(body)) == 12


def format_names(formats: list) -> tuple[list[str], set[str]]:
    """(all names in order, enabled names) from the formats list, whether items are names or objects."""
    names, enabled = [], set()
    for item in formats:
        name = item if isinstance(item, str) else item["name"]
        names.append(name)
        if isinstance(item, str) or not item.get("disabled"):
            enabled.add(name)
    return names, enabled


def test_list_formats(ls):
    project = create_project(ls)

    names, enabled = format_names(ls.projects.exports.list_formats(id=project.id))

    assert {"JSON", "JSON_MIN", "CSV", "TSV", "COCO", "YOLO", "VOC"} <= enabled
    assert "CONLL2003" in names
    assert "CONLL2003" not in enabled  # needs a text config
    assert names.index("JSON") < names.index("CONLL2003")  # enabled formats come first
    assert len(names) == len(set(names))


def csv_rows(body: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"))))


def row_key(row: dict) -> list:
    return sorted(row.items())


def reference_csv(snapshot: bytes, tmp_path) -> list[dict]:
    """The rows label-studio-sdk's converter writes for the same JSON snapshot."""
    source, target = tmp_path / "snapshot.json", tmp_path / "reference"
    source.write_bytes(snapshot)
    converter = Converter(config=IMAGE_CONFIG, project_dir=None, download_resources=False)
    converter.convert(str(source), str(target), "CSV", is_dir=False)
    (written,) = target.glob("*.csv")
    return csv_rows(written.read_bytes())


def test_convert_to_csv_and_download(ls, live_server, sdk_user, tmp_path):
    project = create_project(ls)
    tasks = [task(0), task(1, annotations=[annotation(cancelled=True)]), task(2, annotations=[])]
    task_ids = import_tasks(ls, project.id, tasks).model_extra["task_ids"]
    export = wait_completed(ls, project.id, ls.projects.exports.create(id=project.id).id)
    with pytest.raises(ApiError) as caught:  # not converted yet
        download(ls, project.id, export.id, export_type="CSV")
    assert caught.value.status_code == 404

    started = ls.projects.exports.convert(id=project.id, export_pk=export.id, export_type="CSV")

    assert started.export_type == "CSV"
    assert isinstance(started.converted_format, int)
    export = wait_converted(ls, project.id, export.id, "CSV")
    assert [(item.id, item.export_type, item.status) for item in export.converted_formats] == [
        (started.converted_format, "CSV", "completed")
    ]
    body = download(ls, project.id, export.id, export_type="CSV")
    rows = csv_rows(body)
    # As the SDK's own converter does: a task with only cancelled annotations has no row.
    assert sorted(int(row["id"]) for row in rows) == [task_ids[0], task_ids[2]]
    reference = reference_csv(download(ls, project.id, export.id), tmp_path)
    assert sorted(rows, key=row_key) == sorted(reference, key=row_key)
    key = Token.objects.get_or_create(user=sdk_user)[0].key
    plain = httpx.get(
        f"{live_server.url}/api/projects/{project.id}/exports/{export.id}/download",
        params={"exportType": "CSV"},
        headers={"Authorization": f"Token {key}"},
    )
    assert plain.status_code == 200
    assert plain.content == body
    # The JSON snapshot itself is unchanged by the conversion.
    assert hashlib.md5(download(ls, project.id, export.id)).hexdigest() == export.md5

    with pytest.raises(ApiError) as caught:
        ls.projects.exports.convert(id=project.id, export_pk=export.id, export_type="CSV")
    assert caught.value.status_code == 400
    assert "Conversion to CSV already started" in json.dumps(caught.value.body)
    with pytest.raises(ApiError) as caught:
        ls.projects.exports.convert(id=project.id, export_pk=export.id, export_type="NOPE")
    assert caught.value.status_code == 400
    assert "export_type" in caught.value.body["validation_errors"]


def test_download_sync_easy_export(ls):
    project = create_project(ls)
    tasks = [task(0), task(1, annotations=[]), task(2)]
    task_ids = import_tasks(ls, project.id, tasks).model_extra["task_ids"]

    annotated = json.loads(b"".join(ls.projects.exports.download_sync(id=project.id, export_type="JSON")))
    everything = json.loads(
        b"".join(ls.projects.exports.download_sync(id=project.id, export_type="JSON", download_all_tasks=True))
    )
    chosen = json.loads(
        b"".join(
            ls.projects.exports.download_sync(
                id=project.id, export_type="JSON", download_all_tasks=True, ids=[str(task_ids[2]), str(task_ids[0])]
            )
        )
    )
    as_csv = b"".join(ls.projects.exports.download_sync(id=project.id, export_type="CSV", download_all_tasks=True))

    assert [item["id"] for item in annotated] == [task_ids[0], task_ids[2]]  # by default only annotated tasks
    assert [item["id"] for item in everything] == task_ids
    assert [item["data"] for item in everything] == [t["data"] for t in tasks]
    assert [item["id"] for item in chosen] == [task_ids[0], task_ids[2]]
    assert sorted(int(row["id"]) for row in csv.DictReader(io.StringIO(as_csv.decode("utf-8")))) == task_ids
    with pytest.raises(ApiError) as caught:
        b"".join(ls.projects.exports.download_sync(id=project.id, export_type="NOPE"))
    assert caught.value.status_code == 400


def test_unknown_export_is_404_json(ls):
    project = create_project(ls)

    for call in (
        lambda: ls.projects.exports.get(id=project.id, export_pk=987654, request_options=NO_RETRIES),
        lambda: ls.projects.exports.delete(id=project.id, export_pk=987654),
        lambda: download(ls, project.id, 987654),
        lambda: ls.projects.exports.convert(id=project.id, export_pk=987654, export_type="CSV"),
        lambda: ls.projects.exports.create(id=987654),
        lambda: ls.projects.exports.list(id=987654),
        lambda: ls.projects.exports.list_formats(id=987654),
    ):
        with pytest.raises(ApiError) as caught:
            call()
        assert caught.value.status_code == 404
        assert isinstance(caught.value.body, dict)
        assert caught.value.body["status_code"] == 404


def test_as_json_helper_uses_the_easy_export(ls):
    """The SDK's `as_json` reads /api/version/ ("Community") and then downloads through the easy export."""
    version = ls.versions.get()
    assert version.edition == "Community"
    assert version.release
    project = create_project(ls)
    import_tasks(ls, project.id, [task(n) for n in range(3)])
    tasks = ls.projects.exports.as_json(project.id)
    assert sorted(item["data"]["index"] for item in tasks) == [0, 1, 2]
