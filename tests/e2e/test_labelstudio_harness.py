"""The Label Studio 1.23.2 harness (tests/e2e/labelstudio.py) against a real Label Studio: two organizations'
data made through its own API, and the callers it accepts (legacy token, PAT access JWT, session cookie),
checked the way attach mode will have to check them.

Run with `.venv/bin/python -m pytest -m e2e tests/e2e/test_labelstudio_harness.py`. The first run installs
label-studio into ~/.cache/lsexport (minutes) and migrates a template database (about 30 s); later runs start
Label Studio from a copy in a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt
import pytest
from django.core import signing
from django.utils.crypto import salted_hmac

from tests.e2e import labelstudio as lsh

pytestmark = pytest.mark.e2e

DATABASE = "lsharness_e2e"

TASK_KEYS = [
    "id", "annotations", "drafts", "predictions", "data", "meta", "created_at", "updated_at", "allow_skip",
    "inner_id", "total_annotations", "cancelled_annotations", "total_predictions", "comment_count",
    "unresolved_comment_count", "last_comment_updated_at", "project", "updated_by", "comment_authors",
]  # fmt: skip
ANNOTATION_KEYS = [
    "id", "completed_by", "result", "was_cancelled", "ground_truth", "created_at", "updated_at",
    "draft_created_at", "lead_time", "prediction", "result_count", "unique_id", "import_id", "last_action",
    "bulk_created", "task", "project", "updated_by", "parent_prediction", "parent_annotation", "last_created_by",
]  # fmt: skip


@dataclass
class World:
    ls: lsh.LabelStudio
    admin: lsh.LSUser  # first organization ("Label Studio"), legacy tokens enabled
    carol: lsh.LSUser  # signed up through /user/signup/, so also in the first organization
    bob: lsh.LSUser  # alone in a second organization, legacy tokens disabled (LS's default for new ones)
    project: int  # admin's, five tasks
    tasks: list[int]  # annotated+predicted, skipped, ground truth, draft only, untouched
    bob_project: int


@pytest.fixture(scope="module")
def world():
    if not lsh.postgres_reachable():
        pytest.skip(f"PostgreSQL is not reachable at {lsh.PG_URL}")
    ls = lsh.start_label_studio(database=DATABASE)
    try:
        admin = ls.client(token=ls.admin.token)
        project = admin.create_project("Cars", lsh.IMAGE_CONFIG)["id"]
        tasks = admin.import_tasks(project, [{"data": {"image": f"https://example.com/{i}.jpg"}} for i in range(5)])
        admin.create_annotation(tasks[0], lsh.rectangle("Car"), lead_time=2.5)
        admin.create_prediction(tasks[0], lsh.rectangle("Car", 11, 11), score=0.9, model_version="m1")
        admin.create_annotation(tasks[1], [], was_cancelled=True)
        admin.create_annotation(tasks[2], lsh.rectangle("Plane"), ground_truth=True)
        admin.create_draft(tasks[3], lsh.rectangle("Car"))

        carol, carol_client = ls.signup("carol@example.com", "Carol-pass-123")
        carol_client.create_annotation(tasks[0], lsh.rectangle("Plane", 30, 30))

        bob = ls.create_user_in_new_organization("bob@other.example.com", "Bob-pass-123", "Other Org")
        bob_session = ls.login(bob.email, bob.password)
        bob_project = bob_session.create_project("Reviews", lsh.TEXT_CONFIG)["id"]
        bob_tasks = bob_session.import_tasks(bob_project, [{"data": {"text": "good"}}, {"data": {"text": "bad"}}])
        bob_session.create_annotation(bob_tasks[0], lsh.choice("Positive"))
        bob_session.create_prediction(bob_tasks[1], lsh.choice("Negative"), score=0.4)

        yield World(ls, ls.admin, carol, bob, project, tasks, bob_project)
    finally:
        ls.stop(drop=True)


def _log(world: World) -> str:
    return f"\n--- {world.ls.log_path} ---\n{world.ls.log_tail(30)}"


def test_two_organizations(world):
    ls = world.ls
    assert world.admin.organization_id == world.carol.organization_id != world.bob.organization_id
    rows = ls.sql("SELECT user_id, organization_id, deleted_at FROM organizations_organizationmember ORDER BY user_id")
    assert rows == sorted((user.id, user.organization_id, None) for user in (world.admin, world.carol, world.bob))
    legacy = dict(ls.sql("SELECT organization_id, legacy_api_tokens_enabled FROM jwt_auth_jwtsettings"))
    assert legacy == {world.admin.organization_id: True, world.bob.organization_id: False}


def test_legacy_token_lists_projects(world):
    ls = world.ls
    response = ls.client(token=world.admin.token).request("GET", "/api/projects/")
    assert response.status_code == 200, _log(world)
    assert [p["id"] for p in response.json()["results"]] == [world.project]

    bob = ls.client(token=world.bob.token)
    refused = bob.request("GET", "/api/projects/")
    assert refused.status_code == 401
    assert "legacy token authentication has been disabled" in refused.json()["detail"]
    ls.set_legacy_tokens_sql(world.bob.organization_id, True)
    try:
        assert [p["id"] for p in bob.json("GET", "/api/projects/")["results"]] == [world.bob_project]
    finally:
        # the same switch through LS's own API, as the organization's user (a session)
        settings = ls.login(world.bob.email, world.bob.password).set_jwt_settings(legacy_api_tokens_enabled=False)
        assert settings == {"api_tokens_enabled": True, "legacy_api_tokens_enabled": False}
    assert bob.request("GET", "/api/projects/").status_code == 401


def test_pat_refresh_gives_an_access_jwt_that_works_as_bearer(world):
    ls = world.ls
    refresh = ls.client(token=world.admin.token).create_personal_access_token()
    access = ls.client().refresh_access_token(refresh)

    claims = jwt.decode(access, ls.secret_key, algorithms=["HS256"])  # signed with LS's SECRET_KEY
    assert claims["token_type"] == "access"
    assert claims["user_id"] == str(world.admin.id)  # a string
    assert claims["exp"] - claims["iat"] == 300
    assert set(claims) == {"token_type", "exp", "iat", "jti", "user_id"}
    refresh_claims = jwt.decode(refresh, ls.secret_key, algorithms=["HS256"])
    assert refresh_claims["token_type"] == "refresh"
    stored = ls.sql("SELECT jti, token FROM token_blacklist_outstandingtoken WHERE user_id = %s", (world.admin.id,))
    assert stored == [(refresh_claims["jti"], refresh.rsplit(".", 1)[0])]  # kept without its signature

    bearer = ls.client(bearer=access)
    response = bearer.request("GET", "/api/projects/")
    assert response.status_code == 200, _log(world)
    assert [p["id"] for p in response.json()["results"]] == [world.project]
    assert bearer.request("GET", f"/api/projects/{world.bob_project}").status_code == 404
    assert ls.client(bearer=refresh).request("GET", "/api/projects/").status_code == 401


def test_blacklisted_pat_cannot_refresh_but_its_access_token_still_works(world):
    ls = world.ls
    bob = ls.login(world.bob.email, world.bob.password)
    refresh = bob.create_personal_access_token()
    access = bob.refresh_access_token(refresh)
    assert bob.request("POST", "/api/token/blacklist/", json={"refresh": refresh}).status_code == 204
    again = ls.client().request("POST", "/api/token/refresh/", json={"refresh": refresh})
    assert again.status_code == 401
    assert ls.client(bearer=access).request("GET", f"/api/projects/{world.bob_project}").status_code == 200


def test_session_cookie_opens_the_project(world):
    ls = world.ls
    login = ls.login(world.admin.email, world.admin.password)
    cookie = login.sessionid
    assert cookie
    assert cookie.startswith(".")  # compressed signed cookie, no server-side session row

    browser = lsh.Client(ls.url)
    browser.http.cookies.set("sessionid", cookie)
    response = browser.request("GET", f"/api/projects/{world.project}")
    assert response.status_code == 200, _log(world)
    assert response.json()["task_number"] == len(world.tasks)
    assert browser.request("GET", f"/api/projects/{world.bob_project}").status_code == 404
    assert ls.sql("SELECT count(*) FROM django_session") == [(0,)]

    session = signing.loads(
        cookie, key=ls.secret_key, salt=lsh.SESSION_SALT, serializer=signing.JSONSerializer, fallback_keys=[]
    )
    assert session["_auth_user_id"] == str(world.admin.id)
    assert session["_auth_user_backend"] == "django.contrib.auth.backends.ModelBackend"
    [(password,)] = ls.sql("SELECT password FROM htx_user WHERE id = %s", (world.admin.id,))
    expected = salted_hmac(
        "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash", password, secret=ls.secret_key,
        algorithm="sha256",
    ).hexdigest()  # fmt: skip
    assert session["_auth_user_hash"] == expected
    assert {"uid", "organization_pk", "last_login"} <= set(session)

    # a cookie we sign ourselves with LS's key is as good as LS's own
    forged = signing.dumps(
        {"_auth_user_id": str(world.admin.id), "_auth_user_backend": session["_auth_user_backend"],
         "_auth_user_hash": expected, "last_login": session["last_login"]},
        key=ls.secret_key, salt=lsh.SESSION_SALT, serializer=signing.JSONSerializer, compress=True,
    )  # fmt: skip
    other = lsh.Client(ls.url)
    other.http.cookies.set("sessionid", forged)
    assert other.request("GET", f"/api/projects/{world.project}").status_code == 200


def test_inactive_user_is_refused_every_way(world):
    ls = world.ls
    carol_session = ls.login(world.carol.email, world.carol.password)
    access = carol_session.refresh_access_token(carol_session.create_personal_access_token())
    callers = {
        "token": ls.client(token=world.carol.token),
        "bearer": ls.client(bearer=access),
        "session": carol_session,
    }
    path = f"/api/projects/{world.project}"
    assert {name: c.request("GET", path).status_code for name, c in callers.items()} == dict.fromkeys(callers, 200)
    ls.sql("UPDATE htx_user SET is_active = false WHERE id = %s", (world.carol.id,))
    try:
        assert {name: c.request("GET", path).status_code for name, c in callers.items()} == dict.fromkeys(callers, 401)
    finally:
        ls.sql("UPDATE htx_user SET is_active = true WHERE id = %s", (world.carol.id,))

    # a removed membership: LS itself answers 403 on the project (attach mode answers 404) but still lists it
    ls.sql("UPDATE organizations_organizationmember SET deleted_at = now() WHERE user_id = %s", (world.carol.id,))
    try:
        assert callers["token"].request("GET", path).status_code == 403
        assert callers["token"].json("GET", "/api/projects/")["count"] == 1
    finally:
        ls.sql("UPDATE organizations_organizationmember SET deleted_at = NULL WHERE user_id = %s", (world.carol.id,))


def test_label_studio_export_returns_the_tasks(world):
    ls = world.ls
    browser = lsh.Client(ls.url)
    browser.login(world.admin.email, world.admin.password)
    response = browser.export(world.project, "JSON")
    assert response.status_code == 200, _log(world)
    filename = response.headers["filename"]
    assert filename.startswith(f"project-{world.project}-at-")
    assert filename.endswith(".json")
    assert f'filename="{filename}"' in response.headers["Content-Disposition"]

    exported = {task["id"]: task for task in response.json()}
    # only tasks with any annotation, a skipped one included; the draft-only and untouched ones left out
    assert sorted(exported) == sorted(world.tasks[:3])
    first = exported[world.tasks[0]]
    assert list(first) == TASK_KEYS
    assert len(first["annotations"]) == 2
    assert list(first["annotations"][0]) == ANNOTATION_KEYS
    assert {a["completed_by"] for a in first["annotations"]} == {world.admin.id, world.carol.id}
    [prediction_id] = first["predictions"]  # ids only
    assert isinstance(prediction_id, int)
    assert exported[world.tasks[1]]["annotations"][0]["was_cancelled"] is True
    assert exported[world.tasks[2]]["annotations"][0]["ground_truth"] is True

    everything = {t["id"]: t for t in browser.export(world.project, "JSON", download_all_tasks="true").json()}
    assert sorted(everything) == sorted(world.tasks)
    [draft] = everything[world.tasks[3]]["drafts"]  # drafts come expanded
    assert draft["user"] == world.admin.email
    assert draft["task"] == world.tasks[3]

    subset = browser.request(
        "GET", f"/api/projects/{world.project}/export", params={"exportType": "JSON", "ids[]": world.tasks[2]}
    )
    assert [t["id"] for t in subset.json()] == [world.tasks[2]]

    formats = browser.json("GET", f"/api/projects/{world.project}/export/formats")
    assert formats[0]["name"] == "JSON"
    assert browser.json("GET", f"/api/projects/{world.project}/export/files") == {"export_files": []}
    assert browser.request("GET", f"/api/projects/{world.bob_project}/export").status_code == 404


def test_is_labeled_follows_the_skip_queue_rule(world):
    rows = dict(world.ls.sql("SELECT id, is_labeled FROM task WHERE project_id = %s", (world.project,)))
    # skip_queue REQUEUE_FOR_OTHERS (the default): a skipped annotation does not finish the task
    assert [rows[t] for t in world.tasks] == [True, False, True, False, False]
    assert world.ls.sql("SELECT skip_queue FROM project WHERE id = %s", (world.project,)) == [("REQUEUE_FOR_OTHERS",)]
