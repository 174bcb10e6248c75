"""Attach mode beside a real Label Studio 1.23.2 on PostgreSQL, behind nginx with the shipped config.

Label Studio's own export page (in headless Chromium) and the official SDK export through the service; the
files equal Label Studio's own exports; Label Studio's refusals are the service's; nothing is written to Label
Studio's database. Run with `./scripts/test.sh -m e2e tests/e2e` (the first run installs Label Studio into
~/.cache/lsexport, a few minutes).
"""

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
import requests
from label_studio_sdk import LabelStudio as SDK

from tests.e2e import browser
from tests.e2e import labelstudio as lsh
from tests.e2e.attach import AttachedService, Nginx, drop, grant_reader, recreate, server_url
from tests.e2e.stack import ROOT, wait_until

pytestmark = pytest.mark.e2e

LS_DATABASE = "lsharness_attach"
SERVICE_DATABASE = "lsexport_attach"
NO_RETRIES = {"max_retries": 0}


@dataclass
class World:
    ls: lsh.LabelStudio
    service: AttachedService
    nginx: Nginx
    admin: lsh.LSUser  # organization A
    carol: lsh.LSUser  # organization A too
    dave: lsh.LSUser  # organization A; made inactive by a test
    bob: lsh.LSUser  # organization B, whose legacy tokens are off (Label Studio's default)
    project: int  # organization A: annotated, skipped, ground truth, draft only, untouched tasks
    tasks: list[int]
    bob_project: int
    gone_project: int  # organization A, soft-deleted in Label Studio
    migrations_before: int


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    if not lsh.postgres_reachable():
        pytest.fail(f"The attach-mode suite needs PostgreSQL at {lsh.PG_URL}")
    ls = lsh.start_label_studio(database=LS_DATABASE)
    service = nginx = None
    admin_url = server_url(lsh.PG_URL, "postgres")
    try:
        admin = ls.client(token=ls.admin.token)
        project = admin.create_project("Cars", lsh.IMAGE_CONFIG)["id"]
        tasks = admin.import_tasks(project, [{"data": {"image": f"https://example.com/{i}.jpg"}} for i in range(6)])
        admin.create_annotation(tasks[0], lsh.rectangle("Car"), lead_time=2.5)
        admin.create_prediction(tasks[0], lsh.rectangle("Car", 11, 11), score=0.9, model_version="m1")
        admin.create_annotation(tasks[1], [], was_cancelled=True)
        admin.create_annotation(tasks[2], lsh.rectangle("Plane"), ground_truth=True)
        admin.create_draft(tasks[3], lsh.rectangle("Car"))
        admin.create_prediction(tasks[4], lsh.rectangle("Plane", 40, 40), score=0.2, model_version="m2")
        carol, carol_client = ls.signup("carol@example.com", "Carol-pass-123")
        carol_client.create_annotation(tasks[0], lsh.rectangle("Plane", 30, 30))
        dave, _ = ls.signup("dave@example.com", "Dave-pass-123")
        gone = admin.create_project("Gone", lsh.IMAGE_CONFIG)["id"]
        admin.import_tasks(gone, [{"data": {"image": "https://example.com/gone.jpg"}}])
        ls.sql("UPDATE project SET deleted_at = now() WHERE id = %s", (gone,))  # Label Studio's soft delete

        bob = ls.create_user_in_new_organization("bob@other.example.com", "Bob-pass-123", "Other Org")
        bob_session = ls.login(bob.email, bob.password)
        bob_project = bob_session.create_project("Reviews", lsh.TEXT_CONFIG)["id"]
        bob_tasks = bob_session.import_tasks(bob_project, [{"data": {"text": "good"}}, {"data": {"text": "bad"}}])
        bob_session.create_annotation(bob_tasks[0], lsh.choice("Positive"))

        migrations_before = ls.sql("SELECT count(*) FROM django_migrations")[0][0]
        reader_url = grant_reader(ls.database_url)
        recreate(admin_url, SERVICE_DATABASE)
        data_dir = tmp_path_factory.mktemp("attach")
        service = AttachedService(
            data_dir,
            database_url=server_url(lsh.PG_URL, SERVICE_DATABASE),
            label_studio_database_url=reader_url,
            label_studio_url=ls.url,
        )
        service.start()
        nginx = Nginx(data_dir, label_studio_port=ls.port, service_port=service.port)
        nginx.start()
        yield World(
            ls, service, nginx, ls.admin, carol, dave, bob, project, tasks, bob_project, gone, migrations_before
        )
    finally:
        for part in (nginx, service):
            if part is not None:
                part.stop()
        ls.stop(drop=True)
        drop(admin_url, SERVICE_DATABASE)


def sdk(world: World, key: str) -> SDK:
    return SDK(base_url=world.nginx.base, api_key=key, timeout=60)


def label_studio_export(world: World, project: int, export_type: str = "JSON", **params) -> bytes:
    """Label Studio's own easy export, asked of Label Studio directly (not through the proxy)."""
    response = world.ls.client(token=world.admin.token).export(project, export_type, **params)
    assert response.status_code == 200, response.text[:500]
    return response.content


# What both exports must agree on, task by task. Label Studio writes real comment counters and omits an unset
# `file_upload`; the service writes none of either (it keeps no comments).
TASK_KEYS = ("id", "data", "meta", "allow_skip", "inner_id", "total_annotations", "cancelled_annotations",
             "total_predictions", "project", "updated_by", "created_at", "updated_at", "predictions")  # fmt: skip
ANNOTATION_KEYS = ("id", "completed_by", "result", "was_cancelled", "ground_truth", "lead_time", "prediction",
                   "result_count", "task", "project", "created_at", "updated_at", "last_action")  # fmt: skip


def comparable(tasks: list[dict]) -> list[dict]:
    def pick(item: dict, keys) -> dict:
        return {key: item.get(key) for key in keys}

    return [
        {
            **pick(task, TASK_KEYS),
            "annotations": sorted((pick(a, ANNOTATION_KEYS) for a in task["annotations"]), key=lambda a: a["id"]),
            # drafts as ids: a snapshot writes ids by default, Label Studio's easy export whole drafts
            "drafts": sorted(d["id"] if isinstance(d, dict) else d for d in task.get("drafts") or []),
        }
        for task in sorted(tasks, key=lambda task: task["id"])
    ]


def csv_rows(body: bytes) -> list[dict]:
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
    return sorted(rows, key=lambda row: int(row["id"]))


def test_the_service_reads_label_studio_with_a_select_only_role_and_writes_nothing_there(world):
    assert world.ls.sql("SELECT count(*) FROM django_migrations")[0][0] == world.migrations_before
    tables = {row[0] for row in world.ls.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert not {"exports_export", "exports_convertedformat"} & tables
    readonly = subprocess.run(
        ["psql", "-Atc", "INSERT INTO organization (title, created_at, updated_at) VALUES ('x', now(), now())"],
        env={**os.environ, "PGDATABASE": LS_DATABASE, "PGUSER": "lsexport_reader", "PGHOST": "127.0.0.1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert readonly.returncode != 0
    assert "permission denied" in readonly.stderr


def test_start_up_refuses_a_database_without_label_studios_tables(world):
    env = {**world.service.env, "LABEL_STUDIO_DATABASE_URL": world.service.env["DATABASE_URL"]}
    started = subprocess.run(
        [sys.executable, "-c", "import config.wsgi"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert started.returncode != 0
    assert "lacks what this service reads" in started.stderr
    assert "task_completion" in started.stderr
    checked = subprocess.run(
        [sys.executable, "manage.py", "check", "--database", "labelstudio"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode != 0
    assert "labelstudio.E001" in checked.stderr
    good = subprocess.run(
        [sys.executable, "manage.py", "check", "--database", "labelstudio"],
        cwd=ROOT,
        env=world.service.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert good.returncode == 0, good.stderr


def test_sdk_snapshot_flow_through_the_proxy_with_a_legacy_token(world):
    client = sdk(world, world.admin.token)
    created = client.projects.exports.create(id=world.project, title="through the proxy", request_options=NO_RETRIES)
    assert created.status == "created"
    export = wait_until(
        lambda: (e := client.projects.exports.get(id=world.project, export_pk=created.id)).status == "completed" and e,
        timeout=60,
        what="the snapshot completing",
    )
    body = b"".join(client.projects.exports.download(id=world.project, export_pk=created.id))
    assert hashlib.md5(body).hexdigest() == export.md5  # noqa: S324
    ours = json.loads(body)
    theirs = json.loads(label_studio_export(world, world.project, download_all_tasks="true"))
    assert [task["id"] for task in ours] == sorted(world.tasks)
    assert comparable(ours) == comparable(theirs)
    assert export.counters["task_number"] == len(world.tasks)
    assert [item.id for item in client.projects.exports.list(id=world.project)] == [created.id]
    assert world.service.logged(f"/api/projects/{world.project}/exports/{created.id}/download")


def test_sdk_snapshot_flow_with_a_personal_access_token(world):
    refresh = world.ls.client(token=world.admin.token).create_personal_access_token()
    client = sdk(world, refresh)  # the SDK exchanges it at Label Studio's /api/token/refresh/ itself
    created = client.projects.exports.create(id=world.project, title="with a PAT", request_options=NO_RETRIES)
    export = wait_until(
        lambda: (e := client.projects.exports.get(id=world.project, export_pk=created.id)).status == "completed" and e,
        timeout=60,
        what="the snapshot completing",
    )
    assert export.created_by.id == world.admin.id
    body = b"".join(client.projects.exports.download(id=world.project, export_pk=created.id))
    assert hashlib.md5(body).hexdigest() == export.md5  # noqa: S324


@pytest.mark.parametrize("export_type", ["JSON", "CSV"])
def test_easy_export_through_the_proxy_equals_label_studios_own(world, export_type):
    response = requests.get(
        f"{world.nginx.base}/api/projects/{world.project}/export",
        params={"exportType": export_type},
        headers={"Authorization": f"Token {world.admin.token}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text[:500]
    assert response.headers["filename"].startswith(f"project-{world.project}-at-")
    theirs = label_studio_export(world, world.project, export_type)
    if export_type == "JSON":
        assert comparable(response.json()) == comparable(json.loads(theirs))
    else:
        assert csv_rows(response.content) == csv_rows(theirs)


def test_formats_and_files_answer_through_the_proxy(world):
    headers = {"Authorization": f"Token {world.admin.token}"}
    base = f"{world.nginx.base}/api/projects/{world.project}"
    formats = requests.get(f"{base}/export/formats", headers=headers, timeout=30)
    assert formats.status_code == 200
    assert formats.json()[0]["name"] == "JSON"
    files = requests.get(f"{base}/export/files", headers=headers, timeout=30)
    assert files.status_code == 200
    assert set(files.json()) == {"export_files"}
    assert world.service.logged(f"/api/projects/{world.project}/export/formats")
    assert world.service.logged(f"/api/projects/{world.project}/export/files")


@pytest.mark.skipif(
    not browser.browser_available() and not os.environ.get("REQUIRE_BROWSER"), reason="needs Debian's chromium"
)
def test_label_studios_export_page_exports_through_the_service_in_chromium(world, tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = browser.start_browser(downloads)
    try:
        browser.log_in(driver, world.nginx.base, world.admin.email, world.admin.password)
        session_before = browser.session_cookies(driver).get("sessionid")
        assert session_before
        saved = {}
        for export_type in ("JSON", "CSV"):
            saved[export_type] = browser.export_from_page(
                driver, world.nginx.base, world.project, export_type, downloads
            )
        assert browser.still_logged_in(driver, world.nginx.base)
    finally:
        driver.quit()
    assert world.service.logged(f"GET /api/projects/{world.project}/export?exportType=JSON")
    assert world.service.logged(f"GET /api/projects/{world.project}/export?exportType=CSV")
    assert world.service.logged(f"GET /api/projects/{world.project}/export/files")
    assert saved["JSON"].name.startswith(f"project-{world.project}-at-")
    ours = json.loads(saved["JSON"].read_bytes())
    assert comparable(ours) == comparable(json.loads(label_studio_export(world, world.project, "JSON")))
    assert csv_rows(saved["CSV"].read_bytes()) == csv_rows(label_studio_export(world, world.project, "CSV"))


def status_of(world: World, path: str, **kwargs) -> int:
    return requests.get(f"{world.nginx.base}{path}", timeout=30, **kwargs).status_code


def test_callers_label_studio_refuses_are_refused(world):
    paths = [
        f"/api/projects/{world.project}/exports/",
        f"/api/projects/{world.project}/export/formats",
        f"/api/projects/{world.project}/export?exportType=JSON",
    ]
    for path in paths:
        assert status_of(world, path) == 401  # no credentials
        assert status_of(world, path, headers={"Authorization": "Token not-a-token"}) == 401
        # bob's organization has legacy tokens off, as Label Studio's new organizations do
        assert status_of(world, path, headers={"Authorization": f"Token {world.bob.token}"}) == 401
        assert status_of(world, path, cookies={"sessionid": "forged"}) == 401
    response = requests.get(f"{world.nginx.base}{paths[0]}", cookies={"sessionid": "forged"}, timeout=30)
    assert "sessionid" not in response.headers.get("Set-Cookie", "")  # never cleared, set or refreshed by us


def test_other_organizations_and_deleted_projects_are_404(world):
    bob = world.ls.login(world.bob.email, world.bob.password)
    access = world.ls.client().refresh_access_token(bob.create_personal_access_token())
    bearer = {"Authorization": f"Bearer {access}"}
    assert status_of(world, f"/api/projects/{world.bob_project}/exports/", headers=bearer) == 200
    for path in ("exports/", "export/formats", "export/files", "export?exportType=JSON"):
        assert status_of(world, f"/api/projects/{world.project}/{path}", headers=bearer) == 404
    own = {"Authorization": f"Token {world.admin.token}"}
    assert status_of(world, f"/api/projects/{world.gone_project}/exports/", headers=own) == 404
    assert status_of(world, f"/api/projects/{world.bob_project}/exports/", headers=own) == 404


def test_a_removed_membership_and_an_inactive_user_lose_access(world):
    carol = world.ls.login(world.carol.email, world.carol.password)
    carol_token = carol.legacy_token()
    dave = world.ls.login(world.dave.email, world.dave.password)
    dave_token = dave.legacy_token()
    path = f"/api/projects/{world.project}/exports/"
    assert status_of(world, path, headers={"Authorization": f"Token {carol_token}"}) == 200
    assert status_of(world, path, headers={"Authorization": f"Token {dave_token}"}) == 200

    world.ls.sql("UPDATE organizations_organizationmember SET deleted_at = now() WHERE user_id = %s", (world.carol.id,))
    world.ls.sql("UPDATE htx_user SET is_active = false WHERE id = %s", (world.dave.id,))
    time.sleep(1.2)  # LABEL_STUDIO_AUTH_CACHE_SECONDS=1 in this suite
    assert status_of(world, path, headers={"Authorization": f"Token {carol_token}"}) == 404
    assert status_of(world, path, headers={"Authorization": f"Token {dave_token}"}) == 401
