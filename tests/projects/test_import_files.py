import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from projects.models import Annotation, FileUpload, Prediction, Task
from tests.exports.helpers import create_export, download_url
from tests.factories import make_project, task_payload

pytestmark = pytest.mark.django_db

TEXT_CONFIG = '<View><Text name="text" value="$text"/></View>'


@pytest.fixture
def project(user):
    return make_project(user=user)


def import_url(project, query: str = "") -> str:
    return reverse("project-import", kwargs={"pk": project.pk}) + query


def upload(name: str, content: str | bytes, content_type: str = "application/octet-stream") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content.encode() if isinstance(content, str) else content, content_type)


def post_files(client, project, *files, query: str = "", field: str = "file"):
    """Each file under `field`, the way Label Studio's frontend and SDK send them."""
    return client.post(import_url(project, query), {field: list(files)}, format="multipart")


def tasks_in_order(project) -> list[Task]:
    return list(project.tasks.order_by("id"))


def uploads_dir(settings):
    return settings.DATA_DIR / "uploads"


def test_csv_upload_answers_like_label_studio_and_keeps_the_file(api_client, project, user, settings):
    content = "image,quality\nhttps://example.com/img/6.jpg,Good\nhttps://example.com/img/7.jpg,Bad\n"
    response = post_files(api_client, project, upload("tasks.csv", content, "text/csv"))

    assert response.status_code == 201, response.json()
    body = response.json()
    stored = FileUpload.objects.get()
    assert body["file_upload_ids"] == [stored.pk]
    assert {key: body[key] for key in ("task_count", "annotation_count", "prediction_count", "predictions_count")} == {
        "task_count": 2,
        "annotation_count": 0,
        "prediction_count": 0,
        "predictions_count": 0,
    }
    assert body["could_be_tasks_list"] is True
    assert body["found_formats"] == {".csv": 1}
    assert body["data_columns"] == ["image", "quality"]
    assert [task.data for task in tasks_in_order(project)] == [
        {"image": "https://example.com/img/6.jpg", "quality": "Good"},
        {"image": "https://example.com/img/7.jpg", "quality": "Bad"},
    ]
    assert (stored.project, stored.user, stored.original_name) == (project, user, "tasks.csv")
    assert stored.file_name.endswith("-tasks.csv")
    assert {task.file_upload for task in tasks_in_order(project)} == {stored.file_name}
    path = uploads_dir(settings) / stored.file.name
    assert path.read_text() == content
    assert path.parent == uploads_dir(settings) / str(project.pk)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("tasks.csv", "image,n\na.jpg,1\nb.jpg,2\n", [{"image": "a.jpg", "n": "1"}, {"image": "b.jpg", "n": "2"}]),
        ("tasks.tsv", "image\tn\na.jpg\t1\n", [{"image": "a.jpg", "n": "1"}]),
        ("tasks.csv", "image;n\na.jpg;1,5\n", [{"image": "a.jpg", "n": "1,5"}]),
        (
            "quoted.csv",
            'image,text\r\na.jpg,"one, two\nthree ""four"""\r\n\r\nb.jpg,\r\n',
            [{"image": "a.jpg", "text": 'one, two\nthree "four"'}, {"image": "b.jpg", "text": ""}],
        ),
        ("short.csv", "image,text\na.jpg\n", [{"image": "a.jpg", "text": ""}]),
        (
            "tasks.json",
            '[{"image": "a.jpg"}, {"data": {"image": "b.jpg", "n": 2}}]',
            [{"image": "a.jpg"}, {"image": "b.jpg", "n": 2}],
        ),
        ("one.json", '{"data": {"image": "a.jpg"}}', [{"image": "a.jpg"}]),
        (
            "tasks.jsonl",
            '{"image": "a.jpg"}\n\n{"data": {"image": "b.jpg"}}\r\n',
            [{"image": "a.jpg"}, {"image": "b.jpg"}],
        ),
        ("UPPER.JSON", '[{"image": "é.jpg"}]', [{"image": "é.jpg"}]),
    ],
)
def test_each_format_becomes_tasks(api_client, project, name, content, expected):
    response = post_files(api_client, project, upload(name, content))
    assert response.status_code == 201, response.json()
    assert [task.data for task in tasks_in_order(project)] == expected
    body = response.json()
    assert body["task_count"] == len(expected)
    assert body["found_formats"] == {"." + name.rsplit(".", 1)[1].lower(): 1}
    assert body["could_be_tasks_list"] is name.endswith((".csv", ".tsv"))
    assert body["data_columns"] == sorted({key for data in expected for key in data})


@pytest.mark.parametrize("name", ["tasks.csv", "tasks.tsv", "tasks.json", "tasks.jsonl"])
def test_utf8_with_byte_order_mark(api_client, project, name):
    content = {
        "tasks.csv": "image,label\nx.jpg,ü\n",
        "tasks.tsv": "image\tlabel\nx.jpg\tü\n",
        "tasks.json": '[{"image": "x.jpg", "label": "ü"}]',
        "tasks.jsonl": '{"image": "x.jpg", "label": "ü"}\n',
    }[name]
    response = post_files(api_client, project, upload(name, b"\xef\xbb\xbf" + content.encode()))
    assert response.status_code == 201, response.json()
    assert Task.objects.get().data == {"image": "x.jpg", "label": "ü"}


def test_json_file_with_annotations_and_predictions_counts_and_exports_its_file_name(
    api_client, project, django_capture_on_commit_callbacks
):
    tasks = [task_payload(0), task_payload(1, cancelled=True), {"data": {"image": "plain.jpg"}}]
    response = post_files(api_client, project, upload("labeled.json", json.dumps(tasks)))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["task_count"], body["annotation_count"], body["prediction_count"]) == (3, 2, 2)
    assert body["could_be_tasks_list"] is False
    first, second, third = tasks_in_order(project)
    assert (first.total_annotations, first.cancelled_annotations, first.total_predictions, first.is_labeled) == (
        1,
        0,
        1,
        True,
    )
    # a skipped annotation finishes an imported task, as in Label Studio (tests/projects/test_finished_rule.py)
    assert (second.total_annotations, second.cancelled_annotations, second.is_labeled) == (0, 1, True)
    assert (third.total_annotations, third.total_predictions) == (0, 0)
    assert Annotation.objects.get(task=first).result == tasks[0]["annotations"][0]["result"]
    assert Prediction.objects.filter(project=project).count() == 2

    export = create_export(api_client, project, django_capture_on_commit_callbacks)
    response = api_client.get(download_url(project, export["id"]))
    exported = json.loads(b"".join(response.streaming_content) if response.streaming else response.content)
    stored = FileUpload.objects.get()
    assert [task["file_upload"] for task in exported] == [stored.file_name] * 3
    assert [task["data"] for task in exported] == [task["data"] for task in tasks]
    assert exported[0]["annotations"][0]["result"] == tasks[0]["annotations"][0]["result"]
    assert exported[0]["predictions"] == [Prediction.objects.get(task=first).pk]  # ids, as Label Studio


def test_several_files_at_once_keep_their_order(api_client, project):
    files = [
        upload("a.csv", "image\na1.jpg\na2.jpg\n"),
        upload("b.json", '[{"image": "b1.jpg", "extra": "x"}]'),
        upload("c.csv", "image\nc1.jpg\n"),
    ]
    response = post_files(api_client, project, *files, query="?return_task_ids=true")
    assert response.status_code == 201, response.json()
    body = response.json()
    tasks = tasks_in_order(project)
    assert body["task_ids"] == [task.pk for task in tasks]
    assert [task.data["image"] for task in tasks] == ["a1.jpg", "a2.jpg", "b1.jpg", "c1.jpg"]
    assert body["found_formats"] == {".csv": 2, ".json": 1}
    assert body["data_columns"] == ["extra", "image"]
    stored = list(FileUpload.objects.order_by("id"))
    assert body["file_upload_ids"] == [upload.pk for upload in stored]
    assert [upload.original_name for upload in stored] == ["a.csv", "b.json", "c.csv"]
    assert [task.file_upload for task in tasks] == [stored[0].file_name] * 2 + [
        stored[1].file_name,
        stored[2].file_name,
    ]
    assert [task.inner_id for task in tasks] == [1, 2, 3, 4]


def test_files_under_any_field_names(api_client, project):
    data = {"first": upload("a.csv", "image\na.jpg\n"), "second": upload("b.jsonl", '{"image": "b.jpg"}\n')}
    response = api_client.post(import_url(project), data, format="multipart")
    assert response.status_code == 201, response.json()
    assert sorted(task.data["image"] for task in tasks_in_order(project)) == ["a.jpg", "b.jpg"]


def test_uploads_continue_inner_ids_after_earlier_imports(api_client, project):
    api_client.post(import_url(project), [{"image": "first.jpg"}], format="json")
    post_files(api_client, project, upload("more.csv", "image\na.jpg\nb.jpg\n"))
    assert [task.inner_id for task in tasks_in_order(project)] == [1, 2, 3]


def test_a_bad_row_in_the_second_file_writes_nothing(api_client, project, settings):
    files = [upload("good.csv", "image\na.jpg\nb.jpg\n"), upload("bad.csv", "image,text\nc.jpg,ok\nd.jpg,too,many\n")]
    response = post_files(api_client, project, *files)
    assert response.status_code == 400
    assert response.json()["validation_errors"]["non_field_errors"] == ["bad.csv row 3: 3 values but 2 columns"]
    assert Task.objects.count() == 0
    assert FileUpload.objects.count() == 0
    assert not uploads_dir(settings).exists() or not any(uploads_dir(settings).rglob("*.csv"))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.txt", "hello", "notes.txt: unsupported file type .txt"),
        ("README", "hello", "README: unsupported file type (no extension)"),
        ("tasks.json", '[{"image": "a.jpg"},\n {"image": }]', "tasks.json: invalid JSON at line 2 column"),
        ("tasks.json", '[{"image": "a.jpg"}, 7]', "tasks.json item 1: a task must be a JSON object, got number"),
        ("tasks.json", '[{"text": "no image"}]', 'tasks.json item 0: "image" key is expected in task data'),
        ("tasks.jsonl", '{"image": "a.jpg"}\n\n{"image": "b.jpg"\n', "tasks.jsonl line 3: invalid JSON at column"),
        ("tasks.jsonl", '{"image": "a.jpg"}\n[1, 2]\n', "tasks.jsonl line 2: a task must be a JSON object, got array"),
        ("tasks.csv", "image\na.jpg\n\n\n", None),
        ("tasks.csv", "text\nno image here\n", 'tasks.csv row 2: "image" key is expected in task data'),
        ("tasks.csv", "image,image\na,b\n", 'tasks.csv row 1: column "image" appears twice in the header'),
        ("tasks.csv", "image,\na,b\n", "tasks.csv row 1: column 2 of the header has no name"),
        ("tasks.csv", 'image\n"a.jpg\n', "tasks.csv row 2: unexpected end of data"),
        ("tasks.tsv", "image\tn\na\tb\tc\n", "tasks.tsv row 2: 3 values but 2 columns"),
        ("latin1.csv", "image\nd\xe9j\xe0.jpg\n".encode("latin-1"), "latin1.csv: not UTF-8 text"),
        ("empty.csv", "", "load_tasks: No tasks added"),
        ("header-only.csv", "image\n", "load_tasks: No tasks added"),
        (
            "tasks.json",
            '[{"data": {"image": "a"}, "annotations": [{"result": [], "lead_time": "slow"}]}]',
            "tasks.json item 0: annotations: lead_time must be a number, got 'slow'",
        ),
    ],
)
def test_problems_are_a_400_naming_the_file_and_row(api_client, project, name, content, message):
    response = post_files(api_client, project, upload(name, content))
    if message is None:  # blank lines are not rows with problems
        assert response.status_code == 201, response.json()
        return
    assert response.status_code == 400, response.json()
    assert response.json()["validation_errors"]["non_field_errors"][0].startswith(message)
    assert Task.objects.count() == FileUpload.objects.count() == 0


def test_an_unsupported_file_rejects_the_upload_before_anything_is_read(api_client, project):
    files = [upload("good.csv", "image\na.jpg\n"), upload("photo.png", b"\x89PNG")]
    response = post_files(api_client, project, *files)
    assert response.status_code == 400
    assert "photo.png" in response.json()["validation_errors"]["non_field_errors"][0]
    assert Task.objects.count() == FileUpload.objects.count() == 0


def test_multipart_without_files_is_a_400(api_client, project):
    response = api_client.post(import_url(project), {"note": "no file"}, format="multipart")
    assert response.status_code == 400
    assert response.json()["validation_errors"]["non_field_errors"] == ["load_tasks: No data found in DATA or in FILES"]


def test_upload_over_the_size_limit_is_a_json_413(api_client, project, settings):
    """Django's own limit skips file contents; the import applies it to the whole multipart body, also to files
    big enough to be spooled to disk."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024
    content = "image\n" + "".join(f"https://example.com/{i}.jpg\n" for i in range(400))
    response = post_files(api_client, project, upload("big.csv", content))
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["status_code"] == 413
    assert "4096" in body["detail"]
    assert Task.objects.count() == FileUpload.objects.count() == 0


def test_upload_under_the_limit_spooled_to_disk_is_imported(api_client, project, settings):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024
    content = "image\n" + "".join(f"https://example.com/{i}.jpg\n" for i in range(400))
    response = post_files(api_client, project, upload("big.csv", content))
    assert response.status_code == 201, response.json()
    assert Task.objects.count() == 400


def test_upload_to_another_organizations_project_is_a_404(other_client, project):
    response = post_files(other_client, project, upload("tasks.csv", "image\na.jpg\n"))
    assert response.status_code == 404
    assert Task.objects.count() == FileUpload.objects.count() == 0


def test_data_columns_of_a_text_project(api_client, user):
    project = make_project(user=user, label_config=TEXT_CONFIG)
    response = post_files(api_client, project, upload("texts.tsv", "text\tsource\nhello\tweb\n"))
    assert response.status_code == 201, response.json()
    assert response.json()["data_columns"] == ["source", "text"]


def test_deleting_the_project_removes_its_uploaded_files(
    api_client, project, settings, django_capture_on_commit_callbacks
):
    post_files(api_client, project, upload("tasks.csv", "image\na.jpg\n"))
    path = uploads_dir(settings) / FileUpload.objects.get().file.name
    assert path.exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.delete(reverse("project-detail", kwargs={"pk": project.pk}))
    assert response.status_code == 204
    assert not path.exists()
    assert FileUpload.objects.count() == 0


@pytest.mark.postgres
def test_a_value_postgresql_refuses_is_a_400_and_leaves_no_file(api_client, project, settings, monkeypatch):
    monkeypatch.setattr("projects.imports.NUL_ESCAPE", re.compile(r"(?!)"))  # let "\u0000" reach the database
    response = post_files(api_client, project, upload("nul.json", '[{"image": "a\\u0000b"}]'))
    assert response.status_code == 400
    assert response.json()["validation_errors"]["non_field_errors"][0].startswith("The tasks could not be stored: ")
    assert Task.objects.count() == FileUpload.objects.count() == 0
    assert not any(uploads_dir(settings).rglob("*.json"))
