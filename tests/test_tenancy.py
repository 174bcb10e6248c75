"""Anything outside the caller's active organization does not exist for them: 404 on every endpoint and method."""

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from exports import storage
from exports.models import Export
from projects.models import Project
from tests.exports.helpers import create_export
from tests.factories import IMAGE_CONFIG, fill_project, make_project, rectangle, task_payload
from users.models import OrganizationMember
from users.services import access_token_issue, personal_token_create

pytestmark = pytest.mark.django_db

ERROR_KEYS = {"id", "status_code", "version", "detail", "exc_info"}
TASKS = 3

# (method, url name, the URL names an export)
ENDPOINTS = [
    ("get", "project-detail", False),
    ("patch", "project-detail", False),
    ("put", "project-detail", False),
    ("delete", "project-detail", False),
    ("get", "project-annotators", False),
    ("post", "project-duplicate", False),
    ("post", "project-label-config-validate", False),
    ("post", "project-import", False),
    ("post", "project-import-predictions", False),
    ("get", "project-export-formats", False),
    ("get", "project-export-files", False),
    ("get", "project-export", False),
    ("get", "project-exports-list", False),
    ("post", "project-exports-list", False),
    ("get", "project-exports-detail", True),
    ("delete", "project-exports-detail", True),
    ("get", "project-exports-download", True),
    ("head", "project-exports-download", True),
    ("post", "project-exports-convert", True),
]
EXPORT_ENDPOINTS = [case for case in ENDPOINTS if case[2]]


@pytest.fixture
def project(user):
    project = make_project(user=user, title="Secret A")
    fill_project(project, user=user, count=TASKS)
    return project


@pytest.fixture
def export(api_client, project, django_capture_on_commit_callbacks):
    created = create_export(api_client, project, django_capture_on_commit_callbacks)
    export = Export.objects.get(pk=created["id"])
    assert export.status == "completed"
    assert storage.export_storage().exists(export.file)
    return export


@pytest.fixture
def other_project(other_user):
    project = make_project(user=other_user, title="Own B")
    fill_project(project, user=other_user, count=1)
    return project


def url_for(name, project_id, export_id=None, *, other_slash=False) -> str:
    kwargs = {"pk": project_id}
    if export_id is not None:
        kwargs["export_pk"] = export_id
    url = reverse(name, kwargs=kwargs)
    if other_slash:
        url = url[:-1] if url.endswith("/") else f"{url}/"
    return url


def body_for(method, name, project) -> object:
    """A valid body for the request, so that only the organization check can refuse it."""
    if method in ("patch", "put"):
        return {"title": "Taken over", "label_config": IMAGE_CONFIG}
    if name == "project-import":
        return [task_payload(99)]
    if name == "project-duplicate":
        return {"mode": "settings,data", "title": "Stolen"}
    if name == "project-label-config-validate":
        return {"label_config": IMAGE_CONFIG}
    if name == "project-exports-convert":
        return {"export_type": "CSV"}
    if name == "project-import-predictions":
        task_id = project.tasks.order_by("id").values_list("id", flat=True).first()
        return [{"task": task_id, "result": [rectangle("Person")], "score": 0.1, "model_version": "evil"}]
    if method == "post":
        return {"title": "Stolen"}
    return None


def send(client, method, url, body):
    if body is None:
        return getattr(client, method)(url)
    return getattr(client, method)(url, body, format="json")


def assert_json_404(response, method):
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    if method == "head":
        return
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["status_code"] == 404
    assert body["exc_info"] is None
    assert body["detail"]


def assert_untouched(project, export, *, tasks=TASKS):
    project.refresh_from_db()
    assert project.title == "Secret A"
    assert project.label_config == IMAGE_CONFIG
    assert project.tasks.count() == tasks
    assert project.predictions.count() == tasks
    assert not project.predictions.filter(model_version="evil").exists()
    assert list(project.exports.values_list("pk", flat=True)) == [export.pk]
    export.refresh_from_db()
    assert export.status == "completed"
    assert not export.converted_formats.exists()
    assert storage.export_storage().exists(export.file)


@pytest.mark.parametrize("other_slash", [False, True], ids=["named", "other-slash"])
@pytest.mark.parametrize(("method", "name", "needs_export"), ENDPOINTS)
def test_other_organization_gets_404(
    other_client, project, export, django_capture_on_commit_callbacks, method, name, needs_export, other_slash
):
    url = url_for(name, project.pk, export.pk if needs_export else None, other_slash=other_slash)
    with django_capture_on_commit_callbacks(execute=True):
        response = send(other_client, method, url, body_for(method, name, project))
    assert_json_404(response, method)
    assert_untouched(project, export)


@pytest.mark.parametrize(("method", "name", "needs_export"), ENDPOINTS)
def test_the_owner_reaches_every_endpoint_of_the_matrix(
    api_client, project, export, django_capture_on_commit_callbacks, method, name, needs_export
):
    """The control for the matrix: the same request from the owner is not a 404, so the URLs are real."""
    url = url_for(name, project.pk, export.pk if needs_export else None)
    with django_capture_on_commit_callbacks(execute=True):
        response = send(api_client, method, url, body_for(method, name, project))
    assert response.status_code in (200, 201, 204), response.content


@pytest.mark.parametrize(("method", "name", "needs_export"), EXPORT_ENDPOINTS)
def test_export_of_another_organization_through_own_project_is_404(
    other_client, project, export, other_project, django_capture_on_commit_callbacks, method, name, needs_export
):
    """B's own project id with A's export id: the export is looked up inside the project, so it does not exist."""
    url = url_for(name, other_project.pk, export.pk)
    with django_capture_on_commit_callbacks(execute=True):
        response = send(other_client, method, url, None)
    assert_json_404(response, method)
    assert_untouched(project, export)
    assert other_project.exports.count() == 0


@pytest.mark.parametrize(("method", "name", "needs_export"), EXPORT_ENDPOINTS)
def test_own_export_through_another_project_of_the_same_organization_is_404(
    api_client, user, project, export, method, name, needs_export
):
    """Even inside one organization an export answers only under its own project."""
    sibling = make_project(user=user, title="Sibling A")
    response = send(api_client, method, url_for(name, sibling.pk, export.pk), None)
    assert_json_404(response, method)
    assert_untouched(project, export)


def test_all_attempts_together_leave_everything_in_place(
    other_client, project, export, other_project, django_capture_on_commit_callbacks
):
    for method, name, needs_export in ENDPOINTS:
        for project_id in (project.pk, other_project.pk) if needs_export else (project.pk,):
            url = url_for(name, project_id, export.pk if needs_export else None)
            with django_capture_on_commit_callbacks(execute=True):
                response = send(other_client, method, url, body_for(method, name, project))
            assert_json_404(response, method)
    assert_untouched(project, export)
    assert Project.objects.filter(organization=project.organization).count() == 1
    assert Project.objects.count() == 2
    assert Export.objects.count() == 1
    download = send(other_client, "get", url_for("project-exports-download", project.pk, export.pk), None)
    assert_json_404(download, "get")


@pytest.mark.parametrize("name", ["project-list", "project-counts"])
@pytest.mark.parametrize("query", ["", "?title=Secret", "?page_size=100", "?ordering=-id"])
def test_lists_of_another_organization_do_not_contain_the_project(other_client, project, other_project, name, query):
    response = other_client.get(reverse(name) + query)
    assert response.status_code == 200
    body = response.json()
    ids = [item["id"] for item in body["results"]]
    assert project.pk not in ids
    if query == "?title=Secret":
        assert body["count"] == 0
    else:
        assert ids == [other_project.pk]
        assert body["count"] == 1


@pytest.mark.parametrize("name", ["project-list", "project-counts"])
def test_lists_of_the_owner_contain_only_its_organization(api_client, project, other_project, name):
    ids = [item["id"] for item in api_client.get(reverse(name)).json()["results"]]
    assert ids == [project.pk]


def switch_organization(user, organization):
    OrganizationMember.objects.get_or_create(user=user, organization=organization)
    user.active_organization = organization
    user.save(update_fields=["active_organization"])


def test_switching_the_active_organization_hides_the_old_one(api_client, user, project, export, other_project):
    """Membership is not enough: only the active organization's projects exist for the user."""
    switch_organization(user, other_project.organization)
    assert OrganizationMember.objects.filter(user=user, organization=project.organization).exists()

    for method, name, needs_export in ENDPOINTS:
        if method not in ("get", "head"):
            continue
        response = send(api_client, method, url_for(name, project.pk, export.pk if needs_export else None), None)
        assert_json_404(response, method)
    for name in ("project-list", "project-counts"):
        ids = [item["id"] for item in api_client.get(reverse(name)).json()["results"]]
        assert ids == [other_project.pk]
    assert api_client.get(url_for("project-detail", other_project.pk)).status_code == 200

    switch_organization(user, project.organization)
    assert api_client.get(url_for("project-detail", project.pk)).status_code == 200
    assert api_client.get(url_for("project-exports-download", project.pk, export.pk)).status_code == 200
    ids = [item["id"] for item in api_client.get(reverse("project-list")).json()["results"]]
    assert ids == [project.pk]


def test_switched_user_cannot_write_into_the_old_organization(
    api_client, user, project, export, other_project, django_capture_on_commit_callbacks
):
    switch_organization(user, other_project.organization)
    for method, name, needs_export in ENDPOINTS:
        if method in ("get", "head"):
            continue
        url = url_for(name, project.pk, export.pk if needs_export else None)
        with django_capture_on_commit_callbacks(execute=True):
            response = send(api_client, method, url, body_for(method, name, project))
        assert_json_404(response, method)
    assert_untouched(project, export)


def test_new_project_lands_in_the_active_organization(api_client, user, project, other_project):
    switch_organization(user, other_project.organization)
    response = api_client.post(reverse("project-list"), {"title": "Made in B"}, format="json")
    assert response.status_code == 201
    assert Project.objects.get(pk=response.json()["id"]).organization == other_project.organization


def test_user_without_an_active_organization_sees_nothing(api_client, user, project, export):
    user.active_organization = None
    user.save(update_fields=["active_organization"])
    assert api_client.get(reverse("project-list")).json()["count"] == 0
    assert_json_404(api_client.get(url_for("project-detail", project.pk)), "get")
    assert_json_404(api_client.get(url_for("project-exports-download", project.pk, export.pk)), "get")


def test_predictions_for_tasks_of_another_organization_are_refused(other_client, project, export, other_project):
    """Label Studio lets another organization write predictions into your tasks through its own project; not here."""
    task_id = project.tasks.order_by("id").values_list("id", flat=True).first()
    url = url_for("project-import-predictions", other_project.pk)
    response = other_client.post(url, body_for("post", "project-import-predictions", project), format="json")
    assert response.status_code == 400
    assert response.json()["status_code"] == 400
    assert not project.predictions.filter(task_id=task_id, model_version="evil").exists()
    assert other_project.predictions.count() == 1
    assert_untouched(project, export)


@pytest.mark.parametrize("method", ["post", "patch"])
def test_organization_in_the_body_is_ignored(other_client, project, other_project, method):
    """A client cannot move a project into (or create one in) an organization by naming it."""
    body = {"title": "Planted", "organization": project.organization_id}
    if method == "post":
        response = other_client.post(reverse("project-list"), body, format="json")
        assert response.status_code == 201
    else:
        response = other_client.patch(url_for("project-detail", other_project.pk), body, format="json")
        assert response.status_code == 200
    planted = Project.objects.get(pk=response.json()["id"])
    assert planted.organization == other_project.organization
    assert response.json()["organization"] == other_project.organization_id
    assert list(Project.objects.filter(organization=project.organization)) == [project]


def test_user_without_an_active_organization_cannot_create_a_project(api_client, user):
    user.active_organization = None
    user.save(update_fields=["active_organization"])
    api_client.raise_request_exception = False
    response = api_client.post(reverse("project-list"), {"title": "Nowhere"}, format="json")
    assert 400 <= response.status_code < 500
    assert response.json()["status_code"] == response.status_code
    assert Project.objects.count() == 0


@pytest.mark.parametrize("scheme", ["Token", "Bearer"])
def test_a_removed_member_loses_the_organization_at_once(api_client, user, project, export, scheme):
    """The active organization counts only while the membership exists: removing a member (say, in the admin)
    hides the organization's projects and snapshots on every read, without touching the user row."""
    client = api_client
    if scheme == "Bearer":
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_issue(refresh=personal_token_create(user=user))}")
    assert client.get(url_for("project-detail", project.pk)).status_code == 200

    OrganizationMember.objects.filter(user=user, organization=project.organization).delete()
    user.refresh_from_db()
    assert user.active_organization_id == project.organization_id  # the row still points at it

    for method, name, needs_export in ENDPOINTS:
        if method not in ("get", "head"):
            continue
        response = send(client, method, url_for(name, project.pk, export.pk if needs_export else None), None)
        assert_json_404(response, method)
    assert client.get(reverse("project-list")).json()["results"] == []


def test_a_removed_member_loses_the_organization_in_a_session_too(user, project):
    """The admin and the browsable API authenticate by session; the same membership rule applies there."""
    client = Client()
    client.force_login(user)
    assert client.get(url_for("project-detail", project.pk)).status_code == 200
    OrganizationMember.objects.filter(user=user, organization=project.organization).delete()
    assert_json_404(client.get(url_for("project-detail", project.pk)), "get")
    assert client.get(reverse("project-list")).json()["results"] == []
