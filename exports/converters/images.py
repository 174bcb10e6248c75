"""Task files an export packs: where their bytes may come from, and packing images into the archive.

The fetcher serves the *_WITH_IMAGES formats' images, and also ASR_MANIFEST's audio and DOCLANG's page images
when resources are downloaded. A file is fetched only when the service can read it without being turned against
itself or its network:

- a file the service stores itself: `/data/upload/<path>` (read from `DATA_DIR/media/upload/<path>`) or
  `/data/local-files/?d=<path>` (read from `DATA_DIR/media/<path>`), when the real path, links followed, stays
  inside `DATA_DIR/media` and the file belongs to the task's organization (see `_check_owner`);
- an http(s) URL whose host is listed in the `EXPORT_IMAGE_HOSTS` setting, when every address the host resolves
  to is a public one (never private, loopback, link-local, shared, multicast or reserved). The connection goes to
  an address that was checked, so a second DNS answer cannot redirect it; redirects are not followed, and the
  download has a time limit and a size cap.

Anything else (cloud storage URIs, other hosts, failed downloads) is left out; a *_WITH_IMAGES archive lists it
with the reason in `images_not_included.json`.
"""

from __future__ import annotations

import http.client
import io
import os
import posixpath
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from exports.jsonarray import LINES, JsonArray
from exports.outbound import PinnedHTTPConnection, PinnedHTTPSConnection, address_allowed, cut_off, normal_host

__all__ = [
    "DEFAULT_MAX_IMAGE_BYTES",
    "DEFAULT_TIMEOUT_SECONDS",
    "ArchiveImages",
    "ImageFetcher",
    "image_fetcher",
    "image_size",
]

ImageFetcher = Callable[[str], tuple[bytes | None, str]]

DEFAULT_MAX_IMAGE_BYTES = 50 * 1024 * 1024
DEFAULT_TIMEOUT_SECONDS = 15.0
NOT_INCLUDED_FILE = "images_not_included.json"
_USER_AGENT = "ls-export-service image export"
_CLOUD_SCHEMES = ("s3", "gs", "azure-blob")
_REMEMBERED_SIZES = 1024
_UPLOAD_FOLDER = "upload"
FOREIGN_FILE = "the file belongs to another organization"
NO_PROJECT = "the upload path names no project"
LOCAL_FILE_NOT_SHARED = (
    "Local Storage files outside upload/ are not packed: no organization owns them here "
    "(EXPORT_SHARED_LOCAL_FILES is off)"
)


class _Refused(Exception):
    """The image is not fetched; the message is the reason listed in the archive."""


def image_fetcher(
    settings: Any,
    *,
    project_ids: Collection[int],
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
) -> ImageFetcher:
    """A function from an image URL to `(bytes, "")`, or `(None, reason)` when the image is not included.

    `project_ids` are the projects of the exporting project's organization, found by the caller (this layer never
    queries the database): an upload is read only from the folder of one of them. Reads `DATA_DIR`,
    `EXPORT_IMAGE_HOSTS` and `EXPORT_SHARED_LOCAL_FILES` from `settings` once, when called.
    """
    media_root = Path(settings.DATA_DIR) / "media"
    hosts = frozenset(normal_host(host) for host in getattr(settings, "EXPORT_IMAGE_HOSTS", ()) or ())
    owners = frozenset(project_ids)
    shared_local_files = bool(getattr(settings, "EXPORT_SHARED_LOCAL_FILES", False))

    def fetch(url: str) -> tuple[bytes | None, str]:
        try:
            if not isinstance(url, str) or not url:
                raise _Refused("the image URL is empty")
            if "\x00" in url:
                raise _Refused("the URL contains a NUL character")
            stored = stored_file(url, media_root, project_ids=owners, shared_local_files=shared_local_files)
            if stored is not None:
                return _read_stored(stored, max_bytes), ""
            return _download(url, hosts, timeout, max_bytes), ""
        except _Refused as refused:
            return None, str(refused)
        except Exception as exc:  # an unreadable image is listed, never a failed export
            return None, f"could not be read ({exc.__class__.__name__})"

    return fetch


def stored_file(
    url: str, media_root: Path, *, project_ids: frozenset[int], shared_local_files: bool = False
) -> Path | None:
    """The path of a file the service stores for `url`; None when `url` is not such a URL.

    Raises `_Refused` for a stored-file URL that points outside `media_root`, or at a file the organization of
    `project_ids` does not own.
    """
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        return None
    path = parts.path
    if path.startswith("/data/upload/"):
        relative, upload = f"{_UPLOAD_FOLDER}/" + unquote(path[len("/data/upload/") :]), True
    elif path.startswith(("upload/", "/upload/")):
        relative, upload = f"{_UPLOAD_FOLDER}/" + unquote(path.split("upload/", 1)[1]), True
    elif path.rstrip("/") == "/data/local-files":
        values = parse_qs(parts.query, keep_blank_values=True).get("d")
        relative, upload = (values[-1] if values else ""), False
        if not relative:
            raise _Refused("the Local Storage URL names no file (no ?d=)")
    else:
        return None
    real_root, real = _inside(media_root, relative)
    _check_owner(
        named=posixpath.normpath(relative.lstrip("/")),
        real=os.path.relpath(real, real_root).replace(os.sep, "/"),
        upload=upload,
        project_ids=project_ids,
        shared_local_files=shared_local_files,
    )
    return Path(real)


def _inside(root: Path, relative: str) -> tuple[str, str]:
    """(real media root, real path of `relative` in it), links followed; refused when it leads outside."""
    if "\x00" in relative:
        raise _Refused("the path contains a NUL character")
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, relative.lstrip("/")))
    if os.path.commonpath([real_root, real]) != real_root or real == real_root:
        raise _Refused("the path leads outside the service's media folder")
    return real_root, real


# Label Studio keeps an upload at `upload/<project id>/<file>`, so the folder names its owner: a file is read only
# when that project is one of the exporting organization's. Both the path as named (`..` applied) and the real path
# (links followed) are checked, so neither `upload/3/../7/x` nor a link into another project's folder gets through;
# an upload path that names no project (`upload/x.png`, or one that `..` leads out of upload/) has no owner and is
# refused.
#
# Files elsewhere under the media folder are Local Storage files. Label Studio serves those only through a
# project's Local Storage whose path covers the file (and only with LOCAL_FILES_SERVING_ENABLED, off by default);
# this service has no Local Storage records, so nothing says which organization such a file belongs to. The safe
# rule is to refuse them, like Label Studio's default; a single-tenant service whose operator put files there for
# its one organization can treat them as shared with EXPORT_SHARED_LOCAL_FILES=1.
def _check_owner(*, named: str, real: str, upload: bool, project_ids: frozenset[int], shared_local_files: bool) -> None:
    in_uploads = False
    for path in (named, real):
        folders = path.split("/")
        if folders[0].casefold() != _UPLOAD_FOLDER:  # casefold: a case-insensitive file system reads Upload/ too
            continue
        in_uploads = True
        project = folders[1] if len(folders) > 1 else ""
        if not (project.isascii() and project.isdigit() and len(project) <= 18):
            raise _Refused(NO_PROJECT)
        if int(project) not in project_ids:
            raise _Refused(FOREIGN_FILE)
    if upload and named.split("/")[0].casefold() != _UPLOAD_FOLDER:
        raise _Refused(NO_PROJECT)
    if not in_uploads and not shared_local_files:
        raise _Refused(LOCAL_FILE_NOT_SHARED)


def _read_stored(path: Path, max_bytes: int) -> bytes:
    if not path.exists():
        raise _Refused("the stored file does not exist")
    if not path.is_file():  # checked before opening: opening a FIFO or device could block or never end
        raise _Refused("the stored path is not a regular file")
    with path.open("rb") as file:
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise _Refused(f"the file is larger than {max_bytes} bytes")
    return data


def _public_addresses(host: str, port: int) -> list[str]:
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise _Refused(f"the host {host} does not resolve") from None
    addresses = list(dict.fromkeys(str(answer[4][0]) for answer in answers))  # a str already for IP addresses
    if not addresses:
        raise _Refused(f"the host {host} does not resolve")
    for address in addresses:
        if not address_allowed(address):
            raise _Refused(f"the host {host} resolves to a non-public address ({address})")
    return addresses


def _download(url: str, hosts: Iterable[str], timeout: float, max_bytes: int) -> bytes:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in _CLOUD_SCHEMES:
        raise _Refused("cloud storage URLs are not fetched")
    if scheme not in ("http", "https"):
        raise _Refused("not an http(s) URL nor a file stored by the service")
    if parts.username is not None or parts.password is not None:
        raise _Refused("URLs with credentials are not fetched")
    host = normal_host(parts.hostname or "")
    if not host or host not in hosts:
        raise _Refused(f"the host {host or '(none)'} is not listed in EXPORT_IMAGE_HOSTS")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise _Refused("the URL has an invalid port") from None
    address = _public_addresses(host, port)[0]
    connection_class = PinnedHTTPSConnection if scheme == "https" else PinnedHTTPConnection
    connection = connection_class(host, port, address, timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    deadline = time.monotonic() + timeout
    watchdog = None
    try:
        connection.connect()
        # A server that sends a byte now and then never trips the socket timeout: cut it off at the deadline.
        watchdog = threading.Timer(timeout, cut_off, (connection.sock,))
        watchdog.daemon = True
        watchdog.start()
        connection.request("GET", target, headers={"User-Agent": _USER_AGENT, "Accept": "image/*, */*;q=0.5"})
        response = connection.getresponse()
        if 300 <= response.status < 400:
            raise _Refused(f"the server answered with a redirect (HTTP {response.status}), which is not followed")
        if response.status != 200:
            raise _Refused(f"the server answered HTTP {response.status}")
        length = response.getheader("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise _Refused(f"the image is larger than {max_bytes} bytes")
        body = io.BytesIO()
        while block := response.read(min(65536, max_bytes + 1 - body.tell())):
            body.write(block)
            if body.tell() > max_bytes:
                raise _Refused(f"the image is larger than {max_bytes} bytes")
            if time.monotonic() > deadline:
                raise _Refused(f"the download took longer than {timeout:g} s")
        if time.monotonic() > deadline:  # the watchdog ended the body early
            raise _Refused(f"the download took longer than {timeout:g} s")
        return body.getvalue()
    except TimeoutError:
        raise _Refused(f"the download took longer than {timeout:g} s") from None
    except ssl.SSLError as exc:
        raise _Refused(f"TLS failed ({exc.reason or exc.__class__.__name__})") from None
    except (OSError, http.client.HTTPException) as exc:
        if time.monotonic() > deadline:
            raise _Refused(f"the download took longer than {timeout:g} s") from None
        raise _Refused(f"the download failed ({exc.__class__.__name__})") from None
    finally:
        if watchdog is not None:
            watchdog.cancel()
        connection.close()


def image_size(data: bytes) -> tuple[int, int] | None:
    """The pixel size of encoded image bytes (read from the header only); None when they are not an image."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:  # an undecodable or hostile file simply has no known size
        return None


class ArchiveImages:
    """Packs task images into an open archive as they are met, and lists those left out, with the reason."""

    def __init__(self, archive: Any, fetch: ImageFetcher, scratch_dir: Path):
        self.archive = archive
        self.fetch = fetch
        # Sizes of the latest images, for an image met again (several annotations of a task share it).
        self._sizes: OrderedDict[str, tuple[int, int] | None] = OrderedDict()
        self._missing_path = Path(scratch_dir) / "images-not-included.jsonl"
        self._missing: IO[bytes] | None = None
        self._listing = JsonArray(LINES)

    def add(self, member: str, url: str, task_id: Any) -> tuple[int, int] | None:
        """Put the image at `member` in the archive; its pixel size, None when unknown or not included."""
        data, reason = self.fetch(url)
        size = None
        if data is None:
            self._note_missing(member, url, task_id, reason or "not available")
        else:
            self.archive.write(member, data, stored=True)  # images are compressed already
            size = image_size(data)
        self._sizes[member] = size
        if len(self._sizes) > _REMEMBERED_SIZES:
            self._sizes.popitem(last=False)
        return size

    def size_of(self, member: str) -> tuple[int, int] | None:
        """The size of an image added before; None when unknown or added too long ago to be remembered."""
        return self._sizes.get(member)

    def _note_missing(self, member: str, url: str, task_id: Any, reason: str) -> None:
        if self._missing is None:
            self._missing = self._missing_path.open("wb")
        record = {"task_id": task_id, "url": url, "file": member, "reason": reason}
        self._missing.write(self._listing.add([orjson.dumps(record)]))

    @property
    def missing_count(self) -> int:
        """How many images were left out so far."""
        return self._listing.count

    def close(self) -> None:
        """Close the scratch list of images left out (also when the conversion stops early)."""
        if self._missing is not None:
            self._missing.close()

    def finish(self) -> None:
        """Write `images_not_included.json` (a JSON array) when any image was left out."""
        if self._missing is None:
            return
        self._missing.close()
        with self.archive.stream(NOT_INCLUDED_FILE) as listing:
            listing.write(self._listing.start())
            with self._missing_path.open("rb") as lines:
                while block := lines.read(1 << 20):
                    listing.write(block)
            listing.write(self._listing.end() + b"\n")
