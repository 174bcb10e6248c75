"""Where export files live: Django's `exports` storage, a local folder under DATA_DIR by default or an
S3-compatible bucket (django-storages) when configured. Scratch files are always local (DATA_DIR/tmp):
a file is written there completely, then stored under its final name in one step.

Local storage is used through plain paths (a hard link moves a finished file in without copying); an S3
bucket through boto3 directly where django-storages would buffer (multipart upload from the file on
disk, ranged GETs that stream), so no export file is ever held in memory whole.
"""

import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO, cast

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.utils.http import content_disposition_header

from exports.exceptions import ExportStorageError

logger = logging.getLogger(__name__)

NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound"}
KEEP_ALIVE_SECONDS = 1.0
CHUNK = 256 * 1024  # bytes read at a time


def export_storage():
    return storages["exports"]


def is_local(storage=None) -> bool:
    """Whether files of the storage have paths on this machine (FileSystemStorage and the like)."""
    storage = storage or export_storage()
    try:
        storage.path("probe")
    except NotImplementedError:
        return False
    return True


def _is_s3(storage) -> bool:
    return hasattr(storage, "bucket") and hasattr(storage, "connection")


def _s3_key(storage, name: str) -> str:
    """The object key of `name` (django-storages' own normalization: the configured prefix, no `..`)."""
    from storages.utils import clean_name

    return storage._normalize_name(clean_name(name))


def _is_missing(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError

    if isinstance(exc, FileNotFoundError):
        return True
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        return str(error.get("Code", "")) in NOT_FOUND_CODES or status == "404"
    return False


def _storage_errors() -> tuple[type[BaseException], ...]:
    """What the storage raises when it cannot do its job: OS errors, and boto's when django-storages is used."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover - botocore is a dependency
        return (OSError,)
    return (OSError, BotoCoreError, ClientError)


def scratch_folder() -> Path:
    folder = Path(settings.DATA_DIR) / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def scratch_file() -> BinaryIO:
    """A temporary file on the same disk as the data, removed when closed."""
    # A binary file in every way; typeshed only types the wrapper as IO[bytes].
    return cast(BinaryIO, tempfile.NamedTemporaryFile(dir=scratch_folder(), prefix="export-", suffix=".partial"))


def remove_abandoned_scratch(*, older_than: float) -> int:
    """Delete scratch files nobody has written to for `older_than` seconds (left by a killed process)."""
    removed = 0
    deadline = time.time() - older_than
    for path in scratch_folder().glob("export-*.partial"):
        try:
            if path.stat().st_mtime < deadline:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def _partial_path(target: Path) -> Path:
    """A name beside `target` for its file while written, private to this writer: two runs storing the same name
    at once (a part sent twice) never write into, or move away, each other's partial file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.with_name(f"{target.name}.{uuid.uuid4().hex[:12]}.partial")


def _store_local(storage, name: str, scratch) -> str:
    target = Path(storage.path(name))
    partial = _partial_path(target)
    try:
        try:
            os.link(scratch.name, partial)  # same disk: no copy
        except OSError:
            shutil.copyfile(scratch.name, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return name


def _store_s3(storage, name: str, scratch) -> str:
    """Upload from the file on disk: boto3 switches to a multipart upload above the transfer config's threshold,
    reading each part from disk as it is sent, and aborts the upload (leaving no object) if a part fails."""
    import mimetypes

    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    extra = {**storage.get_object_parameters(name), "ContentType": content_type}
    storage.bucket.Object(_s3_key(storage, name)).upload_file(
        scratch.name, ExtraArgs=extra, Config=storage.transfer_config
    )
    return name


def _store_remote(storage, name: str, scratch) -> str:
    if _is_s3(storage):
        return _store_s3(storage, name, scratch)
    if storage.exists(name):
        storage.delete(name)
    scratch.seek(0)
    return storage.save(name, File(scratch))


def store(name: str, scratch, *, keep_alive: Callable[[], object] | None = None) -> str:
    """Put a finished scratch file at `name` (replacing any earlier one); returns the stored name.

    An upload runs in a helper thread while this one calls `keep_alive()` every KEEP_ALIVE_SECONDS (a job
    renews its lease there, as a large upload can outlast it; the result is ignored and it must not raise).
    Raises ExportStorageError when the storage cannot take the file; nothing is left under `name` then.
    """
    storage = export_storage()
    scratch.flush()
    try:
        if is_local(storage):
            return _store_local(storage, name, scratch)
        if keep_alive is None:
            return _store_remote(storage, name, scratch)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-upload") as uploader:
            upload = uploader.submit(_store_remote, storage, name, scratch)
            while True:
                try:
                    return upload.result(timeout=KEEP_ALIVE_SECONDS)
                except FutureTimeout:
                    keep_alive()
    except _storage_errors() as exc:
        raise ExportStorageError(f"Could not store {name} in the export storage: {exc}") from exc


def put_bytes(name: str, data: bytes) -> None:
    """A small file written whole at `name`, replacing any earlier one (markers of parallel snapshots)."""
    storage = export_storage()
    try:
        if is_local(storage):
            target = Path(storage.path(name))
            partial = _partial_path(target)
            try:
                partial.write_bytes(data)
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
            return
        if storage.exists(name):
            storage.delete(name)
        storage.save(name, ContentFile(data))
    except _storage_errors() as exc:
        raise ExportStorageError(f"Could not write {name} to the export storage: {exc}") from exc


def remove(name: str) -> None:
    """Delete a stored file if it is there. A storage that cannot be reached is logged, not raised: removal runs
    in cleanup paths (after a failure, after a deletion committed) where an error would hide the real outcome."""
    if not name:
        return
    storage = export_storage()
    try:
        if storage.exists(name):
            storage.delete(name)
    except _storage_errors():
        logger.exception("Could not remove %s from the export storage", name)


def list_files(folder: str) -> list[str]:
    """Names (relative to `folder`) of the files directly in it; [] when it does not exist."""
    storage = export_storage()
    try:
        return sorted(storage.listdir(folder)[1])
    except FileNotFoundError:
        return []


def list_folders(folder: str) -> list[str]:
    storage = export_storage()
    try:
        return sorted(storage.listdir(folder)[0])
    except FileNotFoundError:
        return []


def remove_folder(folder: str) -> None:
    """Delete the files directly in `folder`, then the folder itself where folders exist (local storage)."""
    storage = export_storage()
    try:
        for name in list_files(folder):
            storage.delete(f"{folder}/{name}")
    except _storage_errors():
        logger.exception("Could not remove %s from the export storage", folder)
        return
    if is_local(storage):
        with suppress(OSError):  # gone already, or a file arrived meanwhile (its writer removes it)
            Path(storage.path(folder)).rmdir()


def size(name: str) -> int:
    """The stored file's size in bytes; FileNotFoundError when it is not there, ExportStorageError when the
    storage cannot be reached."""
    storage = export_storage()
    try:
        return storage.size(name)
    except _storage_errors() as exc:
        if _is_missing(exc):
            raise FileNotFoundError(name) from exc
        raise ExportStorageError(f"Could not read {name} from the export storage: {exc}") from exc


def read_chunks(name: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
    """The bytes of a stored file from `start` (`length` of them, or to the end), a chunk at a time.

    From S3 this is one ranged GET streamed as it arrives; elsewhere the file is opened and read.
    """
    storage = export_storage()
    if length == 0:
        return
    if _is_s3(storage):
        ranged = f"bytes={start}-{start + length - 1}" if length is not None else f"bytes={start}-"
        try:
            body = storage.bucket.Object(_s3_key(storage, name)).get(Range=ranged)["Body"]
        except _storage_errors() as exc:
            if _is_missing(exc):
                raise FileNotFoundError(name) from exc
            raise
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()
        return
    with storage.open(name, "rb") as handle:
        handle.seek(start)
        remaining = length
        while remaining is None or remaining > 0:
            chunk = handle.read(CHUNK if remaining is None else min(CHUNK, remaining))
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk


@contextmanager
def local_copy(name: str) -> Iterator[Path]:
    """A path on this machine holding the stored file `name`, for readers that need a real file (converters).

    The storage's own file when it is local (do not modify it), else a scratch download removed on exit.
    FileNotFoundError when the file is not stored.
    """
    storage = export_storage()
    if is_local(storage):
        path = Path(storage.path(name))
        if not path.is_file():
            raise FileNotFoundError(name)
        yield path
        return
    with scratch_file() as copy:
        try:
            if _is_s3(storage):
                storage.bucket.Object(_s3_key(storage, name)).download_fileobj(copy, Config=storage.transfer_config)
            else:
                for chunk in read_chunks(name):
                    copy.write(chunk)
        except _storage_errors() as exc:
            if _is_missing(exc):
                raise FileNotFoundError(name) from exc
            raise
        copy.flush()
        yield Path(copy.name)


def presigned_url(name: str, *, filename: str, content_type: str) -> str | None:
    """A short-lived URL (EXPORT_URL_EXPIRES seconds) that downloads the file straight from the object storage
    under `filename`; None when the storage has no such URLs (local files)."""
    storage = export_storage()
    if not _is_s3(storage):
        return None
    parameters = {
        "ResponseContentDisposition": content_disposition_header(as_attachment=True, filename=filename),
        "ResponseContentType": content_type,
    }
    try:
        return storage.url(name, parameters=parameters, expire=settings.EXPORT_URL_EXPIRES)
    except _storage_errors() as exc:
        raise ExportStorageError(f"Could not sign a URL for {name}: {exc}") from exc
