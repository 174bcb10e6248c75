"""The image fetcher of the *_WITH_IMAGES exports: stored files under DATA_DIR/media of the task's own organization
and listed public hosts only.

A real HTTP server runs on 127.0.0.1 in a thread. Because the fetcher refuses loopback addresses even for a
listed host, the tests that need a download replace the address check; the refusals are tested for real.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from exports.converters import images
from exports.converters.images import FOREIGN_FILE, LOCAL_FILE_NOT_SHARED, NO_PROJECT, address_allowed, image_fetcher

BODY = b"\x89PNG\r\n\x1a\n" + b"pixels" * 50


class Handler(BaseHTTPRequestHandler):
    hits: list[tuple[str, str]] = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def handle(self):
        with contextlib.suppress(ConnectionError):  # the fetcher hung up on purpose (size cap, deadline)
            super().handle()

    def do_GET(self):
        Handler.hits.append((self.path, self.headers.get("Host", "")))
        if self.path == "/img.png":
            self._send(200, BODY)
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/img.png")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/big":
            self._send(200, b"x" * 5000)
        elif self.path == "/big-unsized":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"x" * 5000)
            self.close_connection = True
        elif self.path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", "40")
            self.end_headers()
            try:
                for _ in range(40):  # one byte every 0.1 s: no single read waits long enough to time out
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:  # the client hung up, as it should
                self.close_connection = True
        elif self.path == "/slow":
            time.sleep(1.5)
            self._send(200, BODY)
        else:
            self._send(404, b"not here")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def hits():
    Handler.hits.clear()
    return Handler.hits


@pytest.fixture
def allow_loopback(monkeypatch):
    """Let the fetcher connect to the local test server, as if 127.0.0.1 were a public address."""
    monkeypatch.setattr(images, "address_allowed", lambda address: True)


OWN_PROJECTS = (3, 4)  # the exporting organization's projects in the stored-file tests; 7 is another's


def fetcher(tmp_path, hosts=("127.0.0.1",), *, project_ids=OWN_PROJECTS, shared_local_files=False, **kwargs):
    settings = SimpleNamespace(
        DATA_DIR=tmp_path, EXPORT_IMAGE_HOSTS=list(hosts), EXPORT_SHARED_LOCAL_FILES=shared_local_files
    )
    return image_fetcher(settings, project_ids=project_ids, **kwargs)


# --- refusals, for real -----------------------------------------------------------------------------------------


def test_loopback_is_refused_even_when_listed(server, hits, tmp_path):
    data, reason = fetcher(tmp_path)(f"http://127.0.0.1:{server}/img.png")
    assert data is None
    assert reason == "the host 127.0.0.1 resolves to a non-public address (127.0.0.1)"
    assert hits == []


def test_a_name_resolving_to_loopback_is_refused(server, hits, tmp_path):
    data, reason = fetcher(tmp_path, hosts=["localhost"])(f"http://localhost:{server}/img.png")
    assert data is None
    assert "resolves to a non-public address" in reason
    assert hits == []


def test_one_private_address_among_public_ones_is_enough_to_refuse(monkeypatch, tmp_path):
    answers = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, 80)) for ip in ("93.184.216.34", "10.1.2.3")]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: answers)
    data, reason = fetcher(tmp_path, hosts=["images.example"])("http://images.example/a.png")
    assert (data, reason) == (None, "the host images.example resolves to a non-public address (10.1.2.3)")


def test_host_not_listed_is_refused_without_a_request(server, hits, tmp_path):
    data, reason = fetcher(tmp_path, hosts=[])(f"http://127.0.0.1:{server}/img.png")
    assert (data, reason) == (None, "the host 127.0.0.1 is not listed in EXPORT_IMAGE_HOSTS")
    assert hits == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("s3://bucket/key.jpg", "cloud storage URLs are not fetched"),
        ("gs://bucket/key.jpg", "cloud storage URLs are not fetched"),
        ("ftp://127.0.0.1/a.jpg", "not an http(s) URL nor a file stored by the service"),
        ("file:///etc/passwd", "not an http(s) URL nor a file stored by the service"),
        ("relative/picture.jpg", "not an http(s) URL nor a file stored by the service"),
        ("http://user:secret@127.0.0.1/a.jpg", "URLs with credentials are not fetched"),
        ("http://127.0.0.1:99999/a.jpg", "the URL has an invalid port"),
        ("", "the image URL is empty"),
    ],
)
def test_urls_that_are_never_fetched(url, reason, tmp_path):
    assert fetcher(tmp_path)(url) == (None, reason)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "fe80::1%eth0",
    ],
)
def test_non_public_addresses(address):
    assert address_allowed(address) is False


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses(address):
    assert address_allowed(address) is True


# --- downloads (address check replaced) -------------------------------------------------------------------------


def test_listed_host_is_downloaded(server, hits, tmp_path, allow_loopback):
    assert fetcher(tmp_path)(f"http://127.0.0.1:{server}/img.png") == (BODY, "")
    assert [path for path, _ in hits] == ["/img.png"]


def test_connection_goes_to_the_checked_address(server, hits, monkeypatch, tmp_path, allow_loopback):
    """The name is resolved once; the request goes to that address with the URL's host in the Host header."""
    calls = []

    def resolve(host, port, *args, **kwargs):
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    data, _ = fetcher(tmp_path, hosts=["images.example"])(f"http://images.example:{server}/img.png")
    assert data == BODY
    # The only name looked up is the URL's host (connecting to the numeric address resolves nothing).
    assert [host for host in calls if host != "127.0.0.1"] == ["images.example"]
    assert hits == [("/img.png", f"images.example:{server}")]


def test_redirect_is_not_followed(server, hits, tmp_path, allow_loopback):
    data, reason = fetcher(tmp_path)(f"http://127.0.0.1:{server}/redirect")
    assert data is None
    assert reason == "the server answered with a redirect (HTTP 302), which is not followed"
    assert [path for path, _ in hits] == ["/redirect"]


def test_error_status_is_the_reason(server, tmp_path, allow_loopback):
    assert fetcher(tmp_path)(f"http://127.0.0.1:{server}/nothing.png") == (None, "the server answered HTTP 404")


@pytest.mark.parametrize("path", ["/big", "/big-unsized"])
def test_size_cap(server, tmp_path, allow_loopback, path):
    data, reason = fetcher(tmp_path, max_bytes=1000)(f"http://127.0.0.1:{server}{path}")
    assert (data, reason) == (None, "the image is larger than 1000 bytes")
    data, reason = fetcher(tmp_path, max_bytes=5000)(f"http://127.0.0.1:{server}{path}")
    assert data == b"x" * 5000
    assert reason == ""


def test_timeout(server, tmp_path, allow_loopback):
    started = time.monotonic()
    data, reason = fetcher(tmp_path, timeout=0.3)(f"http://127.0.0.1:{server}/slow")
    assert (data, reason) == (None, "the download took longer than 0.3 s")
    assert time.monotonic() - started < 1.4


def test_a_slow_trickle_is_cut_off_at_the_deadline(server, tmp_path, allow_loopback):
    started = time.monotonic()
    data, reason = fetcher(tmp_path, timeout=0.5)(f"http://127.0.0.1:{server}/drip")
    assert (data, reason) == (None, "the download took longer than 0.5 s")
    assert time.monotonic() - started < 2


def test_https_to_a_plain_http_server_fails_cleanly(server, tmp_path, allow_loopback):
    data, reason = fetcher(tmp_path, timeout=2)(f"https://127.0.0.1:{server}/img.png")
    assert data is None
    assert reason.startswith(("TLS failed", "the download failed"))


# --- files the service stores -----------------------------------------------------------------------------------


@pytest.fixture
def media(tmp_path):
    """Uploads of project 3 (the exporting organization's) and 7 (another's), and a Local Storage folder."""
    root = tmp_path / "media"
    (root / "upload" / "3").mkdir(parents=True)
    (root / "upload" / "3" / "a b.png").write_bytes(b"upload bytes")
    (root / "upload" / "7").mkdir(parents=True)
    (root / "upload" / "7" / "b.png").write_bytes(b"another organization's bytes")
    (root / "upload" / "loose.png").write_bytes(b"no project's bytes")
    (root / "storage" / "dir").mkdir(parents=True)
    (root / "storage" / "dir" / "x.jpg").write_bytes(b"local bytes")
    (tmp_path / "secret.txt").write_bytes(b"outside")
    return root


@pytest.mark.parametrize(
    "url",
    [
        "/data/upload/3/a%20b.png",
        "/data/upload/3/a b.png",
        "upload/3/a b.png",
        "/data/local-files/?d=upload/3/a b.png",
        "/data/upload/7/../3/a b.png",
    ],
)
def test_uploads_of_the_organization_are_read(media, tmp_path, url):
    assert fetcher(tmp_path)(url) == (b"upload bytes", "")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("/data/upload/7/b.png", FOREIGN_FILE),
        ("upload/7/b.png", FOREIGN_FILE),
        ("/data/upload/3/../7/b.png", FOREIGN_FILE),
        ("/data/upload/3/..%2F..%2Fupload/7/b.png", FOREIGN_FILE),
        ("/data/local-files/?d=upload/7/b.png", FOREIGN_FILE),
        ("/data/local-files/?d=storage/../upload/7/b.png", FOREIGN_FILE),
        ("/data/upload/7/missing.png", FOREIGN_FILE),  # refused before the file system says whether it exists
        ("/data/upload/loose.png", NO_PROJECT),
        ("/data/upload/x7/b.png", NO_PROJECT),
        ("/data/upload/%C2%B3/b.png", NO_PROJECT),  # a superscript three is a digit to str.isdigit, not an id
        ("/data/upload/../storage/dir/x.jpg", NO_PROJECT),  # an upload URL that `..` leads out of upload/
        ("/data/local-files/?d=upload/loose.png", NO_PROJECT),
    ],
)
def test_uploads_of_other_organizations_are_refused(media, tmp_path, url, reason):
    assert fetcher(tmp_path, shared_local_files=True)(url) == (None, reason)


def test_a_link_into_another_projects_folder_is_refused(media, tmp_path):
    os.symlink(media / "upload" / "7" / "b.png", media / "upload" / "3" / "link.png")
    os.symlink(media / "upload" / "7" / "b.png", media / "storage" / "link.png")
    assert fetcher(tmp_path)("/data/upload/3/link.png") == (None, FOREIGN_FILE)
    assert fetcher(tmp_path, shared_local_files=True)("/data/local-files/?d=storage/link.png") == (None, FOREIGN_FILE)


def test_no_project_ids_reads_no_upload(media, tmp_path):
    assert fetcher(tmp_path, project_ids=())("/data/upload/3/a b.png") == (None, FOREIGN_FILE)


@pytest.mark.parametrize(
    "url",
    [
        "/data/local-files/?d=storage/dir/x.jpg",
        "/data/local-files?d=storage%2Fdir%2Fx.jpg",
        "/data/local-files/?d=/storage/dir/x.jpg",
    ],
)
def test_local_files_outside_upload_are_read_only_when_shared(media, tmp_path, url):
    """No organization owns them, so they are refused unless the operator declares them shared."""
    assert fetcher(tmp_path)(url) == (None, LOCAL_FILE_NOT_SHARED)
    assert fetcher(tmp_path, shared_local_files=True)(url) == (b"local bytes", "")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("/data/upload/../../secret.txt", "the path leads outside the service's media folder"),
        ("/data/upload/..%2F..%2Fsecret.txt", "the path leads outside the service's media folder"),
        ("/data/local-files/?d=../secret.txt", "the path leads outside the service's media folder"),
        ("/data/local-files/?d=storage/../../secret.txt", "the path leads outside the service's media folder"),
        ("/data/local-files/?d=", "the Local Storage URL names no file (no ?d=)"),
        ("/data/local-files/?d=.", "the path leads outside the service's media folder"),
        ("/data/upload/3/missing.png", "the stored file does not exist"),
        ("/data/upload/3", "the stored path is not a regular file"),
        ("/data/local-files/?d=storage/dir/x.jpg%00.png", "the path contains a NUL character"),
    ],
)
def test_stored_file_refusals(media, tmp_path, url, reason):
    assert fetcher(tmp_path, shared_local_files=True)(url) == (None, reason)


def test_symlink_out_of_media_is_refused(media, tmp_path):
    os.symlink(tmp_path / "secret.txt", media / "upload" / "3" / "link.png")
    assert fetcher(tmp_path)("/data/upload/3/link.png") == (None, "the path leads outside the service's media folder")


def test_symlink_inside_media_is_followed(media, tmp_path):
    os.symlink(media / "storage" / "dir" / "x.jpg", media / "upload" / "3" / "alias.jpg")
    assert fetcher(tmp_path)("/data/upload/3/alias.jpg") == (b"local bytes", "")


def test_stored_file_size_cap(media, tmp_path):
    assert fetcher(tmp_path, max_bytes=5)("/data/upload/3/a b.png") == (None, "the file is larger than 5 bytes")


def test_fifo_is_not_opened(media, tmp_path):
    os.mkfifo(media / "upload" / "3" / "pipe.png")
    assert fetcher(tmp_path)("/data/upload/3/pipe.png") == (None, "the stored path is not a regular file")
