"""The processes of the end-to-end suite and how to reach them: gunicorn, `celery -A config worker` processes,
the API over HTTP, and the database read directly for what the API does not show (lease owner, reason)."""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DATABASE_URL = os.environ.get("E2E_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lsexport_e2e")
BROKER_URL = os.environ.get("E2E_BROKER_URL", "redis://127.0.0.1:6379/15")
LEASE_SECONDS = 10
SWEEP_SECONDS = 2
BATCH_SIZE = 100
# The command that restarts PostgreSQL in the middle of a snapshot (default: pg_ctlcluster, see pg_command).
PG_RESTART = os.environ.get("E2E_PG_RESTART", "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def admin_url() -> str:
    """The same server, database `postgres`: where the e2e database is dropped and created."""
    parts = urlsplit(DATABASE_URL)
    return urlunsplit((parts.scheme, parts.netloc, "/postgres", "", ""))


def database_name() -> str:
    return urlsplit(DATABASE_URL).path.lstrip("/")


def recreate_database() -> None:
    name = database_name()
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database() -> None:
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database_name()}" WITH (FORCE)')


def wait_until(predicate, *, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout} s")


class Process:
    """A child process in its own session (so `kill` reaches its pool children too), logging to a file."""

    def __init__(self, name: str, argv: list[str], env: dict, log_dir: Path):
        self.name = name
        self.argv = argv
        self.env = env
        self.log = log_dir / f"{name}.log"
        self.popen: subprocess.Popen | None = None

    def start(self) -> "Process":
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal_group(self, signum: int) -> None:
        os.killpg(self.popen.pid, signum)

    def stop(self, timeout: float = 20) -> None:
        if not self.alive():
            return
        try:
            self.signal_group(signal.SIGTERM)
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.popen.wait(10)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL to the whole process group: the worker and its pool children vanish at once."""
        self.signal_group(signal.SIGKILL)
        self.popen.wait(10)

    def owns(self, pid: int) -> bool:
        """Whether `pid` is this process or one of its children (same process group)."""
        try:
            return os.getpgid(pid) == self.popen.pid
        except ProcessLookupError:
            return False


class Stack:
    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.log_dir = data_dir / "logs"
        self.log_dir.mkdir()
        self.delay_file = data_dir / "batch-delay"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(20)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("JOBS_", "EXPORT_", "CELERY_", "AWS_"))},
            "SECRET_KEY": secrets.token_urlsafe(32),
            "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATA_DIR": str(data_dir),
            "DATABASE_URL": DATABASE_URL,
            "CELERY_BROKER_URL": BROKER_URL,
            "EXPORT_LEASE_SECONDS": str(LEASE_SECONDS),
            "JOBS_SWEEP_SECONDS": str(SWEEP_SECONDS),
            "JOBS_REQUEUE_SECONDS": "30",
            "EXPORT_BATCH_SIZE": str(BATCH_SIZE),
            "E2E_DELAY_FILE": str(self.delay_file),
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "INFO",
        }
        self.web: Process | None = None
        self.workers: dict[str, Process] = {}
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {self.token}"

    # --- processes --------------------------------------------------------------------------------------------

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start_web(self) -> None:
        argv = [str(BIN / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{self.port}", "--workers", "3"]
        self.web = Process("web", [*argv, "--timeout", "120"], self.env, self.log_dir).start()
        wait_until(self._web_ready, timeout=60, what="gunicorn answering")

    def _web_ready(self) -> bool:
        assert self.web.alive(), self.web.log_text()
        try:
            return requests.get(f"{self.base}/api/version/", timeout=10).status_code == 200
        except requests.RequestException:
            return False

    def start_worker(self, name: str, *, env: dict | None = None, concurrency: int = 2) -> Process:
        argv = [
            str(BIN / "celery"),
            "-A",
            "config",
            "worker",
            "--hostname",
            f"{name}@%h",
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "INFO",
            # Test-only: makes each batch of a snapshot sleep as long as the delay file says.
            "--include",
            "tests.e2e.slowdown",
        ]
        log_dir = self.log_dir
        worker = Process(name, argv, {**self.env, **(env or {})}, log_dir)
        starts = worker.log_text().count(" ready.")
        worker.start()
        wait_until(
            lambda: worker.log_text().count(" ready.") > starts or not worker.alive(),
            timeout=90,
            what=f"worker {name} ready",
        )
        assert worker.alive(), worker.log_text()
        self.workers[name] = worker
        return worker

    def only_worker(self, name: str, *, env: dict | None = None, concurrency: int = 2) -> Process:
        """Stop every worker, then start `name` alone (so it takes every job from now on)."""
        for worker in self.workers.values():
            worker.stop()
        self.workers.clear()
        return self.start_worker(name, env=env, concurrency=concurrency)

    def stop_all(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        if self.web is not None:
            self.web.stop()

    def slow_batches(self, seconds: float) -> None:
        self.delay_file.write_text(str(seconds))

    # --- the API ---------------------------------------------------------------------------------------------

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 120)
        return self.session.request(method, f"{self.base}{path}", **kwargs)

    # --- the database, read directly for what the API does not show (lease owner, reason) ------------------------

    def query(self, sql: str, *params):
        with psycopg.connect(DATABASE_URL, autocommit=True, connect_timeout=5) as conn:
            return conn.execute(sql, params).fetchall()

    def export_row(self, export_id: int) -> dict:
        rows = self.query(
            "SELECT status, lease_owner, reason, file, md5, counters FROM exports_export WHERE id = %s", export_id
        )
        status, owner, reason, file, md5, counters = rows[0]
        return {
            "status": status,
            "lease_owner": owner,
            "reason": reason,
            "file": file,
            "md5": md5,
            "counters": counters,
        }

    def stored_files(self, export_id: int) -> list[Path]:
        """Files in the export storage, or scratch files, that belong to this snapshot."""
        exports = self.data_dir / "exports"
        return sorted(exports.rglob(f"export-{export_id}-*")) if exports.exists() else []


def pg_command(action: str) -> list[str]:
    """`pg_ctlcluster` with `action` (restart, start) for this machine's cluster; [] where there is none.
    E2E_PG_RESTART replaces the restart command (e.g. for another cluster layout)."""
    if action == "restart" and PG_RESTART:
        return PG_RESTART.split()
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions or shutil.which("pg_ctlcluster") is None:
        return []
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", action]


def postgres_up() -> bool:
    try:
        with psycopg.connect(admin_url(), connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False
