"""`scripts/serve.sh` for real: it installs into the existing .venv, migrates, prints the demo user's token and
serves with gunicorn; the API, Swagger UI with its static assets and the embedded job pool work there, and what it
keeps in DATA_DIR is readable by its owner only. Malformed HTTP gets gunicorn's short error, never a page of
Django's development server, and with LOG_FORMAT=json every line the server writes is JSON."""

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "serve.sh"
WORKERS = 2
# The pip step is quick with the venv in place, but a cold machine may still take a while.
START_TIMEOUT = 300
IMAGE_CONFIG = (
    '<View><Image name="image" value="$image"/>'
    '<RectangleLabels name="label" toName="image"><Label value="Car"/></RectangleLabels></View>'
)
# Settings the service reads from the environment: the script must run with its own defaults, not the test run's.
ENV_DROPPED = (
    "ALLOWED_HOSTS",
    "AWS_",
    "CELERY_",
    "DATA_DIR",
    "DATABASE_URL",
    "DEBUG",
    "DEMO_",
    "DJANGO_SETTINGS_MODULE",
    "EXPORT_",
    "HOST",
    "JOBS_",
    "LABEL_STUDIO_",
    "LOG_",
    "PORT",
    "SECRET_KEY",
    "WEB_",
)

pytestmark = [
    pytest.mark.skipif(os.name != "posix" or shutil.which("sh") is None, reason="needs a POSIX sh"),
    pytest.mark.skipif(
        not (ROOT / ".venv" / "bin" / "python").exists(),
        reason="needs the project's .venv (without it serve.sh installs everything from the network)",
    ),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    """The script's process (its own process group) and everything it printed so far."""

    def __init__(self, data_dir: Path, port: int, **settings: str):
        env = {key: value for key, value in os.environ.items() if not key.startswith(ENV_DROPPED)}
        env.update(DATA_DIR=str(data_dir), PORT=str(port), WEB_WORKERS=str(WORKERS), WEB_THREADS="2", **settings)
        self.data_dir = data_dir
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []
        self.token_seen = threading.Event()
        self.proc = subprocess.Popen(
            ["sh", str(SCRIPT)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("API token:"):
                self.token_seen.set()
        self.token_seen.set()  # the script ended: stop waiting

    def output(self) -> str:
        return "\n".join(self.lines[-60:])

    def token(self) -> str:
        if not self.token_seen.wait(START_TIMEOUT):
            pytest.fail(f"serve.sh printed no `API token:` line in {START_TIMEOUT}s:\n{self.output()}")
        for line in self.lines:
            if line.startswith("API token:"):
                return line.split(":", 1)[1].strip()
        pytest.fail(f"serve.sh ended (exit {self.proc.poll()}) without an `API token:` line:\n{self.output()}")

    def wait_listening(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"serve.sh exited with {self.proc.returncode}:\n{self.output()}")
            try:
                requests.get(f"{self.base}/api/projects/", timeout=5)
                return
            except requests.ConnectionError:
                time.sleep(0.2)
        pytest.fail(f"nothing listening on {self.base} after {timeout}s:\n{self.output()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=40)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        # Workers left behind by a master that died first are in the same group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def process_group(pgid: int) -> list[str]:
    """The command lines of the processes in a group, from `ps` (or /proc where `ps` is missing)."""
    if shutil.which("ps"):
        out = subprocess.run(["ps", "-ww", "-eo", "pgid=,args="], capture_output=True, text=True, check=True).stdout
        rows = (line.strip().split(None, 1) for line in out.splitlines() if line.strip())
        return [row[1] for row in rows if len(row) == 2 and row[0] == str(pgid)]
    if not Path("/proc").is_dir():
        pytest.skip("neither ps nor /proc to list processes")
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except (ProcessLookupError, FileNotFoundError, PermissionError):
                continue
    return found


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def served(tmp_path):
    data_dir = tmp_path / "data"
    # A folder and files left readable by others (an older serve.sh, another umask): the script tightens them.
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    (data_dir / "demo_password").write_text("an-old-demo-password\n")
    (data_dir / "demo_password").chmod(0o644)
    (data_dir / "db.sqlite3").touch()  # an empty file is an empty SQLite database
    (data_dir / "db.sqlite3").chmod(0o644)
    server = Served(data_dir, free_port())
    try:
        yield server
    finally:
        server.stop()


def test_serve_script_runs_gunicorn_with_jobs_docs_and_private_files(served):
    token = served.token()
    served.wait_listening()
    api = requests.Session()
    api.headers["Authorization"] = f"Token {token}"
    base = served.base

    listed = api.get(f"{base}/api/projects/", timeout=30)
    assert listed.status_code == 200, listed.text
    assert "gunicorn" in listed.headers.get("Server", "")
    group = [args for args in process_group(served.proc.pid) if "gunicorn" in args]
    assert len(group) >= WORKERS + 1, f"expected a gunicorn master and {WORKERS} workers in {group}"
    assert any("gthread" in args for args in group), group

    # Swagger UI and its assets, served by whitenoise with DEBUG off.
    docs = requests.get(f"{base}/docs/api/", timeout=30)
    assert docs.status_code == 200
    assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', docs.text)
    assert any(asset.endswith(".js") for asset in assets), docs.text[:2000]
    for asset in assets:
        fetched = requests.get(f"{base}{asset}", timeout=30)
        assert fetched.status_code == 200, asset
        assert fetched.content

    # A snapshot completes: the embedded job pool runs inside the gunicorn workers.
    project = api.post(f"{base}/api/projects/", json={"title": "Cars", "label_config": IMAGE_CONFIG}, timeout=30)
    assert project.status_code == 201, project.text
    pid = project.json()["id"]
    imported = api.post(
        f"{base}/api/projects/{pid}/import",
        json=[{"data": {"image": "https://example.com/1.jpg"}}, {"data": {"image": "https://example.com/2.jpg"}}],
        timeout=30,
    )
    assert imported.status_code == 201, imported.text
    created = api.post(f"{base}/api/projects/{pid}/exports/", json={}, timeout=30)
    assert created.status_code == 201, created.text
    export_id = created.json()["id"]
    deadline = time.monotonic() + 60
    while True:
        snapshot = api.get(f"{base}/api/projects/{pid}/exports/{export_id}", timeout=30).json()
        if snapshot["status"] in ("completed", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert snapshot["status"] == "completed", f"{snapshot}\n{served.output()}"
    download = api.get(f"{base}/api/projects/{pid}/exports/{export_id}/download", timeout=30)
    assert download.status_code == 200
    assert hashlib.md5(download.content).hexdigest() == snapshot["md5"]
    assert len(download.json()) == 2

    # Owner only: the folder and its secrets (those left loose before were tightened), and everything the
    # service itself created there (database, export files, scratch folder) under serve.sh's umask.
    data_dir = served.data_dir
    assert mode(data_dir) == 0o700
    for name in ("secret_key", "demo_password", "db.sqlite3"):
        assert mode(data_dir / name) == 0o600, name
    assert (data_dir / "demo_password").read_text() == "an-old-demo-password\n"
    loose = [f"{path.relative_to(data_dir)} {oct(mode(path))}" for path in data_dir.rglob("*") if mode(path) & 0o077]
    assert not loose, loose
    assert any((data_dir / "exports").rglob("*")), "no export file under DATA_DIR/exports"

    # The access log goes to stdout (merged here with stderr).
    assert any("GET /api/projects/" in line for line in served.lines), served.output()


# Raw requests gunicorn refuses itself, and the status it answers each with.
MALFORMED = {
    "bad request line": (b"GARBAGE\r\n\r\n", 400),
    "markup as request line": (b"<script>alert(1)</script>\r\n\r\n", 400),
    "100 KB header line": (
        b"GET /api/projects/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        431,
    ),
    "too many header fields": (
        b"GET /api/projects/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + b"".join(b"X-%d: a\r\n" % i for i in range(150))
        + b"\r\n",
        431,
    ),
    "request line over 4094 bytes": (b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 414),
    "Content-Length not a number": (
        b"POST /api/projects/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n",
        400,
    ),
    "negative Content-Length": (b"POST /api/projects/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n", 400),
    "two Content-Lengths": (
        b"POST /api/projects/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        400,
    ),
}


def raw_exchange(port: int, request: bytes) -> bytes:
    """Send `request` as is and read the answer until the server closes the connection."""
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # refused before it was all sent
            sock.sendall(request)
        with contextlib.suppress(ConnectionResetError):  # closed with the rest of the request unread
            while chunk := sock.recv(65536):
                answer += chunk
    return answer


@pytest.fixture
def served_json(tmp_path):
    server = Served(tmp_path / "data", free_port(), LOG_FORMAT="json")
    try:
        yield server
    finally:
        server.stop()


def test_malformed_http_gets_gunicorns_short_error_and_every_log_line_is_json(served_json):
    served = served_json
    served.token()
    served.wait_listening()

    for case, (request, status) in MALFORMED.items():
        answer = raw_exchange(served.port, request)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.split(b"\r\n")[0].startswith(b"HTTP/1.1 %d " % status), (case, answer[:300])
        # gunicorn's own fixed page: short, the input escaped, nothing of Django's development server
        # (whose pages come from `Server: WSGIServer` and say "Error code explanation").
        assert len(answer) < 1024, case
        assert b"WSGIServer" not in head, case
        assert b"Error code explanation" not in body, case
        assert b"<script>" not in answer, case

    # The server still answers, and with LOG_FORMAT=json writes only JSON lines: gunicorn's, and the service's
    # access lines with the request id.
    health = requests.get(f"{served.base}/health", headers={"X-Request-ID": "probe-1"}, timeout=30)
    assert health.status_code == 200
    assert health.headers["X-Request-ID"] == "probe-1"
    deadline = time.monotonic() + 30
    while not any('"probe-1"' in line for line in served.lines) and time.monotonic() < deadline:
        time.sleep(0.1)
    started = next(i for i, line in enumerate(served.lines) if line.startswith("Serving on"))
    records = [json.loads(line) for line in served.lines[started + 1 :]]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any(r["logger"] == "gunicorn.error" and r["message"].startswith("Invalid request") for r in records)
    [access] = [r for r in records if r["logger"] == "access" and r.get("request_id") == "probe-1"]
    assert (access["method"], access["path"], access["status"]) == ("GET", "/health", 200)
