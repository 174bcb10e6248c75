"""Import read as it goes: raw JSON, JSON Lines, CSV and TSV bodies, readers that give the same tasks and errors
whatever the size of the pieces they read, batches that are all or nothing together, and bounded memory."""

import csv
import io
import json
import re
import tracemalloc

import orjson
import pytest
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIRequestFactory

from projects import uploads
from projects.models import Annotation, FileUpload, Prediction, Task
from projects.views import ProjectImportAPI
from tests.factories import make_project, task_payload


@pytest.fixture
def project(user):
    return make_project(user=user)


def import_url(project, query: str = "") -> str:
    return reverse("project-import", kwargs={"pk": project.pk}) + query


def errors(response) -> list[str]:
    return response.json()["validation_errors"]["non_field_errors"]


# Raw bodies -----------------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-ndjson", '{"image": "a.jpg"}\n\n{"data": {"image": "b.jpg", "n": 2}}\n'),
        ("application/jsonl", '{"image": "a.jpg"}\r\n{"data": {"image": "b.jpg", "n": 2}}'),
        ("text/csv", "image,n\na.jpg,\nb.jpg,2\n"),
        ("text/csv; charset=utf-8", "image;n\r\na.jpg;\r\nb.jpg;2\r\n"),
        ("text/tab-separated-values", "\ufeffimage\tn\na.jpg\t\nb.jpg\t2\n"),
        ("application/json", '\ufeff[{"image": "a.jpg"}, {"data": {"image": "b.jpg", "n": 2}}]'),
    ],
)
def test_raw_bodies_of_each_format_become_tasks(api_client, project, content_type, body):
    response = api_client.post(import_url(project, "?return_task_ids=true"), body.encode(), content_type=content_type)
    assert response.status_code == 201, response.json()
    tasks = list(project.tasks.order_by("id"))
    assert [task.data["image"] for task in tasks] == ["a.jpg", "b.jpg"]
    assert str(tasks[1].data["n"]) == "2"
    answer = response.json()
    assert answer["task_ids"] == [task.pk for task in tasks]
    # A body is not a file: the file-only fields answer as for a JSON body (Label Studio's contract).
    assert (answer["task_count"], answer["found_formats"], answer["data_columns"]) == (2, [], [])
    assert answer["could_be_tasks_list"] is False
    assert FileUpload.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content_type", "body", "detail"),
    [
        (
            "application/json",
            '[{"image": "a.jpg"},\n {"image": }]',
            "JSON parse error - invalid JSON at line 2 column 12: Expecting value",
        ),
        ("application/json", '[{"image": "a"}] []', "JSON parse error - invalid JSON at line 1 column 18: Extra data"),
        ("application/json", '[{"image": NaN}]', "JSON parse error - invalid JSON at line 1 column 12: NaN is not"),
        ("application/json", '[{"image": "a", "n": 1e999}]', "JSON parse error - invalid JSON at line 1 column 22"),
        ("application/json", b'[{"image": "\xff"}]', "JSON parse error - not UTF-8 text (invalid byte at position 12)"),
        ("application/x-ndjson", '{"image": "a"}\n{"image": \n', "JSON parse error - line 2: invalid JSON at column"),
        ("text/csv", "image,text\na.jpg,ok\nb.jpg,too,many\n", "CSV parse error - row 3: 3 values but 2 columns"),
        ("text/tab-separated-values", "image\timage\na\tb\n", 'TSV parse error - row 1: column "image" appears twice'),
        ("text/csv", 'image\n"a.jpg\n', "CSV parse error - row 2: unexpected end of data"),
    ],
)
def test_unreadable_bodies_are_a_400_naming_where(api_client, project, content_type, body, detail):
    raw = body.encode() if isinstance(body, str) else body
    response = api_client.post(import_url(project), raw, content_type=content_type)
    assert response.status_code == 400, response.json()
    assert response.json()["detail"].startswith(detail)
    assert Task.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("application/x-ndjson", '{"image": "a"}\n\n[1]\n', "Error at line 3: a task must be a JSON object, got array"),
        ("text/csv", "image\na.jpg\n", None),
        ("text/csv", "text\nno image\n", 'Error at row 2: "image" key is expected in task data'),
        ("text/csv", "image\n", "load_tasks: No tasks added"),
        ("application/x-ndjson", "\n\n", "load_tasks: No tasks added"),
    ],
)
def test_task_problems_in_raw_bodies_name_the_line_or_row(api_client, project, content_type, body, message):
    response = api_client.post(import_url(project), body.encode(), content_type=content_type)
    if message is None:
        assert response.status_code == 201
        return
    assert response.status_code == 400
    assert errors(response) == [message]
    assert Task.objects.count() == 0


@pytest.mark.django_db
def test_an_unreadable_body_is_reported_before_an_earlier_task_problem(api_client, project):
    """As when the whole body was parsed before any task was checked: the rest is still read after a bad task."""
    body = b'[{"text": "no image"}, {"image": "a.jpg"}, {"image": '
    response = api_client.post(import_url(project), body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error - invalid JSON at line 1 column")


@pytest.mark.django_db
def test_an_unreadable_file_is_reported_before_a_task_problem_in_an_earlier_one(api_client, project):
    files = [
        SimpleUploadedFile("first.json", b'[{"text": "no image"}]'),
        SimpleUploadedFile("second.jsonl", b'{"image": "a.jpg"}\n{"image": \n'),
    ]
    response = api_client.post(import_url(project), {"file": files}, format="multipart")
    assert response.status_code == 400
    assert errors(response)[0].startswith("second.jsonl line 2: invalid JSON at column")
    assert Task.objects.count() == FileUpload.objects.count() == 0


@pytest.mark.django_db
def test_a_body_that_is_not_json_at_all_is_a_400(api_client, project):
    response = api_client.post(import_url(project), b"   ", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"] == "JSON parse error - invalid JSON at line 1 column 4: Expecting value"


# Batches ----------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_batches_continue_ids_and_counters(api_client, project, monkeypatch):
    monkeypatch.setattr("projects.imports.BATCH_TASKS", 7)
    api_client.post(import_url(project), [{"image": "first.jpg"}], format="json")
    payload = [task_payload(i, cancelled=i % 3 == 0) for i in range(30)]
    response = api_client.post(import_url(project, "?return_task_ids=true"), payload, format="json")
    assert response.status_code == 201, response.json()
    answer = response.json()
    assert (answer["task_count"], answer["annotation_count"], answer["prediction_count"]) == (30, 30, 30)
    tasks = list(Task.objects.filter(pk__in=answer["task_ids"]).order_by("id"))
    assert [task.pk for task in tasks] == answer["task_ids"]
    assert [task.inner_id for task in tasks] == list(range(2, 32))
    assert [task.data["image"] for task in tasks] == [item["data"]["image"] for item in payload]
    assert [task.cancelled_annotations for task in tasks] == [int(i % 3 == 0) for i in range(30)]
    assert Annotation.objects.filter(task__in=tasks).count() == Prediction.objects.filter(task__in=tasks).count() == 30


@pytest.mark.django_db
@pytest.mark.parametrize("limit", [{"BATCH_TASKS": 4}, {"BATCH_BYTES": 1}])
def test_a_problem_in_the_last_batch_leaves_nothing_of_the_earlier_ones(api_client, project, monkeypatch, limit):
    for name, value in limit.items():
        monkeypatch.setattr(f"projects.imports.{name}", value)
    payload = [task_payload(i) for i in range(21)] + [{"text": "no image"}]
    response = api_client.post(import_url(project), payload, format="json")
    assert response.status_code == 400
    assert errors(response) == ['Error at item 21: "image" key is expected in task data']
    assert Task.objects.count() == Annotation.objects.count() == Prediction.objects.count() == 0


@pytest.mark.django_db
def test_files_spanning_batches_keep_their_file_names(api_client, project, monkeypatch):
    monkeypatch.setattr("projects.imports.BATCH_TASKS", 3)
    files = [
        SimpleUploadedFile("a.csv", ("image\n" + "".join(f"a{i}.jpg\n" for i in range(5))).encode()),
        SimpleUploadedFile("b.jsonl", "".join(f'{{"image": "b{i}.jpg"}}\n' for i in range(4)).encode()),
    ]
    response = api_client.post(import_url(project), {"file": files}, format="multipart")
    assert response.status_code == 201, response.json()
    first, second = FileUpload.objects.order_by("id")
    names = [task.file_upload for task in project.tasks.order_by("id")]
    assert names == [first.file_name] * 5 + [second.file_name] * 4
    assert response.json()["data_columns"] == ["image"]


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("later", "message"),
    [
        ({"image": "fine"}, "The tasks could not be stored: "),
        ({"text": "no image"}, 'Error at item 5: "image" key is expected in task data'),
    ],
)
def test_a_value_the_database_refuses_is_reported_after_the_checks(api_client, project, monkeypatch, later, message):
    """The database refuses the first batch; the rest is still checked, and a task that fails its checks is what
    the answer names, as when every task was checked before the first was written."""
    monkeypatch.setattr("projects.imports.NUL_ESCAPE", re.compile(r"(?!)"))  # let "\u0000" reach the database
    monkeypatch.setattr("projects.imports.BATCH_TASKS", 2)
    payload = [{"image": "a\u0000b"}] + [{"image": f"{i}.jpg"} for i in range(4)] + [later]
    response = api_client.post(import_url(project), payload, format="json")
    assert response.status_code == 400
    assert errors(response)[0].startswith(message)
    assert Task.objects.count() == 0


# Readers ----------------------------------------------------------------------------------------------------------


def read_json(raw: bytes, chunk: int, monkeypatch) -> list:
    monkeypatch.setattr(uploads, "CHUNK_BYTES", chunk)
    try:
        return [item for _, item in uploads._json_items(uploads.byte_chunks(io.BytesIO(raw)))]
    except uploads.Unreadable as exc:
        return [f"Unreadable: {exc.problem}"]


JSON_DOCUMENTS = [
    b'[{"image": "a.jpg", "n": 12345678901, "f": -1.5e-3, "t": true, "z": null}, {"x": [1, [2, {}]]}]',
    b'  \n[ 1 ,\r\n 22 , 333 ,\t4444 , "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80" , "\\u00e9\\"\\\\" ]\n ',
    b'\xef\xbb\xbf{"data": {"image": "one"}}',
    b"[]",
    b'"just a string"',
    b"[12345678901234567890123, 0.1, 1E+2]",
    b'[{"long": "' + b"x" * 50 + b'"}, 7]',
    b'[{"e123": "1e999", "n": 1.5e300, "m": 1' + b"0" * 250 + b'.5, "o": 2E-400}]',
]


@pytest.mark.parametrize("raw", JSON_DOCUMENTS)
def test_json_reader_gives_what_orjson_parses_at_any_piece_size(raw, monkeypatch):
    parsed = json.loads(raw.removeprefix(uploads.BOM))
    expected = parsed if isinstance(parsed, list) else [parsed]
    for chunk in (1, 2, 3, 5, 8, 64, 1 << 20):
        assert read_json(raw, chunk, monkeypatch) == expected, chunk


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'[{"a": 1},\n {"b": }]', "invalid JSON at line 2 column 8: Expecting value"),
        (b'[{"a": 1} {"b": 2}]', "invalid JSON at line 1 column 11: Expecting ',' delimiter"),
        (b"[1, 2", "invalid JSON at line 1 column 6: Expecting ',' delimiter"),
        (b"[1,]", "invalid JSON at line 1 column 4: Expecting value"),
        (b'[\n\n "abc', "invalid JSON at line 3 column 2: Unterminated string starting at"),
        (b'[{"a": "\xc3\xa9\n", "b": 1}]', "invalid JSON at line 1 column 10: Invalid control character at"),
        (b"[1] 2", "invalid JSON at line 1 column 5: Extra data"),
        (b"", "invalid JSON at line 1 column 1: Expecting value"),
        (b"[-Infinity]", "invalid JSON at line 1 column 2: -Infinity is not a JSON value"),
        (b"[2e308]", "invalid JSON at line 1 column 2: number 2e308 is too large"),
        (b'[{"a": [0, 1' + b"0" * 250 + b".5E+99]}]", "invalid JSON at line 1 column 12: number 1000"),
        (b'[{"e123": "1e999"}, -5' + b"0" * 309 + b".0]", "invalid JSON at line 1 column 21: number -5000"),
        (b"[" * 5000 + b"]" * 5000, "the value nests too deeply"),
        (b'["ok", "\xe9t\xe9"]', "not UTF-8 text (invalid byte at position 8)"),
    ],
)
def test_json_reader_errors_are_the_same_at_any_piece_size(raw, problem, monkeypatch):
    for chunk in (1, 2, 3, 7, 1 << 20):
        (error,) = [item for item in read_json(raw, chunk, monkeypatch) if isinstance(item, str)]
        assert problem in error, chunk


def test_json_reader_with_orjsons_line_and_column(monkeypatch):
    raw = b'[{"image": "a.jpg"},\n  {"image": "b.jpg"},\n {"image": }]'
    with pytest.raises(orjson.JSONDecodeError) as parsed:
        orjson.loads(raw)
    for chunk in (1, 4, 1 << 20):
        (error,) = read_json(raw, chunk, monkeypatch)
        assert f"line {parsed.value.lineno} column {parsed.value.colno}:" in error


TABLES = [
    'image,text\r\na.jpg,"one, two\nthree ""four"""\r\n\r\nb.jpg,\r\n',
    'image;n\na.jpg;1,5\r\nb;"x\ry"\n',
    "image,n\rb.jpg,2\rc.jpg,3",
    "image,label\nx.jpg,\u00fc\u20ac\U0001f600\n",
]


@pytest.mark.parametrize("text", TABLES)
def test_table_reader_gives_what_csv_reads_at_any_piece_size(text, monkeypatch):
    delimiter = ";" if text.partition("\n")[0].count(";") > text.partition("\n")[0].count(",") else ","
    rows = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True) if row]
    expected = [dict(zip(rows[0], row + [""] * (len(rows[0]) - len(row)), strict=True)) for row in rows[1:]]
    for chunk in (1, 2, 3, 5, 1 << 20):
        monkeypatch.setattr(uploads, "CHUNK_BYTES", chunk)
        items = uploads._table_items(uploads.byte_chunks(io.BytesIO(text.encode())), delimiter=",")
        assert [item["data"] for _, item in items] == expected, chunk


@pytest.mark.parametrize("chunk", [1, 2, 5, 1 << 20])
def test_json_lines_reader_at_any_piece_size(chunk, monkeypatch):
    monkeypatch.setattr(uploads, "CHUNK_BYTES", chunk)
    raw = b'{"a": 1}\r\n\n  \n{"b": "\xc3\xa9"}\n{"c": [1, 2]}'
    items = list(uploads._json_line_items(uploads.byte_chunks(io.BytesIO(raw))))
    assert items == [(1, {"a": 1}), (4, {"b": "\u00e9"}), (5, {"c": [1, 2]})]


def test_a_body_longer_than_the_limit_stops_while_it_is_read(monkeypatch):
    """A body is counted as it is read too, not only by its Content-Length."""
    monkeypatch.setattr(uploads, "CHUNK_BYTES", 10)
    chunks = uploads.byte_chunks(io.BytesIO(b"[" + b"1," * 50 + b"1]"), limit=60)
    with pytest.raises(RequestDataTooBig):
        list(chunks)


# Memory -----------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_memory_of_an_import_stays_far_below_the_size_of_its_body(user, settings, monkeypatch):
    """20,000 tasks (a 20 MB body) go through the view with Python's allocations traced: the peak stays under a
    third of the body, where parsing the whole body at once takes several times the body. Smaller pieces and
    batches than the defaults keep the figures small and the test quick; the benchmark measures the defaults
    (bench/import_memory.py)."""
    monkeypatch.setattr("projects.uploads.CHUNK_BYTES", 256 * 1024)
    monkeypatch.setattr("projects.imports.BATCH_TASKS", 500)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024**3
    project = make_project(user=user)
    body = orjson.dumps([task_payload(i) for i in range(20_000)])
    token, _ = Token.objects.get_or_create(user=user)
    request = APIRequestFactory().post(  # the request holds the body before tracing starts, as a server's socket
        import_url(project), body, content_type="application/json", HTTP_AUTHORIZATION=f"Token {token.key}"
    )
    view = ProjectImportAPI.as_view()
    tracemalloc.start()
    try:
        response = view(request, pk=project.pk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 201, response.data
    assert project.tasks.count() == 20_000
    assert peak < len(body) / 3, f"peak {peak / 1e6:.1f} MB for a {len(body) / 1e6:.1f} MB body"
