"""The error contract: every failure is Label Studio's JSON body, with the right status, in the right order."""

import uuid
from importlib import metadata

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from config.api.parsers import MAX_DEPTH
from exports.models import Export
from projects.models import Project
from tests.exports.helpers import create_export
from tests.factories import fill_project, make_project, task_payload

pytestmark = pytest.mark.django_db

ERROR_KEYS = ["id", "status_code", "version", "detail", "exc_info"]
NOT_PROVIDED = "Authentication credentials were not provided."
BIG_ID = "9" * 30


@pytest.fixture
def project(user):
    project = make_project(user=user, title="Errors")
    fill_project(project, user=user, count=2)
    return project


@pytest.fixture
def export(api_client, project, django_capture_on_commit_callbacks):
    return Export.objects.get(pk=create_export(api_client, project, django_capture_on_commit_callbacks)["id"])


@pytest.fixture
def anonymous():
    return APIClient()


def client_with(header: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    return client


def assert_error(response, status_code: int, detail: str | None = None) -> dict:
    """The JSON error body: {id, status_code, version, detail, exc_info}, plus validation_errors on 400s."""
    assert response.status_code == status_code, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert list(body)[:5] == ERROR_KEYS
    assert uuid.UUID(body["id"]).version == 4
    assert body["status_code"] == status_code
    assert body["version"] == metadata.version("ls-export-service")
    assert body["exc_info"] is None
    if detail is not None:
        assert body["detail"] == detail
    return body


def assert_401(response, detail: str) -> None:
    assert_error(response, 401, detail)
    assert response["WWW-Authenticate"] == "Token"


# --- 401 ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        (None, NOT_PROVIDED),
        ("Token wrongtoken000000000000000", "Invalid token."),
        ("Token", "Invalid token header. No credentials provided."),
        ("Token a b", "Invalid token header. Token string should not contain spaces."),
        ("Token abc\x00def", "Invalid token."),
        ("Token " + "a" * 41, "Invalid token."),
        ("Bearer {key}", NOT_PROVIDED),
        ("Basic {key}", NOT_PROVIDED),
        ("{key}", NOT_PROVIDED),
    ],
    ids=[
        "no-header",
        "wrong-token",
        "token-alone",
        "token-two-parts",
        "token-with-nul",
        "token-too-long",
        "bearer-scheme",
        "basic-scheme",
        "bare-key",
    ],
)
def test_bad_credentials_are_a_401(user, project, export, header, detail):
    key = Token.objects.get(user=user).key
    client = APIClient() if header is None else client_with(header.format(key=key))
    assert_401(client.get(reverse("project-exports-detail", kwargs={"pk": project.pk, "export_pk": export.pk})), detail)


@pytest.mark.parametrize("scheme", ["Token", "token", "TOKEN"])
def test_the_scheme_word_is_case_insensitive(user, project, export, scheme):
    key = Token.objects.get_or_create(user=user)[0].key
    client = client_with(f"{scheme} {key}")
    response = client.get(reverse("project-exports-detail", kwargs={"pk": project.pk, "export_pk": export.pk}))
    assert response.status_code == 200
    assert response.json()["id"] == export.pk


def test_token_of_an_inactive_user_is_a_401(api_client, user, project):
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert_401(api_client.get(reverse("project-detail", kwargs={"pk": project.pk})), "User inactive or deleted.")


@pytest.mark.parametrize(
    ("method", "name", "needs_export"),
    [
        ("get", "project-list", None),
        ("post", "project-list", None),
        ("get", "project-counts", None),
        ("get", "project-detail", False),
        ("patch", "project-detail", False),
        ("put", "project-detail", False),
        ("delete", "project-detail", False),
        ("post", "project-import", False),
        ("post", "project-import-predictions", False),
        ("get", "project-exports-list", False),
        ("post", "project-exports-list", False),
        ("get", "project-exports-detail", True),
        ("delete", "project-exports-detail", True),
        ("get", "project-exports-download", True),
    ],
)
def test_every_endpoint_answers_401_without_credentials(anonymous, project, export, method, name, needs_export):
    kwargs = {} if needs_export is None else {"pk": project.pk}
    if needs_export:
        kwargs["export_pk"] = export.pk
    assert_401(getattr(anonymous, method)(reverse(name, kwargs=kwargs), {}, format="json"), NOT_PROVIDED)
    assert Export.objects.filter(pk=export.pk).exists()
    assert project.tasks.count() == 2


def test_head_download_without_credentials_is_a_401(anonymous, project, export):
    response = anonymous.head(reverse("project-exports-download", kwargs={"pk": project.pk, "export_pk": export.pk}))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_401_for_a_browser_keeps_the_header_and_detail(anonymous):
    """A client that prefers HTML (a browser) still gets the 401 contract: WWW-Authenticate and DRF's detail."""
    assert_401(anonymous.get(reverse("project-list"), HTTP_ACCEPT="text/html"), NOT_PROVIDED)


# --- 404 on unmatched URLs ---------------------------------------------------------------------------------------

UNMATCHED = [
    "/api/nope",
    "/api/nope/",
    "/api/projects/abc/",
    "/api/projects/abc",
    "/api/projects/1.5/",
    "/api/projects/-1/",
    f"/api/projects/{BIG_ID}/",
    f"/api/projects/{BIG_ID}/exports/",
    "/api/projects/{pk}/exports/abc",
    "/api/projects/{pk}/exports/-1",
    "/api/projects/{pk}/exports/-1/download",
    f"/api/projects/{{pk}}/exports/{BIG_ID}",
    "/api/projects/{pk}/nope",
    "/api/projects/{pk}/exports/{export_pk}/download/extra",
    "/api/",
    "/api",
    "/totally/unknown",
    "/",
]


@pytest.mark.parametrize("raw", UNMATCHED)
@pytest.mark.parametrize("authenticated", [True, False], ids=["token", "anonymous"])
@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_unmatched_urls_are_a_json_404(api_client, anonymous, project, export, raw, authenticated, method):
    """Checked before credentials: an unmatched URL is a 404 for everybody, never a 401, a redirect or HTML."""
    client = api_client if authenticated else anonymous
    response = getattr(client, method)(raw.format(pk=project.pk, export_pk=export.pk), HTTP_ACCEPT="text/html")
    assert_error(response, 404)


@pytest.mark.parametrize("raw", ["/api/nope", "/api/projects/{pk}/nope", "/totally/unknown"])
@pytest.mark.parametrize("method", ["post", "patch", "put", "delete"])
def test_unmatched_url_with_a_session_is_a_404_not_a_csrf_403(user, project, raw, method):
    """A browser session without a CSRF token still gets the contract's 404 for a URL that matches nothing."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = getattr(client, method)(raw.format(pk=project.pk), {"title": "x"}, content_type="application/json")
    assert_error(response, 404, "Not found.")


def test_a_session_without_a_csrf_token_is_still_refused_on_a_real_endpoint(user, project):
    """The control for the test above: CSRF protection still applies to the API's own URLs."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    url = reverse("project-detail", kwargs={"pk": project.pk})
    response = client.patch(url, {"title": "x"}, content_type="application/json")
    assert_error(response, 403)
    assert "CSRF" in response.json()["detail"]
    project.refresh_from_db()
    assert project.title == "Errors"


@pytest.mark.parametrize(
    "raw", ["/api/projects//", "/api/projects/counts//", "/api/projects/{pk}//", "/api/projects/{pk}/exports//"]
)
def test_a_doubled_trailing_slash_is_an_unmatched_url(api_client, project, raw):
    """Only the listed spelling and its other slash form answer; '//' is neither."""
    assert_error(api_client.get(raw.format(pk=project.pk)), 404)


@pytest.mark.parametrize(
    "raw",
    [
        "/api/projects/999999999999999999/",
        "/api/projects/999999999999999999/exports/",
        "/api/projects/{pk}/exports/999999999999999999",
        "/api/projects/{pk}/exports/999999999999999999/download",
        "/api/projects/0/",
        "/api/projects/{pk}/exports/0",
    ],
)
def test_ids_that_fit_but_do_not_exist_are_a_json_404(api_client, project, raw):
    assert_error(api_client.get(raw.format(pk=project.pk)), 404)


@pytest.mark.parametrize("accept", ["application/json", "text/html", "*/*"])
def test_missing_objects_are_json_whatever_the_client_accepts(api_client, project, accept):
    missing = reverse("project-exports-detail", kwargs={"pk": project.pk, "export_pk": 999_999_999})
    assert_error(api_client.get(missing, HTTP_ACCEPT=accept), 404)
    assert_error(api_client.get(reverse("project-detail", kwargs={"pk": 999_999_999}), HTTP_ACCEPT=accept), 404)


def test_missing_project_names_the_model(api_client):
    response = api_client.get(reverse("project-detail", kwargs={"pk": 999_999_999}))
    assert_error(response, 404, "No Project matches the given query.")


# --- both slash forms, no redirect -------------------------------------------------------------------------------


def other_form(url: str) -> str:
    return url[:-1] if url.endswith("/") else f"{url}/"


@pytest.mark.parametrize(
    ("name", "needs"),
    [
        ("project-list", None),
        ("project-counts", None),
        ("project-detail", "project"),
        ("project-exports-list", "project"),
        ("project-exports-detail", "export"),
        ("project-exports-download", "export"),
    ],
)
def test_reads_answer_in_both_slash_forms(api_client, project, export, name, needs):
    kwargs = {} if needs is None else {"pk": project.pk}
    if needs == "export":
        kwargs["export_pk"] = export.pk
    url = reverse(name, kwargs=kwargs)
    first, second = api_client.get(url), api_client.get(other_form(url))
    assert first.status_code == second.status_code == 200
    assert "Location" not in second


def test_project_list_without_slash_is_the_list(api_client, project):
    response = api_client.get("/api/projects")
    assert response.status_code == 200
    assert [item["id"] for item in response.json()["results"]] == [project.pk]


@pytest.mark.parametrize("path", ["/api/projects/{pk}/import/", "/api/projects/{pk}/import"])
def test_import_answers_in_both_slash_forms_without_redirect(api_client, project, path):
    url = path.format(pk=project.pk)
    response = api_client.post(url, [task_payload(7)], format="json")
    assert response.status_code == 201
    assert response.json()["task_count"] == 1
    assert_error(api_client.post(url, {"not": "tasks"}, format="json"), 400)
    assert project.tasks.count() == 3


@pytest.mark.parametrize("path", ["/api/projects/", "/api/projects"])
def test_project_create_answers_in_both_slash_forms(api_client, path):
    response = api_client.post(path, {"title": "Slashless"}, format="json")
    assert response.status_code == 201
    assert response.json()["title"] == "Slashless"


@pytest.mark.parametrize("path", ["/api/projects/{pk}/exports/", "/api/projects/{pk}/exports"])
def test_export_create_answers_in_both_slash_forms(api_client, project, path, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(path.format(pk=project.pk), {}, format="json")
    assert response.status_code == 201
    assert Export.objects.get(pk=response.json()["id"]).status == "completed"


@pytest.mark.parametrize("path", ["/api/projects/{pk}/exports/{export_pk}/", "/api/projects/{pk}/exports/{export_pk}"])
def test_export_delete_answers_in_both_slash_forms(api_client, project, export, path):
    response = api_client.delete(path.format(pk=project.pk, export_pk=export.pk))
    assert response.status_code == 204
    assert not Export.objects.filter(pk=export.pk).exists()


# --- 405 ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["put", "patch", "post"])
def test_export_detail_refuses_other_methods_with_405(api_client, project, export, method):
    url = reverse("project-exports-detail", kwargs={"pk": project.pk, "export_pk": export.pk})
    response = getattr(api_client, method)(url, {"title": "x"}, format="json")
    assert_error(response, 405, f'Method "{method.upper()}" not allowed.')
    assert response["Allow"] == "GET, DELETE, HEAD, OPTIONS"
    export.refresh_from_db()
    assert export.title != "x"


@pytest.mark.parametrize(
    ("method", "name", "needs_export"),
    [
        ("put", "project-exports-detail", True),
        ("post", "project-exports-download", True),
        ("delete", "project-exports-download", True),
        ("get", "project-import", False),
        ("get", "project-import-predictions", False),
        ("put", "project-exports-list", False),
        ("delete", "project-list", None),
        ("post", "project-counts", None),
    ],
)
def test_method_not_allowed_on_other_endpoints(api_client, project, export, method, name, needs_export):
    kwargs = {} if needs_export is None else {"pk": project.pk}
    if needs_export:
        kwargs["export_pk"] = export.pk
    response = getattr(api_client, method)(reverse(name, kwargs=kwargs))
    assert_error(response, 405, f'Method "{method.upper()}" not allowed.')


# --- order of checks ---------------------------------------------------------------------------------------------


def test_unauthenticated_request_for_a_missing_project_is_401_not_404(anonymous):
    for url in (
        reverse("project-detail", kwargs={"pk": 999_999_999}),
        reverse("project-exports-list", kwargs={"pk": 999_999_999}),
        reverse("project-exports-detail", kwargs={"pk": 999_999_999, "export_pk": 1}),
        reverse("project-exports-download", kwargs={"pk": 999_999_999, "export_pk": 1}),
    ):
        assert_401(anonymous.get(url), NOT_PROVIDED)


def test_wrong_token_for_a_missing_project_is_401_not_404():
    client = client_with("Token wrongtoken000000000000000")
    assert_401(client.get(reverse("project-detail", kwargs={"pk": 999_999_999})), "Invalid token.")


def test_unauthenticated_request_for_an_unmatched_url_is_404_not_401(anonymous):
    assert_error(anonymous.get("/api/projects/abc/"), 404)
    assert_error(anonymous.get("/api/nope"), 404)


def test_unauthenticated_put_on_export_detail_is_401_not_405(anonymous, project, export):
    url = reverse("project-exports-detail", kwargs={"pk": project.pk, "export_pk": export.pk})
    assert_401(anonymous.put(url, {}, format="json"), NOT_PROVIDED)


def test_method_is_checked_before_the_object(api_client, other_user):
    """405 comes before 404: a missing export, or one of another organization, still answers 405 to PUT."""
    foreign = make_project(user=other_user, title="Foreign")
    for pk in (999_999_999, foreign.pk):
        url = reverse("project-exports-detail", kwargs={"pk": pk, "export_pk": 1})
        assert_error(api_client.put(url, {}, format="json"), 405, 'Method "PUT" not allowed.')


def test_object_is_checked_before_the_input(api_client, other_user):
    """404 comes before 400: a bad body for someone else's project reveals nothing about validation."""
    foreign = make_project(user=other_user, title="Foreign")
    url = reverse("project-import", kwargs={"pk": foreign.pk})
    assert_error(api_client.post(url, data="{not json", content_type="application/json"), 404)
    url = reverse("project-exports-list", kwargs={"pk": foreign.pk})
    assert_error(api_client.post(url, {"task_filter_options": {"view": "x"}}, format="json"), 404)


# --- 400 ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "name", "with_pk"),
    [
        ("post", "project-list", False),
        ("patch", "project-detail", True),
        ("post", "project-import", True),
        ("post", "project-import-predictions", True),
        ("post", "project-exports-list", True),
    ],
)
@pytest.mark.parametrize("raw", ['{"title": ', "[1, 2", "not json at all", "{'single': 'quotes'}"])
def test_malformed_json_is_a_400(api_client, project, method, name, with_pk, raw):
    url = reverse(name, kwargs={"pk": project.pk} if with_pk else {})
    body = assert_error(getattr(api_client, method)(url, data=raw, content_type="application/json"), 400)
    assert body["detail"].startswith("JSON parse error")
    assert project.tasks.count() == 2
    assert project.exports.count() == 0


@pytest.mark.parametrize(
    ("method", "name", "with_pk"),
    [
        ("post", "project-list", False),
        ("patch", "project-detail", True),
        ("post", "project-duplicate", True),
        ("post", "project-label-config-validate", True),
        ("post", "project-import", True),
        ("post", "project-import-predictions", True),
        ("post", "project-exports-list", True),
        ("post", "token-refresh", False),
    ],
)
@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 950, 100_000])
def test_deeply_nested_json_is_a_400_not_a_500(api_client, project, method, name, with_pk, depth):
    """Beyond the decoder's recursion limit, and just below it (where later steps would hit it), the same 400."""
    url = reverse(name, kwargs={"pk": project.pk} if with_pk else {})
    raw = '{"title": "x", "nested": ' + "[" * depth + "]" * depth + "}"
    assert_error(getattr(api_client, method)(url, data=raw, content_type="application/json"), 400)
    assert (Project.objects.count(), project.tasks.count(), project.exports.count()) == (1, 2, 0)


def test_json_nested_up_to_the_limit_is_accepted(api_client, project):
    """`{"control_weights": {"label": [[...]]}}`, MAX_DEPTH levels in all, is stored and read back."""
    lists = MAX_DEPTH - 2
    raw = '{"control_weights": {"label": ' + "[" * lists + "]" * lists + "}}"
    url = reverse("project-detail", kwargs={"pk": project.pk})
    assert api_client.patch(url, data=raw, content_type="application/json").status_code == 200
    assert api_client.get(url).status_code == 200


def test_validation_errors_name_the_field(api_client, project):
    response = api_client.post(
        reverse("project-exports-list", kwargs={"pk": project.pk}),
        {"task_filter_options": {"view": "x"}},
        format="json",
    )
    body = assert_error(response, 400, "Validation error")
    assert "view" in body["validation_errors"]["task_filter_options"]


def test_unsupported_media_type_is_json(api_client, project):
    url = reverse("project-import", kwargs={"pk": project.pk})
    response = api_client.post(url, data="[]", content_type="text/plain")
    assert_error(response, 415, 'Unsupported media type "text/plain" in request.')


# --- pagination --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["99", "abc", "0", "-1", "1.5"])
@pytest.mark.parametrize("name", ["project-list", "project-counts"])
def test_bad_page_is_404_invalid_page(api_client, project, page, name):
    assert_error(api_client.get(f"{reverse(name)}?page={page}"), 404, "Invalid page.")


def test_first_and_last_pages_are_fine(api_client, project):
    assert api_client.get(f"{reverse('project-list')}?page=1").status_code == 200
    assert api_client.get(f"{reverse('project-list')}?page=last").status_code == 200


# --- 500 ---------------------------------------------------------------------------------------------------------


def explode(*args, **kwargs):
    raise RuntimeError("boom")


def test_unhandled_error_in_a_view_is_a_json_500(api_client, project, monkeypatch):
    monkeypatch.setattr("projects.views.tasks_import", explode)
    api_client.raise_request_exception = False
    response = api_client.post(reverse("project-import", kwargs={"pk": project.pk}), [task_payload(1)], format="json")
    body = assert_error(response, 500)
    assert "boom" not in response.content.decode()
    assert body["detail"]


def test_unhandled_error_in_an_export_view_is_a_json_500(api_client, project, monkeypatch):
    monkeypatch.setattr("exports.views.export_create", explode)
    api_client.raise_request_exception = False
    assert_error(api_client.post(reverse("project-exports-list", kwargs={"pk": project.pk}), {}, format="json"), 500)
    assert project.exports.count() == 0


def test_500_carries_the_traceback_only_under_debug(api_client, project, monkeypatch, settings):
    monkeypatch.setattr("projects.views.tasks_import", explode)
    settings.DEBUG = True
    api_client.raise_request_exception = False
    response = api_client.post(reverse("project-import", kwargs={"pk": project.pk}), [task_payload(1)], format="json")
    assert response.status_code == 500
    body = response.json()
    assert body["status_code"] == 500
    assert "RuntimeError: boom" in body["exc_info"]


def test_unhandled_error_outside_the_view_is_a_json_500(api_client, project, monkeypatch):
    """An error while rendering (after the view returned) still reaches the client as the JSON body."""
    monkeypatch.setattr(JSONRenderer, "render", explode)
    api_client.raise_request_exception = False
    response = api_client.get(reverse("project-detail", kwargs={"pk": project.pk}))
    assert_error(response, 500)
    assert "boom" not in response.content.decode()
