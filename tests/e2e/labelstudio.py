"""A real Label Studio 1.23.2 for attach-mode tests: its own venv, its own PostgreSQL database, started
with `label-studio start`, and helpers that fill it with data through its own HTTP API.

Plain functions and classes, no pytest inside. Typical use:

    ensure_venv()                                   # ~/.cache/lsexport/label-studio-1.23.2 (or $LABEL_STUDIO_VENV)
    ls = start_label_studio(database="lsharness_x")  # fresh database, admin user with a known legacy token
    admin = ls.client(token=ls.admin.token)
    project = admin.create_project("Cars", IMAGE_CONFIG)
    ...
    ls.stop()

What was learned about Label Studio while writing this is in LABEL_STUDIO_FACTS.md beside this file.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import psycopg
import requests

LS_VERSION = "1.23.2"
DEFAULT_VENV = Path.home() / ".cache" / "lsexport" / f"label-studio-{LS_VERSION}"
# The server the harness creates its databases on (user, host, port; the path is ignored).
PG_URL = os.environ.get("LS_HARNESS_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DATABASE_PREFIX = "lsharness_"
TEMPLATE_DATABASE = f"{DATABASE_PREFIX}template_{LS_VERSION.replace('.', '_')}"
_TEMPLATE_READY = f"label-studio {LS_VERSION} migrated"
DEFAULT_SECRET_KEY = "lsharness-secret-key-for-tests-only-0123456789abcdefghijklmnop"
SESSION_SALT = "django.contrib.sessions.backends.signed_cookies"

IMAGE_CONFIG = (
    '<View><Image name="image" value="$image"/>'
    '<RectangleLabels name="label" toName="image"><Label value="Car"/><Label value="Plane"/></RectangleLabels>'
    "</View>"
)
TEXT_CONFIG = (
    '<View><Text name="text" value="$text"/>'
    '<Choices name="sentiment" toName="text"><Choice value="Positive"/><Choice value="Negative"/></Choices>'
    "</View>"
)


def rectangle(label: str = "Car", x: float = 10, y: float = 10) -> list[dict[str, Any]]:
    """An annotation/prediction `result` for IMAGE_CONFIG."""
    return [
        {
            "from_name": "label",
            "to_name": "image",
            "type": "rectanglelabels",
            "value": {"x": x, "y": y, "width": 20, "height": 20, "rotation": 0, "rectanglelabels": [label]},
        }
    ]


def choice(value: str = "Positive") -> list[dict[str, Any]]:
    """An annotation/prediction `result` for TEXT_CONFIG."""
    return [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [value]}}]


# --------------------------------------------------------------------------------------------------------
# The venv


def venv_path() -> Path:
    return Path(os.environ.get("LABEL_STUDIO_VENV") or DEFAULT_VENV).expanduser()


def site_packages(venv: Path | None = None) -> Path:
    venv = venv or venv_path()
    found = sorted((venv / "lib").glob("python3*/site-packages"))
    if not found:
        raise FileNotFoundError(f"no site-packages under {venv}")
    return found[0]


def _installed_version(venv: Path) -> str | None:
    found = sorted((venv / "lib").glob(f"python3*/site-packages/label_studio-{LS_VERSION}.dist-info"))
    return LS_VERSION if found and (venv / "bin" / "label-studio").exists() else None


def ensure_venv(venv: Path | None = None, *, python: str = "python3", timeout: float = 1500) -> Path:
    """The venv holding label-studio==1.23.2 (it needs Python >=3.10,<4); created and filled only when missing.
    Returns the venv folder. Quick (a few stat calls) when it is already there."""
    venv = venv or venv_path()
    if _installed_version(venv):
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    if not (venv / "bin" / "python").exists():
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    log = venv.parent / f"install-label-studio-{LS_VERSION}.log"
    with log.open("ab") as out:
        result = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"label-studio=={LS_VERSION}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    if result.returncode != 0 or not _installed_version(venv):
        raise RuntimeError(f"pip install label-studio=={LS_VERSION} failed (exit {result.returncode}); see {log}")
    return venv


# --------------------------------------------------------------------------------------------------------
# PostgreSQL


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str
    password: str

    @classmethod
    def from_url(cls, url: str = PG_URL) -> PgServer:
        parts = urlsplit(url)
        return cls(
            parts.hostname or "127.0.0.1", parts.port or 5432, parts.username or "postgres", parts.password or ""
        )

    def url(self, database: str) -> str:
        auth = quote(self.user) + (":" + quote(self.password) if self.password else "")
        return f"postgres://{auth}@{self.host}:{self.port}/{database}"


def postgres_reachable(url: str = PG_URL, timeout: float = 3) -> bool:
    """Whether the server answers a query (not just a TCP connect)."""
    server = PgServer.from_url(url)
    try:
        with psycopg.connect(server.url("postgres"), connect_timeout=int(max(1, timeout))) as conn:
            conn.execute("SELECT 1")
        return True
    except (psycopg.Error, OSError):
        return False


def _check_name(name: str) -> str:
    if not re.fullmatch(r"lsharness_[a-z0-9_]{1,50}", name):
        raise ValueError(f"harness databases are named lsharness_[a-z0-9_]+, not {name!r}")
    return name


def drop_database(name: str, url: str = PG_URL) -> None:
    with psycopg.connect(PgServer.from_url(url).url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{_check_name(name)}" WITH (FORCE)')


def _ls_env(venv: Path, server: PgServer, database: str, secret_key: str, data_dir: Path, **extra: str) -> dict:
    """Label Studio's environment, built from nothing: it reads many plain names (HOST, PORT, USERNAME,
    PASSWORD, DEBUG...) with its product prefixes too, so nothing of ours may leak in."""
    env = {
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(data_dir.parent),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "DJANGO_DB": "default",
        "POSTGRE_NAME": database,
        "POSTGRE_USER": server.user,
        "POSTGRE_PASSWORD": server.password,
        "POSTGRE_HOST": server.host,
        "POSTGRE_PORT": str(server.port),
        "SECRET_KEY": secret_key,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
    }
    env.update(extra)
    return env


def _manage(venv: Path, env: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    manage = site_packages(venv) / "label_studio" / "manage.py"
    return subprocess.run(
        [str(venv / "bin" / "python"), str(manage), *args],
        env=env,
        cwd=env["LABEL_STUDIO_BASE_DATA_DIR"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ensure_template(venv: Path | None = None, url: str = PG_URL) -> str:
    """A database with all of Label Studio's migrations applied (`manage.py migrate`, about 30 s), made once
    and kept; fresh databases are copied from it in a second. Returns its name."""
    venv = venv or ensure_venv()
    server = PgServer.from_url(url)
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (TEMPLATE_DATABASE,))
        try:
            row = conn.execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                (TEMPLATE_DATABASE,),
            ).fetchone()
            if row and row[0] == _TEMPLATE_READY:
                return TEMPLATE_DATABASE
            conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DATABASE}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{TEMPLATE_DATABASE}"')
            with tempfile.TemporaryDirectory(prefix="lsharness-migrate-") as tmp:
                data_dir = Path(tmp) / "data"
                data_dir.mkdir()
                env = _ls_env(venv, server, TEMPLATE_DATABASE, DEFAULT_SECRET_KEY, data_dir)
                result = _manage(venv, env, "migrate", "--noinput", "--no-color")
            if result.returncode != 0:
                raise RuntimeError(f"Label Studio migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
            conn.execute(f"COMMENT ON DATABASE \"{TEMPLATE_DATABASE}\" IS '{_TEMPLATE_READY}'")
            return TEMPLATE_DATABASE
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (TEMPLATE_DATABASE,))


def create_migrated_database(name: str, venv: Path | None = None, url: str = PG_URL) -> str:
    """Drop `name` and create it afresh as a copy of the migrated template. Returns its URL."""
    template = ensure_template(venv, url)
    server = PgServer.from_url(url)
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{_check_name(name)}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return server.url(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------------------------------------
# The running Label Studio


@dataclass
class LSUser:
    email: str
    password: str
    id: int
    token: str  # the legacy DRF token (authtoken_token.key)
    organization_id: int


class LSError(AssertionError):
    pass


@dataclass
class LabelStudio:
    url: str
    port: int
    secret_key: str
    database: str
    database_url: str
    process: subprocess.Popen
    log_path: Path
    data_dir: Path
    venv: Path
    env: dict
    admin: LSUser | None = None
    _tmp: Path | None = field(default=None, repr=False)

    # -- lifecycle
    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, *, drop: bool = False, timeout: float = 15) -> None:
        """End the server (its whole process group); optionally drop its database and temp folder."""
        if self.alive():
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
            except ProcessLookupError:
                pass
        if drop:
            drop_database(self.database)
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)

    # -- clients
    def client(self, *, token: str | None = None, bearer: str | None = None) -> Client:
        return Client(self.url, token=token, bearer=bearer)

    def login(self, email: str, password: str) -> Client:
        """A client holding a browser-like session (csrftoken + sessionid cookies) after POST /user/login/."""
        client = Client(self.url)
        client.login(email, password)
        return client

    # -- Label Studio's own Django, for what its HTTP API cannot do
    def run_python(self, code: str, timeout: float = 120) -> Any:
        """Run `code` in `manage.py shell -c` against this instance's database; the code sets `result`
        (JSON-serialisable) which is returned."""
        wrapped = code + "\nimport json as _j\nprint('@@RESULT@@' + _j.dumps(result, default=str))\n"
        out = _manage(self.venv, self.env, "shell", "-c", wrapped, timeout=timeout)
        marker = [line for line in out.stdout.splitlines() if line.startswith("@@RESULT@@")]
        if out.returncode != 0 or not marker:
            raise LSError(f"manage.py shell failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
        return json.loads(marker[-1][len("@@RESULT@@") :])

    def create_user_in_new_organization(self, email: str, password: str, title: str) -> LSUser:
        """A user who belongs only to a new organization of their own (LS's OSS signup always joins the first
        organization, and its API creates no memberships, so this uses LS's own models)."""
        code = f"""
from users.models import User
from organizations.models import Organization
from rest_framework.authtoken.models import Token
user = User.objects.create_user(email={email!r}, password={password!r})
user.username = {email!r}.split('@')[0]
user.save()
org = Organization.create_organization(created_by=user, title={title!r})
user.active_organization = org
user.save(update_fields=['active_organization'])
token, _ = Token.objects.get_or_create(user=user)
result = {{'id': user.id, 'token': token.key, 'organization_id': org.id}}
"""
        data = self.run_python(code)
        return LSUser(email, password, data["id"], data["token"], data["organization_id"])

    def signup(self, email: str, password: str) -> tuple[LSUser, Client]:
        """Sign up through /user/signup/ (the user joins the FIRST organization, as every OSS signup does);
        returns the user and the logged-in client the signup left behind."""
        client = Client(self.url)
        client.http.get(f"{self.url}/user/signup/", timeout=30)
        csrf = client.http.cookies.get("csrftoken", "")
        response = client.http.post(
            f"{self.url}/user/signup/",
            data={"csrfmiddlewaretoken": csrf, "email": email, "password": password, "how_find_us": ""},
            headers={"Referer": f"{self.url}/user/signup/", "X-CSRFToken": csrf},
            allow_redirects=False,
            timeout=30,
        )
        if response.status_code != 302 or "sessionid" not in client.http.cookies:
            raise LSError(f"signup of {email} failed: {response.status_code} {response.text[:500]}")
        me = client.json("GET", "/api/current-user/whoami")
        token = client.json("GET", "/api/current-user/token")["token"]
        return LSUser(email, password, me["id"], token, me["active_organization"]), client

    # -- SQL against Label Studio's database (tests may do this; attach mode never writes there)
    def sql(self, query: str, params: tuple | dict | None = None) -> list[tuple]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def set_legacy_tokens_sql(self, organization_id: int, enabled: bool) -> None:
        self.sql(
            "UPDATE jwt_auth_jwtsettings SET legacy_api_tokens_enabled = %s, updated_at = now()"
            " WHERE organization_id = %s",
            (enabled, organization_id),
        )

    def describe(self, table: str) -> str:
        """`psql \\d table` against this instance's database."""
        server = PgServer.from_url(self.database_url)
        env = dict(os.environ, PGPASSWORD=server.password)
        args = ["psql", "-h", server.host, "-p", str(server.port), "-U", server.user, "-d", self.database]
        return subprocess.run([*args, "-c", f"\\d {table}"], env=env, capture_output=True, text=True).stdout


def start_label_studio(
    *,
    database: str = "lsharness_main",
    port: int | None = None,
    secret_key: str = DEFAULT_SECRET_KEY,
    data_dir: Path | None = None,
    admin_email: str = "admin@example.com",
    admin_password: str | None = None,
    admin_token: str | None = None,
    enable_legacy_tokens: bool = True,
    fresh: bool = True,
    extra_env: dict[str, str] | None = None,
    timeout: float = 180,
    pg_url: str = PG_URL,
) -> LabelStudio:
    """Start `label-studio start` on 127.0.0.1:`port` (a free one by default) against PostgreSQL database
    `database` (dropped and copied afresh from the migrated template unless fresh=False), with a fixed
    SECRET_KEY and a data dir in a temp folder; waits until /api/version answers. The admin user is made by
    `--username/--password/--user-token` (superuser, first organization "Label Studio", whose legacy tokens
    are enabled by `--enable-legacy-api-token` unless enable_legacy_tokens=False)."""
    venv = ensure_venv()
    server = PgServer.from_url(pg_url)
    _check_name(database)
    database_url = create_migrated_database(database, venv, pg_url) if fresh else server.url(database)
    tmp = Path(tempfile.mkdtemp(prefix=f"{database}-"))
    data_dir = data_dir or tmp / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    admin_password = admin_password or secrets.token_urlsafe(12)
    admin_token = admin_token or secrets.token_hex(20)  # 40 chars, the width of authtoken_token.key
    env = _ls_env(venv, server, database, secret_key, data_dir, **(extra_env or {}))
    argv = [
        str(venv / "bin" / "label-studio"),
        "start",
        "--no-browser",
        "--internal-host",
        "127.0.0.1",
        "--port",
        str(port),
        "--username",
        admin_email,
        "--password",
        admin_password,
        "--user-token",
        admin_token,
        "--log-level",
        "WARNING",
    ]
    if enable_legacy_tokens:
        argv.append("--enable-legacy-api-token")
    log_path = tmp / "label-studio.log"
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            argv, cwd=data_dir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    ls = LabelStudio(
        url=f"http://127.0.0.1:{port}",
        port=port,
        secret_key=secret_key,
        database=database,
        database_url=database_url,
        process=process,
        log_path=log_path,
        data_dir=data_dir,
        venv=venv,
        env=env,
        _tmp=tmp,
    )
    try:
        _wait_until_up(ls, timeout)
        admin = ls.client(token=admin_token)
        me = admin.json("GET", "/api/current-user/whoami")
        ls.admin = LSUser(admin_email, admin_password, me["id"], admin_token, me["active_organization"])
    except BaseException:
        ls.stop()
        raise
    return ls


def _wait_until_up(ls: LabelStudio, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not ls.alive():
            raise LSError(f"Label Studio exited with {ls.process.returncode}:\n{ls.log_tail()}")
        # `label-studio start` silently moves to the next port when the asked one is taken: follow it
        match = re.findall(
            r"Starting development server at http://[^:/]+:(\d+)/", ls.log_path.read_text(errors="replace")
        )
        if match and int(match[-1]) != ls.port:
            ls.port = int(match[-1])
            ls.url = f"http://127.0.0.1:{ls.port}"
        try:
            if requests.get(f"{ls.url}/api/version", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise LSError(f"Label Studio did not answer within {timeout} s:\n{ls.log_tail()}")


# --------------------------------------------------------------------------------------------------------
# HTTP


class Client:
    """Calls Label Studio's HTTP API as one caller: a legacy token (`Authorization: Token`), an access JWT
    (`Authorization: Bearer`), or a browser-like session (cookies) after login()."""

    def __init__(self, base_url: str, *, token: str | None = None, bearer: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Token {token}"
        if bearer:
            self.http.headers["Authorization"] = f"Bearer {bearer}"

    # -- raw
    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        if method.upper() not in ("GET", "HEAD", "OPTIONS") and "csrftoken" in self.http.cookies:
            kwargs.setdefault("headers", {}).setdefault("X-CSRFToken", self.http.cookies["csrftoken"])
        return self.http.request(method, self.base_url + path, **kwargs)

    def json(self, method: str, path: str, *, expect: int | tuple[int, ...] = (200, 201), **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        expected = (expect,) if isinstance(expect, int) else expect
        if response.status_code not in expected:
            raise LSError(f"{method} {path} -> {response.status_code}, wanted {expected}: {response.text[:1000]}")
        return response.json() if response.content else None

    # -- sessions
    def login(self, email: str, password: str) -> str:
        """POST /user/login/ with the csrftoken cookie; returns the `sessionid` cookie value."""
        self.http.get(f"{self.base_url}/user/login/", timeout=30)
        csrf = self.http.cookies.get("csrftoken", "")
        response = self.http.post(
            f"{self.base_url}/user/login/",
            data={"csrfmiddlewaretoken": csrf, "email": email, "password": password, "persist_session": "on"},
            headers={"Referer": f"{self.base_url}/user/login/"},
            allow_redirects=False,
            timeout=30,
        )
        session = self.http.cookies.get("sessionid")
        if response.status_code != 302 or not session:
            raise LSError(f"login of {email} failed: {response.status_code} {response.text[:300]}")
        return session

    @property
    def sessionid(self) -> str | None:
        return self.http.cookies.get("sessionid")

    # -- tokens
    def legacy_token(self) -> str:
        return self.json("GET", "/api/current-user/token")["token"]

    def create_personal_access_token(self) -> str:
        """POST /api/token/ -> the full refresh JWT (LS keeps one live PAT per user: a second POST is refused)."""
        return self.json("POST", "/api/token/", json={}, expect=201)["token"]

    def refresh_access_token(self, refresh: str) -> str:
        return self.json("POST", "/api/token/refresh/", json={"refresh": refresh}, expect=200)["access"]

    def jwt_settings(self) -> dict:
        return self.json("GET", "/api/jwt/settings")

    def set_jwt_settings(self, *, legacy_api_tokens_enabled: bool, api_tokens_enabled: bool = True) -> dict:
        """For the caller's active organization (needs a caller LS still accepts, e.g. a session)."""
        body = {"legacy_api_tokens_enabled": legacy_api_tokens_enabled, "api_tokens_enabled": api_tokens_enabled}
        return self.json("POST", "/api/jwt/settings", json=body, expect=(200, 201))

    # -- data
    def create_project(self, title: str, label_config: str = IMAGE_CONFIG, **extra: Any) -> dict:
        return self.json("POST", "/api/projects/", json={"title": title, "label_config": label_config, **extra})

    def import_tasks(self, project_id: int, tasks: list[dict]) -> list[int]:
        """POST /api/projects/{id}/import?return_task_ids=true; tasks may carry annotations and predictions."""
        body = self.json("POST", f"/api/projects/{project_id}/import?return_task_ids=true", json=tasks, expect=201)
        return body["task_ids"]

    def create_annotation(
        self,
        task_id: int,
        result: list[dict],
        *,
        was_cancelled: bool = False,
        ground_truth: bool = False,
        lead_time: float | None = None,
        **extra: Any,
    ) -> dict:
        body: dict[str, Any] = {"result": result, "was_cancelled": was_cancelled, "ground_truth": ground_truth}
        if lead_time is not None:
            body["lead_time"] = lead_time
        body.update(extra)
        return self.json("POST", f"/api/tasks/{task_id}/annotations/", json=body, expect=201)

    def create_prediction(
        self, task_id: int, result: list[dict], *, score: float = 0.5, model_version: str = "v1"
    ) -> dict:
        body = {"task": task_id, "result": result, "score": score, "model_version": model_version}
        return self.json("POST", "/api/predictions/", json=body, expect=201)

    def create_draft(self, task_id: int, result: list[dict], *, lead_time: float = 1.0) -> dict:
        """A draft of the caller on a task (POST /api/tasks/{id}/drafts)."""
        return self.json(
            "POST", f"/api/tasks/{task_id}/drafts", json={"result": result, "lead_time": lead_time}, expect=201
        )

    def export(self, project_id: int, export_type: str = "JSON", **params: Any) -> requests.Response:
        """LS's own easy export, GET /api/projects/{id}/export?exportType=..., as the frontend calls it."""
        return self.request("GET", f"/api/projects/{project_id}/export", params={"exportType": export_type, **params})
