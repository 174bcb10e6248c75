"""Export files in an S3-compatible bucket: a real S3 server (moto's, in a thread on a free port) behind the
`exports` storage configured the way the environment configures it (config/settings.py)."""

import hashlib
import socket
import time
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
from boto3.s3.transfer import TransferConfig

from config.settings import s3_export_storage
from exports import jobs, storage
from exports.files import index_file_name
from exports.models import Export, Status
from tests.exports.helpers import create_export, detail_url, download_url
from tests.factories import fill_project, make_project

pytestmark = pytest.mark.django_db

KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_S3_REGION_NAME": "us-east-1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    yield f"http://127.0.0.1:{server._port}"
    server.stop()


def use_s3(settings, monkeypatch, endpoint: str, bucket: str, **env: str) -> None:
    """Point the `exports` storage at `bucket` through the same environment variables a deployment sets."""
    for name, value in {
        **KEYS,
        "AWS_STORAGE_BUCKET_NAME": bucket,
        "AWS_S3_ENDPOINT_URL": endpoint,
        "AWS_S3_ADDRESSING_STYLE": "path",
        "AWS_S3_MAX_ATTEMPTS": "2",
        "AWS_S3_CONNECT_TIMEOUT": "2",
        **env,
    }.items():
        monkeypatch.setenv(name, value)
    settings.STORAGES = {**settings.STORAGES, "exports": s3_export_storage()}


@pytest.fixture
def bucket(settings, monkeypatch, s3_endpoint):
    name = f"exports-{uuid.uuid4().hex[:12]}"
    resource = boto3.resource(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    resource.create_bucket(Bucket=name)
    use_s3(settings, monkeypatch, s3_endpoint, name)
    return resource.Bucket(name)


@pytest.fixture
def project(user):
    project = make_project(user=user, title="Bucket")
    fill_project(project, user=user, count=6)
    return project


def with_index(*names: str) -> list[str]:
    """Snapshot files with the task index stored beside each (exports/increments.py), as `keys` lists them."""
    return sorted(item for name in names for item in (name, index_file_name(name)))


def keys(bucket) -> list[str]:
    return sorted(item.key for item in bucket.objects.all())


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def local_files(settings) -> list[Path]:
    return sorted(path for path in Path(settings.DATA_DIR).rglob("*") if path.is_file() and path.suffix != ".sqlite3")


def completed_export(api_client, project, capture) -> Export:
    created = create_export(api_client, project, capture)
    export = Export.objects.get(pk=created["id"])
    assert export.status == Status.COMPLETED, export.reason
    return export


def test_snapshot_goes_to_the_bucket_and_downloads_with_its_md5(
    api_client, project, bucket, settings, django_capture_on_commit_callbacks
):
    export = completed_export(api_client, project, django_capture_on_commit_callbacks)
    assert keys(bucket) == with_index(export.file)
    stored = bucket.Object(export.file).get()["Body"].read()
    assert hashlib.md5(stored).hexdigest() == export.md5
    assert not any("exports" in path.parts for path in local_files(settings))  # nothing kept locally

    response = api_client.get(download_url(project, export.pk))
    assert response.status_code == 200
    content = body_of(response)
    assert content == stored
    assert response["Content-Length"] == str(len(content))
    assert response["Content-Disposition"] == f'attachment; filename="{export.download_name()}"'
    assert response["filename"] == export.download_name()


def test_ranged_and_head_downloads_read_only_the_bytes_asked_for(
    api_client, project, bucket, django_capture_on_commit_callbacks
):
    export = completed_export(api_client, project, django_capture_on_commit_callbacks)
    whole = bucket.Object(export.file).get()["Body"].read()

    response = api_client.get(download_url(project, export.pk), HTTP_RANGE="bytes=10-109")
    assert response.status_code == 206
    assert body_of(response) == whole[10:110]
    assert response["Content-Range"] == f"bytes 10-109/{len(whole)}"

    response = api_client.get(download_url(project, export.pk), HTTP_RANGE="bytes=-7")
    assert response.status_code == 206
    assert body_of(response) == whole[-7:]

    response = api_client.get(download_url(project, export.pk), HTTP_RANGE=f"bytes={len(whole)}-")
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(whole)}"

    response = api_client.head(download_url(project, export.pk))
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(whole))
    assert body_of(response) == b""


def test_deleting_the_snapshot_deletes_its_object(api_client, project, bucket, django_capture_on_commit_callbacks):
    export = completed_export(api_client, project, django_capture_on_commit_callbacks)
    assert keys(bucket) == with_index(export.file)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.delete(detail_url(project, export.pk))
    assert response.status_code == 204
    assert keys(bucket) == []


def test_a_missing_object_is_a_json_404(api_client, project, bucket, django_capture_on_commit_callbacks):
    export = completed_export(api_client, project, django_capture_on_commit_callbacks)
    bucket.Object(export.file).delete()
    response = api_client.get(download_url(project, export.pk))
    assert response.status_code == 404
    assert response.json()["status_code"] == 404


def test_redirect_mode_answers_with_a_presigned_url_that_names_the_file(
    api_client, project, bucket, settings, django_capture_on_commit_callbacks
):
    export = completed_export(api_client, project, django_capture_on_commit_callbacks)
    settings.EXPORT_DOWNLOAD_REDIRECT = True
    settings.EXPORT_URL_EXPIRES = 120
    response = api_client.get(download_url(project, export.pk))
    assert response.status_code == 302
    url = response["Location"]
    assert "X-Amz-Signature=" in url
    assert "X-Amz-Expires=120" in url
    with urllib.request.urlopen(url, timeout=10) as fetched:  # no credentials: the URL alone grants access
        content = fetched.read()
        disposition = fetched.headers["Content-Disposition"]
    assert hashlib.md5(content).hexdigest() == export.md5
    assert export.download_name() in disposition
    assert disposition.startswith("attachment")
    assert fetched.headers["Content-Type"] == "application/json"


def test_redirect_mode_still_streams_local_files(api_client, project, settings, django_capture_on_commit_callbacks):
    settings.EXPORT_DOWNLOAD_REDIRECT = True
    export = completed_export(api_client, project, django_capture_on_commit_callbacks)
    response = api_client.get(download_url(project, export.pk))
    assert response.status_code == 200
    assert hashlib.md5(body_of(response)).hexdigest() == export.md5


def test_unreachable_storage_fails_the_snapshot_and_leaves_nothing(
    user, project, settings, monkeypatch, s3_endpoint, bucket
):
    use_s3(settings, monkeypatch, f"http://127.0.0.1:{free_port()}", bucket.name)  # nothing listens there
    export = Export.objects.create(project=project, created_by=user)
    jobs.run_export(export.pk)
    export.refresh_from_db()
    assert export.status == Status.FAILED
    assert export.reason.startswith("ExportStorageError: Could not store ")
    assert "Could not connect to the endpoint URL" in export.reason
    assert export.file == ""
    assert export.lease_owner == ""
    assert keys(bucket) == []
    assert local_files(settings) == []  # the scratch file went with the failure


def test_big_files_are_uploaded_in_parts_from_disk(bucket, settings):
    storage.export_storage().transfer_config = TransferConfig(
        multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024
    )
    data = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(400_000))  # 12.8 MB
    with storage.scratch_file() as scratch:
        scratch.write(data)
        assert storage.store("9/export-1-x.json", scratch) == "9/export-1-x.json"
    stored = bucket.Object("9/export-1-x.json")
    assert stored.e_tag.strip('"').endswith("-3")  # a multipart upload of three parts
    assert stored.content_type == "application/json"
    assert b"".join(storage.read_chunks("9/export-1-x.json")) == data
    assert b"".join(storage.read_chunks("9/export-1-x.json", 5, 10)) == data[5:15]


def test_local_copy_is_a_scratch_download_removed_afterwards(bucket, settings):
    bucket.put_object(Key="3/export-7-abc.json", Body=b'[\n{"id": 1}\n]')
    with storage.local_copy("3/export-7-abc.json") as path:
        assert path.read_bytes() == b'[\n{"id": 1}\n]'
        assert path.parent == storage.scratch_folder()
    assert not path.exists()
    with pytest.raises(FileNotFoundError), storage.local_copy("3/missing.json"):
        pass


def test_local_copy_of_a_local_file_is_the_file_itself(user, project, settings):
    export = Export.objects.create(project=project, created_by=user)
    jobs.run_export(export.pk)
    export.refresh_from_db()
    with storage.local_copy(export.file) as path:
        assert path == Path(settings.DATA_DIR) / "exports" / export.file
        assert hashlib.md5(path.read_bytes()).hexdigest() == export.md5
    assert path.exists()


def test_a_split_snapshot_in_the_bucket_is_the_same_file_and_leaves_no_parts(user, project, bucket, settings):
    whole = Export.objects.create(project=project, created_by=user)
    jobs.run_export(whole.pk)
    settings.EXPORT_PARTS = 3
    settings.EXPORT_PARALLEL_MIN_TASKS = 2
    split = Export.objects.create(project=project, created_by=user)
    jobs.run_export(split.pk)
    whole.refresh_from_db()
    split.refresh_from_db()
    assert split.status == Status.COMPLETED, split.reason
    assert (split.md5, split.counters) == (whole.md5, whole.counters)
    assert keys(bucket) == with_index(whole.file, split.file)
    whole_index = bucket.Object(index_file_name(whole.file)).get()["Body"].read()
    assert whole_index
    assert whole_index == bucket.Object(index_file_name(split.file)).get()["Body"].read()


def test_a_long_upload_keeps_the_job_alive(bucket, monkeypatch):
    real = storage._store_remote

    def slow(*args):
        time.sleep(2.5)
        return real(*args)

    monkeypatch.setattr(storage, "_store_remote", slow)
    calls = []
    with storage.scratch_file() as scratch:
        scratch.write(b"[]")
        storage.store("1/export-2-y.json", scratch, keep_alive=lambda: calls.append(time.monotonic()))
    assert len(calls) >= 2  # once per KEEP_ALIVE_SECONDS while the upload ran (2.5 s and more)
    assert keys(bucket) == ["1/export-2-y.json"]


def test_deleting_while_the_bucket_is_unreachable_still_answers_204(
    api_client, project, bucket, settings, monkeypatch, django_capture_on_commit_callbacks
):
    export = completed_export(api_client, project, django_capture_on_commit_callbacks)
    use_s3(settings, monkeypatch, f"http://127.0.0.1:{free_port()}", bucket.name)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.delete(detail_url(project, export.pk))
    assert response.status_code == 204
    assert not Export.objects.filter(pk=export.pk).exists()
    assert keys(bucket) == with_index(export.file)  # left behind, and logged


def test_download_while_the_bucket_is_unreachable_is_a_json_503(
    api_client, project, bucket, settings, monkeypatch, django_capture_on_commit_callbacks
):
    export = completed_export(api_client, project, django_capture_on_commit_callbacks)
    use_s3(settings, monkeypatch, f"http://127.0.0.1:{free_port()}", bucket.name)
    response = api_client.get(download_url(project, export.pk))
    assert response.status_code == 503
    assert response.json()["detail"].startswith("The export storage is unavailable")
