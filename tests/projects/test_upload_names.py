"""Uploads whose names are longer than a file system allows are stored under a shortened name."""

import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from projects.models import FileUpload, Task
from tests.factories import make_project

pytestmark = pytest.mark.django_db

CSV = "image\nhttps://example.com/1.jpg\nhttps://example.com/2.jpg\n"
LIMIT = 200  # `projects.uploads.MAX_STORED_NAME_BYTES`


@pytest.fixture
def project(user):
    return make_project(user=user)


def post_file(client, project, name: str):
    upload = SimpleUploadedFile(name, CSV.encode(), "text/csv")
    return client.post(reverse("project-import", kwargs={"pk": project.pk}), {"file": [upload]}, format="multipart")


@pytest.mark.parametrize(
    "name",
    [
        "a" * 247 + ".csv",  # ASCII, 251 bytes
        "é" * 125 + ".csv",  # 254 bytes in UTF-8
        "😀" * 60 + ".csv",  # 244 bytes, 64 characters
        "x" + "日" * 83 + ".csv",  # 254 bytes, the 3-byte characters straddle the cut
        "😀" * 62 + ".csv",  # 252 bytes (the storage drops the emoji, but the name is shortened first)
    ],
)
def test_an_over_long_name_is_imported_and_stored_shortened(api_client, project, settings, name):
    response = post_file(api_client, project, name)

    assert response.status_code == 201, response.content
    assert response.json()["task_count"] == 2
    stored = FileUpload.objects.get()
    base = os.path.basename(stored.file.name)
    assert len(base.encode()) <= LIMIT + 9  # "<8 hex>-" from `upload_path`
    assert base.endswith(".csv")
    assert (settings.DATA_DIR / "uploads" / stored.file.name).read_text() == CSV
    assert {task.file_upload for task in Task.objects.filter(project=project)} == {base}


def test_two_long_names_with_the_same_start_stay_apart(api_client, project):
    first, second = "b" * 240 + "-1.json", "b" * 240 + "-2.json"
    for name in (first, second, first):
        upload = SimpleUploadedFile(name, b'[{"image": "https://example.com/1.jpg"}]', "application/json")
        response = api_client.post(
            reverse("project-import", kwargs={"pk": project.pk}), {"file": [upload]}, format="multipart"
        )
        assert response.status_code == 201, response.content
    stored = [os.path.basename(upload.file.name) for upload in FileUpload.objects.order_by("pk")]
    assert len(set(stored)) == 3
    assert all(name.endswith(".json") for name in stored)


@pytest.mark.parametrize("name", ["tasks.csv", "é" * 97 + ".csv", "a" * 196 + ".csv"])
def test_a_name_that_fits_is_kept(name):
    from projects.uploads import MAX_STORED_NAME_BYTES, storable_name

    assert MAX_STORED_NAME_BYTES == LIMIT
    assert len(name.encode()) <= MAX_STORED_NAME_BYTES
    assert storable_name(name) == name


@pytest.mark.parametrize("name", ["a" * 300 + ".csv", "é" * 200 + ".tsv", "😀" * 100 + ".jsonl", "ü" * 255])
def test_storable_name_fits_and_keeps_the_extension(name):
    from projects.uploads import MAX_STORED_NAME_BYTES, storable_name

    short = storable_name(name)
    assert short != storable_name(name[:-5] + "z" + name[-4:])  # names that differ late stay apart
    assert len(short.encode()) <= MAX_STORED_NAME_BYTES
    assert os.path.splitext(short)[1] == os.path.splitext(name)[1]
    assert short.encode().decode() == short  # no character was cut in half
