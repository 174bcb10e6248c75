"""JSONL (JSON Lines): the JSON snapshot's tasks one per line, through convert, download and the easy export."""

import io
import json
import tracemalloc

import orjson
import pytest
from django.urls import reverse

from exports import easy
from exports.converters.availability import enabled_format_names
from exports.converters.passthrough import convert_jsonl
from exports.converters.registry import FORMATS
from exports.converters.source import ListSource, SnapshotSource
from exports.jsonarray import LINES, JsonArray
from exports.models import Export
from exports.snapshot import SnapshotWriter
from projects.label_config import parse_label_config
from projects.services import tasks_import
from tests.exports.helpers import create_export, detail_url, download_url
from tests.factories import fill_project, make_project, task_payload

pytestmark = pytest.mark.django_db

MB = 1024 * 1024
CONTENT_TYPE = "application/jsonl"
# Strings a line-based format must keep on one line and in UTF-8.
AWKWARD = {"text": 'line one\nline two\r\n\ttab \u2028 \u2029 é 漢字 😀 "quoted" \\ back', "n": 1.5}


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def lines_of(content: bytes) -> list[dict]:
    """Each line parsed; the file must end with a line break (or be empty) and hold no blank line."""
    if not content:
        return []
    assert content.endswith(b"\n")
    return [json.loads(line) for line in content[:-1].split(b"\n")]


def export_url(project, query: str = "") -> str:
    url = reverse("project-export", kwargs={"pk": project.pk})
    return f"{url}?{query}" if query else url


def convert_url(project, export_id: int) -> str:
    return reverse("project-exports-convert", kwargs={"pk": project.pk, "export_pk": export_id})


@pytest.fixture
def project(user):
    """Annotated, ground-truth, cancelled and bare tasks, and one whose data needs escaping."""
    project = make_project(user=user, title="Lines")
    payload = [
        task_payload(0, annotations=2),
        task_payload(1, ground_truth=True),
        task_payload(2, cancelled=True),
        task_payload(3, annotations=0),
        {"data": {"image": "https://example.com/x.jpg", **AWKWARD}, "meta": {"note": "ü\n"}},
    ]
    tasks_import(project=project, user=user, payload=payload)
    return project


def convert_and_download(client, project, export_id, capture):
    with capture(execute=True):
        response = client.post(convert_url(project, export_id), {"export_type": "JSONL"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["export_type"] == "JSONL"
    return client.get(download_url(project, export_id) + "?exportType=JSONL")


# --- the format and the converter ---------------------------------------------------------------------------------


def test_jsonl_is_a_format_of_every_config():
    [fmt] = [fmt for fmt in FORMATS if fmt.name == "JSONL"]
    assert (fmt.extension, fmt.content_type) == ("jsonl", CONTENT_TYPE)
    assert "JSONL" in enabled_format_names({})
    assert "JSONL" in enabled_format_names(parse_label_config("<View><Text name='t' value='$t'/></View>"))


def test_lines_are_the_snapshot_lines_byte_for_byte(tmp_path, project):
    path = tmp_path / "snapshot.json"
    with path.open("wb") as out:
        SnapshotWriter(project=project, batch_size=2).write(out)
    raw = path.read_bytes()
    out = io.BytesIO()
    convert_jsonl(SnapshotSource(path), out, context=None)
    content = out.getvalue()
    assert lines_of(content) == json.loads(raw)
    task_lines = [line.rstrip(b",") for line in raw.split(b"\n")[1:-1]]
    assert content == b"".join(line + b"\n" for line in task_lines)
    content.decode("utf-8")  # UTF-8 throughout
    assert lines_of(content)[-1]["data"]["text"] == AWKWARD["text"]


@pytest.mark.parametrize(
    "tasks", [[], [{"id": 1, "data": {"text": "a\nb"}}], [{"id": 1, "data": {}}, {"id": 2, "data": AWKWARD}]]
)
def test_a_file_in_another_layout_and_a_list_give_the_same_lines(tmp_path, tasks):
    one_line = tmp_path / "one.json"
    one_line.write_text(json.dumps(tasks))
    indented = tmp_path / "indented.json"
    indented.write_text(json.dumps(tasks, indent=2))
    for source in (SnapshotSource(one_line), SnapshotSource(indented), ListSource(tasks)):
        out = io.BytesIO()
        convert_jsonl(source, out, context=None)
        assert lines_of(out.getvalue()) == tasks
        assert out.getvalue().count(b"\n") == len(tasks)


def test_an_empty_snapshot_is_an_empty_file(tmp_path):
    for text in (b"[]", b"[\n]"):
        path = tmp_path / "empty.json"
        path.write_bytes(text)
        out = io.BytesIO()
        convert_jsonl(SnapshotSource(path), out, context=None)
        assert out.getvalue() == b""


def _lines_file(tasks: list[dict]) -> bytes:
    array = JsonArray(LINES)
    return array.start() + array.add([orjson.dumps(task) for task in tasks]) + array.end()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda raw: raw[: raw.rindex(b"\n")], "line 5 does not close the array after the last task"),  # no `]`
        (lambda raw: raw[: raw.rindex(b",\n") + 2], "the file ends at line 4, before its closing bracket"),
        # cut inside a task, just after a nested object, so the line still ends with `}`
        (lambda raw: raw[: raw.index(b'{"a":1}') + 7], "line 4 does not close the array"),
        (lambda raw: raw.replace(b'{"id":2', b'["id",2', 1), "line 3 is not one task"),
        (lambda raw: raw[: raw.rindex(b"\n")] + b"\n]\n[]", "line 5 does not close the array"),
    ],
)
def test_a_damaged_snapshot_fails_instead_of_losing_tasks(tmp_path, damage, reason):
    raw = _lines_file([{"id": 1}, {"id": 2, "d": {"a": 1}}, {"id": 3}])
    path = tmp_path / "snapshot.json"
    path.write_bytes(damage(raw))
    with pytest.raises(ValueError, match=reason):
        convert_jsonl(SnapshotSource(path), io.BytesIO(), context=None)


def test_a_large_snapshot_is_converted_in_flat_memory(tmp_path):
    """4000 tasks of about 2 KB: the converter holds one line at a time, whatever the file's size."""
    task = {"data": {"text": "x" * 1500, "image": "https://example.com/a.jpg"}, "annotations": [{"result": []}]}
    path = tmp_path / "snapshot.json"
    with path.open("wb") as out:
        array = JsonArray(LINES)
        out.write(array.start())
        for start in range(0, 4000, 500):
            out.write(array.add([orjson.dumps({"id": n, **task}) for n in range(start, start + 500)]))
        out.write(array.end())
    size = path.stat().st_size
    assert size > 6 * MB
    tracemalloc.start()
    try:
        with (tmp_path / "out.jsonl").open("wb") as out:
            convert_jsonl(SnapshotSource(path), out, context=None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < size / 50
    with (tmp_path / "out.jsonl").open("rb") as result:
        assert sum(1 for _line in result) == 4000


# --- convert and download -------------------------------------------------------------------------------------------


def test_convert_and_download(api_client, project, django_capture_on_commit_callbacks):
    export = create_export(
        api_client, project, django_capture_on_commit_callbacks, {"serialization_options": {"drafts": {}}}
    )
    response = convert_and_download(api_client, project, export["id"], django_capture_on_commit_callbacks)
    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPE
    name = Export.objects.get(pk=export["id"]).download_name("jsonl")
    assert name.endswith(".jsonl")
    assert response["Content-Disposition"] == f'attachment; filename="{name}"'
    assert response["filename"] == name
    snapshot = json.loads(body_of(api_client.get(download_url(project, export["id"]))))
    assert lines_of(body_of(response)) == snapshot
    assert len(snapshot) == 5
    [converted] = api_client.get(detail_url(project, export["id"])).json()["converted_formats"]
    assert (converted["export_type"], converted["status"], converted["traceback"]) == ("JSONL", "completed", None)


def test_download_honours_range(api_client, project, django_capture_on_commit_callbacks):
    export = create_export(api_client, project, django_capture_on_commit_callbacks)
    whole = body_of(convert_and_download(api_client, project, export["id"], django_capture_on_commit_callbacks))
    url = download_url(project, export["id"]) + "?exportType=JSONL"
    response = api_client.get(url, HTTP_RANGE="bytes=0-9")
    assert response.status_code == 206
    assert body_of(response) == whole[:10]


def test_download_before_converting_is_a_404(api_client, project, django_capture_on_commit_callbacks):
    export = create_export(api_client, project, django_capture_on_commit_callbacks)
    response = api_client.get(download_url(project, export["id"]) + "?exportType=JSONL")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"


def test_a_filtered_snapshot_converts_its_own_tasks(api_client, project, django_capture_on_commit_callbacks):
    body = {"task_filter_options": {"only_with_annotations": True}}
    export = create_export(api_client, project, django_capture_on_commit_callbacks, body)
    response = convert_and_download(api_client, project, export["id"], django_capture_on_commit_callbacks)
    snapshot = json.loads(body_of(api_client.get(download_url(project, export["id"]))))
    assert len(snapshot) == 3
    assert lines_of(body_of(response)) == snapshot


def test_an_empty_snapshot_converts_to_an_empty_file(api_client, user, django_capture_on_commit_callbacks):
    project = make_project(user=user, title="Empty")
    export = create_export(api_client, project, django_capture_on_commit_callbacks)
    response = convert_and_download(api_client, project, export["id"], django_capture_on_commit_callbacks)
    assert response.status_code == 200
    assert body_of(response) == b""


# --- the easy export ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "download_all_tasks=true"])
def test_easy_export_lines_are_the_easy_json_tasks(api_client, project, query):
    joined = "&".join(part for part in (query, "exportType=JSONL") if part)
    response = api_client.get(export_url(project, joined))
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == CONTENT_TYPE
    assert response["filename"].endswith(".jsonl")
    assert response["Content-Disposition"] == f'attachment; filename="{response["filename"]}"'
    content = body_of(response)
    tasks = json.loads(body_of(api_client.get(export_url(project, query))))
    assert lines_of(content) == tasks
    assert len(tasks) == (5 if query else 3)


def test_easy_export_streams_batch_by_batch_without_a_conversion_slot(api_client, user, monkeypatch):
    """No converter and no slot: every slot busy does not matter; each batch is one chunk of whole lines."""
    monkeypatch.setattr(easy, "BATCH_SIZE", 2)
    monkeypatch.setattr(easy, "easy_export_converted", None)  # the converted path is never taken
    project = make_project(user=user, title="Batches")
    ids = fill_project(project, user=user, count=5)
    response = api_client.get(export_url(project, "exportType=JSONL&download_all_tasks=true"))
    chunks = list(response.streaming_content)
    assert len(chunks) == 4  # three batches, then the last line's break
    assert b"".join(chunks).count(b"\n") == 5
    assert [task["id"] for task in lines_of(b"".join(chunks))] == ids


def test_easy_export_of_a_large_project_streams_in_flat_memory(api_client, user, monkeypatch):
    """4000 tasks of about 3.5 KB (14 MB) in batches of 100: the peak stays at a few batches (about 2.4 MB, the
    same for a quarter of the tasks)."""
    monkeypatch.setattr(easy, "BATCH_SIZE", 100)
    project = make_project(user=user, title="Large")
    payload = [{"data": {"image": f"https://example.com/{n}.jpg", "text": "y" * 3000}} for n in range(4000)]
    tasks_import(project=project, user=user, payload=payload)
    response = api_client.get(export_url(project, "exportType=JSONL&download_all_tasks=true"))
    size, count = 0, 0
    tracemalloc.start()
    try:
        for chunk in response.streaming_content:
            size += len(chunk)
            count += chunk.count(b"\n")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 4000
    assert size > 12 * MB
    assert peak < 4 * MB


def test_easy_export_of_no_tasks_is_an_empty_file(api_client, user):
    project = make_project(user=user, title="Empty")
    response = api_client.get(export_url(project, "exportType=JSONL"))
    assert response.status_code == 200
    assert body_of(response) == b""


def test_easy_export_head_builds_nothing(api_client, project, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):
        response = api_client.head(export_url(project, "exportType=JSONL"))
    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPE
    assert response["filename"].endswith(".jsonl")


# --- errors ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["jsonl", "JSONl", "NDJSON", "JSON_LINES"])
def test_unknown_names_are_400_as_before(api_client, project, name, django_capture_on_commit_callbacks):
    valid = ", ".join(fmt.name for fmt in FORMATS)
    message = f"{name} is not supported export format. Valid: {valid}"
    easy_response = api_client.get(export_url(project, f"exportType={name}"))
    assert easy_response.status_code == 400
    assert easy_response.json()["validation_errors"] == {"exportType": [message]}
    export = create_export(api_client, project, django_capture_on_commit_callbacks)
    download = api_client.get(download_url(project, export["id"]) + f"?exportType={name}")
    assert download.status_code == 400
    assert download.json()["validation_errors"] == {"exportType": [message]}
    with django_capture_on_commit_callbacks(execute=True):
        converted = api_client.post(convert_url(project, export["id"]), {"export_type": name}, format="json")
    assert converted.status_code == 400
    assert list(converted.json()["validation_errors"]) == ["export_type"]
