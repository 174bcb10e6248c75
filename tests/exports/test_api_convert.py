"""POST …/exports/{id}/convert, downloading converted formats, and the easy export of converted formats."""

import csv
import hashlib
import importlib
import io
import json
import threading
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from django.db import connection
from django.urls import reverse
from label_studio_sdk.converter import Converter

from exports import storage
from exports.converters.images import FOREIGN_FILE
from exports.converters.registry import FORMATS, get_format
from exports.models import ConvertedFormat, Export, Status
from projects.label_config import parse_label_config
from projects.models import Annotation
from projects.selectors import organization_project_ids
from projects.services import tasks_import
from tests.conftest import client_for
from tests.exports.helpers import create_export, detail_url, download_url, uniform_rle
from tests.factories import fill_project, make_project, rectangle

pytestmark = pytest.mark.django_db

VALID_TYPES = ", ".join(fmt.name for fmt in FORMATS)


def needs_converter(name: str) -> None:
    """Skip until the format's converter module is written (converters are built alongside this machinery)."""
    fmt = get_format(name)
    try:
        fmt.load()
    except (ImportError, AttributeError):
        pytest.skip(f"the {name} converter ({fmt.converter}) is not there yet")


def convert_url(project, export_id: int) -> str:
    return reverse("project-exports-convert", kwargs={"pk": project.pk, "export_pk": export_id})


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def convert(client, project, export_id, capture, body) -> object:
    """POST a conversion and run its job as the service does: once the request's transaction commits."""
    with capture(execute=True):
        return client.post(convert_url(project, export_id), body, format="json")


def sdk_convert(snapshot: bytes, label_config: str, export_type: str, folder: Path) -> bytes:
    """What Label Studio serves for a converted snapshot: label-studio-sdk's converter run on the same file."""
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "snapshot.json"
    source.write_bytes(snapshot)
    out = folder / "out"
    converter = Converter(config=parse_label_config(label_config), project_dir=None, download_resources=False)
    converter.convert(str(source), str(out), export_type, is_dir=False)
    [written] = list(out.iterdir())
    return written.read_bytes()


def csv_rows(content: bytes, delimiter: str = ",") -> tuple[list[str], list[tuple]]:
    """The header, and the rows as a sorted multiset of tuples keyed by header order."""
    reader = csv.DictReader(io.StringIO(content.decode()), delimiter=delimiter)
    header = sorted(reader.fieldnames or [])
    return header, sorted(tuple(row[name] for name in header) for row in reader)


@pytest.fixture
def project(user):
    project = make_project(user=user, title="Anchor A")
    fill_project(project, user=user, count=4)
    return project


@pytest.fixture
def export(api_client, project, django_capture_on_commit_callbacks):
    return create_export(api_client, project, django_capture_on_commit_callbacks)


def snapshot_bytes(api_client, project, export_id) -> bytes:
    response = api_client.get(download_url(project, export_id))
    assert response.status_code == 200
    return body_of(response)


# --- convert ---------------------------------------------------------------------------------------------------


def test_convert_answers_as_label_studio(api_client, project, export, django_capture_on_commit_callbacks):
    response = convert(api_client, project, export["id"], django_capture_on_commit_callbacks, {"export_type": "JSON"})
    assert response.status_code == 200
    converted = ConvertedFormat.objects.get()
    assert response.json() == {"export_type": "JSON", "converted_format": converted.pk}
    assert converted.export_id == export["id"]
    assert converted.status == Status.COMPLETED
    detail = api_client.get(detail_url(project, export["id"])).json()
    assert detail["converted_formats"] == [
        {"id": converted.pk, "status": "completed", "export_type": "JSON", "traceback": None}
    ]


def test_convert_starts_the_job_only_after_commit(api_client, project, export, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_client.post(convert_url(project, export["id"]), {"export_type": "JSON"}, format="json")
    assert response.status_code == 200
    assert ConvertedFormat.objects.get().status == Status.CREATED
    assert len(callbacks) == 1


def test_converting_the_same_type_again_is_refused(api_client, project, export, django_capture_on_commit_callbacks):
    first = convert(api_client, project, export["id"], django_capture_on_commit_callbacks, {"export_type": "JSON"})
    assert first.status_code == 200
    again = convert(api_client, project, export["id"], django_capture_on_commit_callbacks, {"export_type": "JSON"})
    assert again.status_code == 400
    body = again.json()
    assert body["detail"] == "Validation error"
    assert body["validation_errors"] == {"non_field_errors": ["Conversion to JSON already started"]}
    assert ConvertedFormat.objects.count() == 1


def test_a_conversion_still_waiting_blocks_another(api_client, project, export, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        api_client.post(convert_url(project, export["id"]), {"export_type": "JSON"}, format="json")
    again = api_client.post(convert_url(project, export["id"]), {"export_type": "JSON"}, format="json")
    assert again.status_code == 400
    assert again.json()["validation_errors"] == {"non_field_errors": ["Conversion to JSON already started"]}


def test_a_failed_conversion_may_be_converted_again(
    api_client, project, export, django_capture_on_commit_callbacks, monkeypatch
):
    """The failed row is reused (FAILED → CREATED): same id, reason cleared, one entry per format."""
    from exports.converters import passthrough

    def broken(source, out, context):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(passthrough, "convert_json", broken)
    failed = convert(api_client, project, export["id"], django_capture_on_commit_callbacks, {"export_type": "JSON"})
    converted = ConvertedFormat.objects.get()
    assert converted.status == Status.FAILED
    assert converted.traceback == "Conversion to JSON failed: RuntimeError: disk on fire"
    monkeypatch.undo()

    retried = convert(api_client, project, export["id"], django_capture_on_commit_callbacks, {"export_type": "JSON"})
    assert retried.status_code == 200
    assert retried.json() == failed.json()
    converted.refresh_from_db()
    assert converted.status == Status.COMPLETED
    assert converted.traceback is None
    assert ConvertedFormat.objects.count() == 1


def test_retrying_removes_a_failed_rows_file(api_client, project, export, django_capture_on_commit_callbacks):
    """A failed row never keeps a file, but one left behind (e.g. by hand) goes when the row is reused."""
    with storage.scratch_file() as scratch:
        scratch.write(b"stale")
        name = storage.store(f"{project.pk}/stale.csv", scratch)
    ConvertedFormat.objects.create(export_id=export["id"], export_type="JSON", status=Status.FAILED, file=name)
    response = convert(api_client, project, export["id"], django_capture_on_commit_callbacks, {"export_type": "JSON"})
    assert response.status_code == 200
    assert not storage.export_storage().exists(name)
    assert ConvertedFormat.objects.get().file != name


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"export_type": "FOO"}, {"export_type": [f"FOO is not supported export format. Valid: {VALID_TYPES}"]}),
        ({"export_type": "csv"}, {"export_type": [f"csv is not supported export format. Valid: {VALID_TYPES}"]}),
        ({}, {"export_type": ["This field is required."]}),
        ({"export_type": ""}, {"export_type": ["This field may not be blank."]}),
        ({"export_type": "JSON", "download_resources": "maybe"}, {"download_resources": ["Must be a valid boolean."]}),
    ],
)
def test_invalid_input_is_a_400_naming_the_field(
    api_client, project, export, django_capture_on_commit_callbacks, body, errors
):
    response = convert(api_client, project, export["id"], django_capture_on_commit_callbacks, body)
    assert response.status_code == 400
    payload = response.json()
    assert payload["detail"] == "Validation error"
    assert payload["validation_errors"] == errors
    assert not ConvertedFormat.objects.exists()


def test_a_format_the_config_cannot_produce_is_a_400(api_client, project, export, django_capture_on_commit_callbacks):
    """Label Studio accepts CONLL2003 for an image project (and fails later); it is refused here."""
    response = convert(
        api_client, project, export["id"], django_capture_on_commit_callbacks, {"export_type": "CONLL2003"}
    )
    assert response.status_code == 400
    [message] = response.json()["validation_errors"]["export_type"]
    assert message.startswith("CONLL2003 is not supported for this project's labeling config. Enabled: JSON, JSON_MIN")
    assert not ConvertedFormat.objects.exists()


@pytest.mark.parametrize("snapshot_status", [Status.CREATED, Status.IN_PROGRESS, Status.FAILED])
def test_a_snapshot_that_is_not_completed_cannot_be_converted(
    api_client, project, user, django_capture_on_commit_callbacks, snapshot_status
):
    """Label Studio answers 500 and leaves an in-progress conversion that blocks every retry (recordings
    108-110); here it is a 400 and nothing is created."""
    export = Export.objects.create(project=project, created_by=user, status=snapshot_status)
    response = convert(api_client, project, export.pk, django_capture_on_commit_callbacks, {"export_type": "JSON"})
    assert response.status_code == 400
    assert response.json()["validation_errors"] == {
        "non_field_errors": [
            f"Export is not completed (status: {snapshot_status}); convert it once its status is completed."
        ]
    }
    assert not ConvertedFormat.objects.exists()


def test_other_organization_gets_404_and_changes_nothing(
    other_client, project, export, django_capture_on_commit_callbacks
):
    response = convert(other_client, project, export["id"], django_capture_on_commit_callbacks, {"export_type": "JSON"})
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert not ConvertedFormat.objects.exists()


def test_unknown_export_and_export_of_another_project_are_404(
    api_client, user, project, export, django_capture_on_commit_callbacks
):
    other = make_project(user=user, title="Other")
    for url in (convert_url(project, 99999999), convert_url(other, export["id"])):
        with django_capture_on_commit_callbacks(execute=True):
            response = api_client.post(url, {"export_type": "JSON"}, format="json")
        assert response.status_code == 404
        assert response.json()["status_code"] == 404
    assert not ConvertedFormat.objects.exists()


def test_only_post_is_allowed(api_client, project, export):
    response = api_client.get(convert_url(project, export["id"]))
    assert response.status_code == 405


def test_convert_takes_a_fixed_number_of_queries(
    api_client, project, export, django_capture_on_commit_callbacks, django_assert_num_queries
):
    """Token with its user, the snapshot with its project and creator, its converted formats, and the insert
    inside a savepoint (the job itself runs after the response)."""
    for export_type in ("JSON", "CSV"):
        with django_capture_on_commit_callbacks(execute=False), django_assert_num_queries(6):
            response = api_client.post(convert_url(project, export["id"]), {"export_type": export_type}, format="json")
        assert response.status_code == 200


def test_deleting_the_snapshot_removes_converted_files(api_client, project, export, django_capture_on_commit_callbacks):
    convert(api_client, project, export["id"], django_capture_on_commit_callbacks, {"export_type": "JSON"})
    name = ConvertedFormat.objects.get().file
    assert storage.export_storage().exists(name)
    with django_capture_on_commit_callbacks(execute=True):
        assert api_client.delete(detail_url(project, export["id"])).status_code == 204
    assert not storage.export_storage().exists(name)
    assert not ConvertedFormat.objects.exists()


# --- download of converted formats -----------------------------------------------------------------------------


def test_download_before_converting_is_a_404_json(api_client, project, export):
    """Label Studio converts on the fly here (recording 77); the contract asks for a 404 until converted."""
    response = api_client.get(download_url(project, export["id"]) + "?exportType=CSV")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"] == "CSV format is not converted yet: convert the snapshot to it first."


def test_download_while_converting_is_a_404(api_client, project, export, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        api_client.post(convert_url(project, export["id"]), {"export_type": "JSON_MIN"}, format="json")
    response = api_client.get(download_url(project, export["id"]) + "?exportType=JSON_MIN")
    assert response.status_code == 404
    assert "not completed yet (status: created)" in response.json()["detail"]


def test_download_of_a_failed_conversion_gives_its_reason(api_client, project, export):
    ConvertedFormat.objects.create(
        export_id=export["id"], export_type="CSV", status=Status.FAILED, traceback="Task 3: bad region"
    )
    response = api_client.get(download_url(project, export["id"]) + "?exportType=CSV")
    assert response.status_code == 404
    assert response.json()["detail"] == "Conversion to CSV failed: Task 3: bad region"


@pytest.mark.parametrize("export_type", ["FOO", "csv", "json", "Json_Min"])
def test_download_of_an_unknown_type_is_a_400_naming_the_valid_ones(api_client, project, export, export_type):
    """Label Studio answers 500 (recordings 98-99)."""
    response = api_client.get(download_url(project, export["id"]) + f"?exportType={export_type}")
    assert response.status_code == 400
    assert response.json()["validation_errors"] == {
        "exportType": [f"{export_type} is not supported export format. Valid: {VALID_TYPES}"]
    }


def test_converted_json_downloads_with_the_snapshots_name(
    api_client, project, export, django_capture_on_commit_callbacks
):
    convert(api_client, project, export["id"], django_capture_on_commit_callbacks, {"export_type": "JSON"})
    snapshot = snapshot_bytes(api_client, project, export["id"])
    response = api_client.get(download_url(project, export["id"]) + "?exportType=JSON")
    assert body_of(response) == snapshot  # exportType=JSON is always the snapshot itself
    name = Export.objects.get(pk=export["id"]).download_name("json")
    assert response["Content-Disposition"] == f'attachment; filename="{name}"'


def test_csv_end_to_end_equals_the_sdks_conversion(
    api_client, project, export, django_capture_on_commit_callbacks, tmp_path
):
    """Snapshot → convert CSV → download: what label-studio-sdk's converter makes of the same snapshot file."""
    needs_converter("CSV")
    response = convert(api_client, project, export["id"], django_capture_on_commit_callbacks, {"export_type": "CSV"})
    assert response.status_code == 200
    converted = ConvertedFormat.objects.get(pk=response.json()["converted_format"])
    assert converted.status == Status.COMPLETED, converted.traceback

    download = api_client.get(download_url(project, export["id"]) + "?exportType=CSV")
    assert download.status_code == 200
    content = body_of(download)
    snapshot = Export.objects.get(pk=export["id"])
    assert download["Content-Type"] == "text/csv"
    assert download["Content-Length"] == str(len(content))
    name = snapshot.download_name("csv")
    assert name.endswith(f"-{snapshot.md5[:8]}.csv")
    assert download["Content-Disposition"] == f'attachment; filename="{name}"'
    assert download["filename"] == name

    expected = sdk_convert(snapshot_bytes(api_client, project, export["id"]), project.label_config, "CSV", tmp_path)
    assert csv_rows(content) == csv_rows(expected)
    assert len(csv_rows(content)[1]) == 4
    assert content == expected  # byte for byte: quoting, column order, line ends


def test_converted_download_honours_range_and_head(api_client, project, export, django_capture_on_commit_callbacks):
    needs_converter("CSV")
    convert(api_client, project, export["id"], django_capture_on_commit_callbacks, {"export_type": "CSV"})
    url = download_url(project, export["id"]) + "?exportType=CSV"
    whole = body_of(api_client.get(url))
    part = api_client.get(url, HTTP_RANGE="bytes=0-9")
    assert part.status_code == 206
    assert body_of(part) == whole[:10]
    assert part["Content-Range"] == f"bytes 0-9/{len(whole)}"
    tail = api_client.get(url, HTTP_RANGE="bytes=-5")
    assert body_of(tail) == whole[-5:]
    head = api_client.head(url)
    assert head.status_code == 200
    assert head["Content-Length"] == str(len(whole))
    assert api_client.get(url, HTTP_RANGE=f"bytes={len(whole) + 5}-").status_code == 416


def test_json_min_end_to_end_equals_the_sdks_conversion(
    api_client, project, export, django_capture_on_commit_callbacks, tmp_path
):
    needs_converter("JSON_MIN")
    convert(api_client, project, export["id"], django_capture_on_commit_callbacks, {"export_type": "JSON_MIN"})
    converted = ConvertedFormat.objects.get()
    assert converted.status == Status.COMPLETED, converted.traceback
    download = api_client.get(download_url(project, export["id"]) + "?exportType=JSON_MIN")
    assert download.status_code == 200
    assert download["Content-Type"] == "application/json"
    expected = sdk_convert(
        snapshot_bytes(api_client, project, export["id"]), project.label_config, "JSON_MIN", tmp_path
    )
    assert json.loads(body_of(download)) == json.loads(expected)


def test_convert_of_an_empty_snapshot(api_client, user, django_capture_on_commit_callbacks):
    """Recording 102: an empty project's snapshot converts (to an empty table)."""
    needs_converter("CSV")
    project = make_project(user=user, title="Anchor B")
    export = create_export(api_client, project, django_capture_on_commit_callbacks)
    response = convert(api_client, project, export["id"], django_capture_on_commit_callbacks, {"export_type": "CSV"})
    assert response.status_code == 200
    assert ConvertedFormat.objects.get().status == Status.COMPLETED
    assert api_client.get(download_url(project, export["id"]) + "?exportType=CSV").status_code == 200


def test_two_formats_of_one_snapshot_are_kept_apart(api_client, project, export, django_capture_on_commit_callbacks):
    needs_converter("CSV")
    needs_converter("TSV")
    for export_type in ("CSV", "TSV", "JSON"):
        convert(api_client, project, export["id"], django_capture_on_commit_callbacks, {"export_type": export_type})
    rows = ConvertedFormat.objects.order_by("id")
    assert [(cf.export_type, cf.status) for cf in rows] == [(t, Status.COMPLETED) for t in ("CSV", "TSV", "JSON")]
    assert len({cf.file for cf in rows}) == 3
    csv_body = body_of(api_client.get(download_url(project, export["id"]) + "?exportType=CSV"))
    tsv = api_client.get(download_url(project, export["id"]) + "?exportType=TSV")
    assert tsv["Content-Type"] == "text/tab-separated-values"
    assert tsv["filename"].endswith(".tsv")
    assert csv_rows(body_of(tsv), "\t") == csv_rows(csv_body)


# --- easy export of converted formats --------------------------------------------------------------------------


def easy_url(project, query: str) -> str:
    return reverse("project-export", kwargs={"pk": project.pk}) + "?" + query


def scratch_entries(settings) -> list[Path]:
    folder = Path(settings.DATA_DIR) / "tmp"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_easy_csv_equals_the_sdks_conversion_of_the_easy_json(api_client, project, settings, tmp_path):
    needs_converter("CSV")
    response = api_client.get(easy_url(project, "exportType=CSV"))
    assert response.status_code == 200
    content = body_of(response)
    assert response["Content-Type"] == "text/csv"
    assert response["Content-Length"] == str(len(content))
    name = response["filename"]
    assert name.startswith(f"project-{project.pk}-at-")
    assert name.endswith(".csv")
    assert response["Content-Disposition"] == f'attachment; filename="{name}"'
    easy_json = body_of(api_client.get(easy_url(project, "exportType=JSON")))
    expected = sdk_convert(easy_json, project.label_config, "CSV", tmp_path)
    assert csv_rows(content) == csv_rows(expected)
    assert content == expected
    response.close()
    assert scratch_entries(settings) == []


def test_easy_export_tags_the_name_with_the_md5_of_the_tasks(api_client, project):
    needs_converter("CSV")
    first = api_client.get(easy_url(project, "exportType=CSV"))
    second = api_client.get(easy_url(project, "exportType=CSV"))
    assert first["filename"][-12:] == second["filename"][-12:]  # same tasks, same tag
    assert body_of(first) == body_of(second)


def test_easy_export_filters_apply_before_converting(api_client, project):
    needs_converter("CSV")
    ids = sorted(project.tasks.values_list("id", flat=True))
    response = api_client.get(easy_url(project, f"exportType=CSV&ids={ids[0]},{ids[2]}"))
    _header, rows = csv_rows(body_of(response))
    assert len(rows) == 2


def test_easy_export_head_builds_nothing(api_client, project, settings, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):
        response = api_client.head(easy_url(project, "exportType=TSV"))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/tab-separated-values"
    assert response["filename"].endswith(".tsv")
    assert scratch_entries(settings) == []


def test_easy_export_of_a_disabled_format_is_a_400(api_client, project):
    response = api_client.get(easy_url(project, "exportType=ASR_MANIFEST"))
    assert response.status_code == 400
    [message] = response.json()["validation_errors"]["exportType"]
    assert message.startswith("ASR_MANIFEST is not supported for this project's labeling config. Enabled: JSON,")


def test_easy_export_failure_is_a_400_with_the_reason_and_leaves_no_scratch(api_client, project, settings, monkeypatch):
    from exports.converters import passthrough
    from exports.converters.registry import ConversionError

    needs_converter("CSV")
    fmt = get_format("CSV")
    module = __import__(fmt.converter.partition(":")[0], fromlist=["_"])

    def broken(source, out, context):
        out.write(b"half")
        raise ConversionError("Task 7, annotation 9: a region without a value")

    monkeypatch.setattr(module, fmt.converter.partition(":")[2], broken)
    response = api_client.get(easy_url(project, "exportType=CSV"))
    assert response.status_code == 400
    assert response.json()["detail"] == "Conversion to CSV failed: Task 7, annotation 9: a region without a value"
    assert scratch_entries(settings) == []
    assert passthrough  # the JSON formats are untouched
    assert api_client.get(easy_url(project, "exportType=JSON")).status_code == 200


def test_md5_of_the_snapshot_is_unchanged_by_conversions(
    api_client, project, export, django_capture_on_commit_callbacks
):
    before = snapshot_bytes(api_client, project, export["id"])
    convert(api_client, project, export["id"], django_capture_on_commit_callbacks, {"export_type": "JSON"})
    after = snapshot_bytes(api_client, project, export["id"])
    assert before == after
    assert hashlib.md5(after).hexdigest() == Export.objects.get(pk=export["id"]).md5


# --- limits and tenancy -----------------------------------------------------------------------------------------

BRUSH_CONFIG = """<View><Image name="image" value="$image"/>
<BrushLabels name="brush" toName="image"><Label value="Cat"/></BrushLabels></View>"""
MB = 1024 * 1024


@pytest.mark.parametrize("export_type", ["BRUSH_TO_COCO", "BRUSH_TO_PNG", "BRUSH_TO_NUMPY"])
def test_a_brush_mask_above_the_limit_fails_the_conversion_in_bounded_memory(
    api_client, user, settings, export_type, django_capture_on_commit_callbacks
):
    """An 8192 x 8192 mask (a 14 KB RLE) with EXPORT_MAX_MASK_PIXELS at one million: the conversion fails naming
    the task and annotation, without the 64 MB the mask (and four times that to trace it) would take."""
    settings.EXPORT_MAX_MASK_PIXELS = 1_000_000
    project = make_project(user=user, title="Huge mask", label_config=BRUSH_CONFIG)
    region = {
        "from_name": "brush",
        "to_name": "image",
        "type": "brushlabels",
        "original_width": 8192,
        "original_height": 8192,
        "value": {"format": "rle", "rle": uniform_rle(pixels=8192 * 8192, value=255), "brushlabels": ["Cat"]},
    }
    payload = [{"data": {"image": "https://example.com/huge.png"}, "annotations": [{"result": [region]}]}]
    tasks_import(project=project, user=user, payload=payload)
    annotation = Annotation.objects.get(task__project=project)
    export = create_export(api_client, project, django_capture_on_commit_callbacks)
    tracemalloc.start()
    try:
        response = convert(
            api_client, project, export["id"], django_capture_on_commit_callbacks, {"export_type": export_type}
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert response.status_code == 200
    reason = (
        f"task {annotation.task_id}, annotation {annotation.pk}: "
        "brush mask of 8192×8192 pixels exceeds EXPORT_MAX_MASK_PIXELS (1000000)"
    )
    [converted] = api_client.get(detail_url(project, export["id"])).json()["converted_formats"]
    assert converted == {"id": converted["id"], "status": "failed", "export_type": export_type, "traceback": reason}
    assert peak < 16 * MB


def test_with_images_packs_uploads_of_its_own_organization_only(
    api_client, user, other_user, settings, django_capture_on_commit_callbacks
):
    """Uploads of any project of the exporting organization are packed; another organization's upload is listed
    as not included, through a conversion and through the easy export alike."""
    project = make_project(user=user, title="Ours")
    sibling = make_project(user=user, title="Ours too")
    theirs = make_project(user=other_user, title="Theirs")
    uploads = Path(settings.DATA_DIR) / "media" / "upload"
    files = {project.pk: "own.png", sibling.pk: "sibling.png", theirs.pk: "secret.png"}
    for project_id, name in files.items():
        (uploads / str(project_id)).mkdir(parents=True)
        (uploads / str(project_id) / name).write_bytes(name.encode())
    urls = [f"/data/upload/{project_id}/{name}" for project_id, name in files.items()]
    payload = [{"data": {"image": url}, "annotations": [{"result": [rectangle()]}]} for url in urls]
    tasks_import(project=project, user=user, payload=payload)
    foreign_task = project.tasks.get(data__image=urls[2]).pk
    export = create_export(api_client, project, django_capture_on_commit_callbacks)
    body = {"export_type": "COCO_WITH_IMAGES"}
    assert convert(api_client, project, export["id"], django_capture_on_commit_callbacks, body).status_code == 200
    converted = api_client.get(download_url(project, export["id"]) + "?exportType=COCO_WITH_IMAGES")
    easy = api_client.get(easy_url(project, "exportType=COCO_WITH_IMAGES"))
    for response in (converted, easy):
        assert response.status_code == 200
        with zipfile.ZipFile(io.BytesIO(body_of(response))) as archive:
            assert archive.read("images/own.png") == b"own.png"
            assert archive.read("images/sibling.png") == b"sibling.png"
            assert not any(b"secret" in archive.read(name) for name in archive.namelist() if name.startswith("images/"))
            assert json.loads(archive.read("images_not_included.json")) == [
                {"task_id": foreign_task, "url": urls[2], "file": "images/secret.png", "reason": FOREIGN_FILE}
            ]


def test_the_organizations_projects_are_found_in_one_query(user, other_user, django_assert_num_queries):
    """What a conversion checks every packed upload against: found once, whatever the number of files."""
    ours, sibling = make_project(user=user, title="Ours"), make_project(user=user, title="Ours too")
    make_project(user=other_user, title="Theirs")
    with django_assert_num_queries(1):
        assert organization_project_ids(project_id=ours.pk) == {ours.pk, sibling.pk}


@pytest.mark.django_db(transaction=True)
def test_conversions_inside_requests_wait_for_a_slot_then_answer_503(user, settings, monkeypatch):
    """With one slot, held by a request whose conversion is running, a second request waits
    EXPORT_INLINE_WAIT_SECONDS and gets a JSON 503 with Retry-After; once the first ends the slot is free again."""
    settings.EXPORT_INLINE_CONVERSIONS = 1
    settings.EXPORT_INLINE_WAIT_SECONDS = 0.3
    project = make_project(user=user, title="Gate")
    fill_project(project, user=user, count=2)
    module_name, _, function = get_format("CSV").converter.partition(":")
    module = importlib.import_module(module_name)
    original = getattr(module, function)
    entered, release = threading.Event(), threading.Event()

    def first_one_holds_on(source, out, context):
        if not entered.is_set():
            entered.set()
            release.wait(10)
        original(source, out, context)

    monkeypatch.setattr(module, function, first_one_holds_on)
    first: dict = {}

    def first_request() -> None:
        try:
            response = client_for(user).get(easy_url(project, "exportType=CSV"))
            first["status"] = response.status_code
            response.close()
        finally:
            connection.close()

    thread = threading.Thread(target=first_request)
    thread.start()
    try:
        assert entered.wait(10)
        started = time.monotonic()
        second = client_for(user).get(easy_url(project, "exportType=CSV"))
        waited = time.monotonic() - started
    finally:
        release.set()
        thread.join(20)
    assert second.status_code == 503
    assert second["Content-Type"] == "application/json"
    assert second["Retry-After"] == "1"
    body = second.json()
    assert set(body) == {"id", "status_code", "version", "detail", "exc_info"}
    assert body["status_code"] == 503
    assert body["detail"].startswith("No slot for exports converted during a request (1 per process) freed within 0.3")
    assert waited >= 0.3
    assert first["status"] == 200
    again = client_for(user).get(easy_url(project, "exportType=CSV"))
    assert again.status_code == 200
    again.close()
