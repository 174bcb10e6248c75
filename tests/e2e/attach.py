"""The attach-mode stack beside a real Label Studio: the service reading Label Studio's database through a
SELECT-only role, and nginx with the shipped config (config/nginx/label-studio-attach.conf) in front of both."""

import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import requests

from tests.e2e.stack import ROOT, Process, free_port, wait_until

BIN = Path(sys.executable).parent
NGINX_CONF = ROOT / "config" / "nginx" / "label-studio-attach.conf"
READER_ROLE = "lsexport_reader"


def server_url(database_url: str, database: str, *, user: str | None = None) -> str:
    parts = urlsplit(database_url)
    netloc = parts.netloc if user is None else f"{user}@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit((parts.scheme, netloc, f"/{database}", "", ""))


def recreate(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def grant_reader(database_url: str) -> str:
    """A login role that may only read Label Studio's tables (what the README asks operators to create); its URL."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [READER_ROLE]).fetchone()
        if not exists:
            conn.execute(f"CREATE ROLE {READER_ROLE} LOGIN")
        database = urlsplit(database_url).path.lstrip("/")
        conn.execute(f'GRANT CONNECT ON DATABASE "{database}" TO {READER_ROLE}')
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {READER_ROLE}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER_ROLE}")
    return server_url(database_url, urlsplit(database_url).path.lstrip("/"), user=READER_ROLE)


class AttachedService:
    """The service in attach mode under gunicorn, with its own database for snapshot jobs."""

    def __init__(self, data_dir: Path, *, database_url: str, label_studio_database_url: str, label_studio_url: str):
        self.data_dir = data_dir
        self.log_dir = data_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("JOBS_", "EXPORT_", "CELERY_", "AWS_"))},
            "SECRET_KEY": secrets.token_urlsafe(32),
            "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATA_DIR": str(data_dir),
            "DATABASE_URL": database_url,
            "LABEL_STUDIO_DATABASE_URL": label_studio_database_url,
            "LABEL_STUDIO_URL": label_studio_url,
            "LABEL_STUDIO_AUTH_CACHE_SECONDS": "1",
            "PYTHONUNBUFFERED": "1",
        }
        self.web: Process | None = None

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def start(self) -> None:
        self.manage("migrate", "--noinput")
        argv = [str(BIN / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{self.port}", "--workers", "2"]
        argv += ["--threads", "4", "--timeout", "300", "--access-logfile", "-"]
        self.web = Process("service", argv, self.env, self.log_dir).start()
        wait_until(self._ready, timeout=60, what="the attached service answering")

    def _ready(self) -> bool:
        assert self.web is not None
        assert self.web.alive(), self.web.log_text()
        try:
            return requests.get(f"{self.base}/api/version/", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def log_text(self) -> str:
        return self.web.log_text() if self.web else ""

    def logged(self, text: str, timeout: float = 10) -> bool:
        """Whether the service's log (its access log included) shows `text`, waiting a little for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_text():
                return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.web is not None:
            self.web.stop()


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (str(Path("/usr/sbin/nginx")) if Path("/usr/sbin/nginx").exists() else None)


class Nginx:
    """nginx running the shipped attach config, its two upstreams pointed at the given ports."""

    def __init__(self, data_dir: Path, *, label_studio_port: int, service_port: int):
        self.dir = data_dir / "nginx"
        for sub in ("logs", "tmp"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        site = NGINX_CONF.read_text()
        for old, new in (
            ("server 127.0.0.1:8080;", f"server 127.0.0.1:{label_studio_port};"),
            ("server 127.0.0.1:8000;", f"server 127.0.0.1:{service_port};"),
            ("listen 80;", f"listen 127.0.0.1:{self.port};"),
        ):
            assert old in site, f"the shipped nginx config no longer has {old!r}"
            site = site.replace(old, new)
        tmp = self.dir / "tmp"
        self.conf = self.dir / "nginx.conf"
        self.conf.write_text(
            f"pid {self.dir / 'nginx.pid'};\nerror_log {self.dir / 'logs' / 'error.log'} info;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            f"  access_log {self.dir / 'logs' / 'access.log'};\n"
            f"  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;\n"
            f"  fastcgi_temp_path {tmp}/fastcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;\n"
            f"{site}\n}}\n"
        )
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        binary = nginx_binary()
        assert binary, "nginx is not installed (Debian: apt-get install nginx-light)"
        checked = subprocess.run([binary, "-t", "-c", str(self.conf)], capture_output=True, text=True, check=False)
        assert checked.returncode == 0, checked.stderr
        self.process = subprocess.Popen(
            [binary, "-c", str(self.conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.base}/api/version/", timeout=2)
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise AssertionError("nginx did not answer")

    def access_log(self) -> str:
        path = self.dir / "logs" / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
