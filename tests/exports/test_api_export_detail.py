import pytest

from exports.models import Export, Status
from tests.exports.helpers import EXPORT_KEYS, create_export, detail_url, list_url
from tests.factories import fill_project, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(user):
    project = make_project(user=user, title="Anchor A")
    fill_project(project, user=user, count=2)
    return project


@pytest.fixture
def export(api_client, project, django_capture_on_commit_callbacks):
    return create_export(api_client, project, django_capture_on_commit_callbacks)


def test_detail_is_the_contract(api_client, project, export):
    response = api_client.get(detail_url(project, export["id"]))
    assert response.status_code == 200
    body = response.json()
    assert list(body) == [
        "title",
        "id",
        "created_by",
        "created_at",
        "finished_at",
        "status",
        "md5",
        "counters",
        "converted_formats",
    ]
    assert body["status"] == "completed"
    assert set(body["created_by"]) == {"id", "username", "email", "first_name", "last_name", "avatar"}


@pytest.mark.parametrize(
    ("query", "keys"),
    [
        ("", EXPORT_KEYS),
        ("?fields=id,status", {"id", "status"}),
        ("?fields[]=id&fields[]=md5", {"id", "md5"}),
        ("?fields=id&fields=title", {"id", "title"}),
        ("?omit=converted_formats,md5", EXPORT_KEYS - {"converted_formats", "md5"}),
        ("?expand=project", EXPORT_KEYS | {"project"}),
        ("?expand=*", EXPORT_KEYS | {"project"}),
        ("?fields=id,project&expand=project", {"id", "project"}),
        ("?fields=id&expand=project", {"id"}),
        ("?fields=", EXPORT_KEYS),
    ],
)
def test_dynamic_fields(api_client, project, export, query, keys):
    response = api_client.get(detail_url(project, export["id"]) + query)
    assert response.status_code == 200
    assert set(response.json()) == keys


def test_dotted_paths_reach_nested_objects(api_client, project, export):
    body = api_client.get(detail_url(project, export["id"]) + "?fields=id,created_by.email").json()
    assert body == {"id": export["id"], "created_by": {"email": "alice@example.com"}}
    body = api_client.get(detail_url(project, export["id"]) + "?omit=created_by.avatar,created_by.username").json()
    assert set(body["created_by"]) == {"id", "email", "first_name", "last_name"}
    body = api_client.get(detail_url(project, export["id"]) + "?expand=project&fields=project.title").json()
    assert body == {"project": {"title": "Anchor A"}}


@pytest.mark.parametrize(
    ("query", "param", "name"),
    [
        ("?fields=nope", "fields", "nope"),
        ("?omit=id,nope", "omit", "nope"),
        ("?expand=created_by", "expand", "created_by"),
        ("?fields=created_by.nope", "fields", "created_by.nope"),
        ("?fields=counters.task_number", "fields", "counters"),
    ],
)
def test_unknown_names_are_a_400(api_client, project, export, query, param, name):
    response = api_client.get(detail_url(project, export["id"]) + query)
    assert response.status_code == 400
    messages = response.json()["validation_errors"][param]
    assert len(messages) == 1
    assert name in messages[0]


def test_expanded_project(api_client, project, export):
    body = api_client.get(detail_url(project, export["id"]) + "?expand=project").json()
    assert body["project"]["id"] == project.pk
    assert body["project"]["title"] == "Anchor A"


@pytest.mark.parametrize("path_suffix", ["", "/"])
def test_both_slash_forms_answer_directly(api_client, project, export, path_suffix):
    response = api_client.get(detail_url(project, export["id"]) + path_suffix)
    assert response.status_code == 200


@pytest.mark.parametrize("method", ["put", "patch", "post"])
def test_other_methods_are_405_json(api_client, project, export, method):
    response = getattr(api_client, method)(detail_url(project, export["id"]), {"title": "x"}, format="json")
    assert response.status_code == 405
    assert response.json()["detail"] == f'Method "{method.upper()}" not allowed.'


def test_delete_removes_row_and_file(api_client, project, export, settings, django_capture_on_commit_callbacks):
    stored = Export.objects.get(pk=export["id"]).file
    path = settings.DATA_DIR / "exports" / stored
    assert path.exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.delete(detail_url(project, export["id"]))
    assert response.status_code == 204
    assert not path.exists()
    assert api_client.get(detail_url(project, export["id"])).status_code == 404
    assert api_client.delete(detail_url(project, export["id"])).status_code == 404


def test_export_of_another_project_is_404(api_client, user, project, export):
    other = make_project(user=user, title="Other")
    response = api_client.get(detail_url(other, export["id"]))
    assert response.status_code == 404
    assert response.json()["status_code"] == 404


def test_list_newest_first_and_optional_pages(api_client, project, django_capture_on_commit_callbacks):
    ids = [create_export(api_client, project, django_capture_on_commit_callbacks)["id"] for _ in range(3)]
    body = api_client.get(list_url(project)).json()
    assert [item["id"] for item in body] == ids[::-1]
    page = api_client.get(list_url(project) + "?page=2&page_size=1").json()
    assert page["count"] == 3
    assert [item["id"] for item in page["results"]] == [ids[1]]
    assert api_client.get(list_url(project) + "?page=9").status_code == 404
    assert api_client.get(list_url(project) + "?fields=id").json() == [{"id": i} for i in ids[::-1]]


def test_list_without_trailing_slash(api_client, project, export):
    response = api_client.get(list_url(project).rstrip("/"))
    assert response.status_code == 200
    assert response.json()[0]["id"] == export["id"]


def make_exports(project, user, count: int) -> None:
    Export.objects.bulk_create(
        Export(project=project, created_by=user, title=f"e{i}", status=Status.COMPLETED, counters={"task_number": 1})
        for i in range(count)
    )


@pytest.mark.parametrize("query", ["", "?expand=project", "?fields=id,created_by.email", "?page=1"])
def test_list_query_count_does_not_grow(api_client, user, project, django_assert_num_queries, query):
    counts = []
    for total in (1, 6):
        Export.objects.all().delete()
        make_exports(project, user, total)
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            response = api_client.get(list_url(project) + query)
        assert response.status_code == 200
        counts.append(len(captured))
    assert counts[0] == counts[1]
    assert counts[0] <= 6


@pytest.mark.parametrize("query", ["", "?expand=project", "?fields=id"])
def test_detail_takes_three_queries(api_client, user, project, django_assert_num_queries, query):
    """Token with its user, the export with its project and creator, and its converted formats."""
    make_exports(project, user, 1)
    export = Export.objects.get()
    with django_assert_num_queries(3):
        assert api_client.get(detail_url(project, export.pk) + query).status_code == 200


def test_creator_avatar_is_an_absolute_url(api_client, user, project, export):
    user.avatar.name = "avatars/alice.png"
    user.save(update_fields=["avatar"])
    body = api_client.get(detail_url(project, export["id"])).json()
    assert body["created_by"]["avatar"] == "http://testserver/media/avatars/alice.png"
    listed = api_client.get(list_url(project)).json()[0]
    assert listed["created_by"]["avatar"] == body["created_by"]["avatar"]


def test_deleted_creator_is_null(api_client, user, project, export):
    from users.models import User

    User.objects.filter(pk=user.pk).update(is_active=True)
    Export.objects.filter(pk=export["id"]).update(created_by=None)
    assert api_client.get(detail_url(project, export["id"])).json()["created_by"] is None


@pytest.mark.parametrize(
    ("method", "suffix"), [("get", ""), ("delete", ""), ("get", "/download"), ("post", "/convert")]
)
def test_a_404_names_what_is_missing(api_client, project, export, other_user, method, suffix):
    """A missing (or foreign) project is named as the project; a missing snapshot of a visible project as the
    snapshot."""
    foreign = make_project(user=other_user, title="Elsewhere")
    cases = {
        f"/api/projects/{project.pk}/exports/999999{suffix}": "No Export matches the given query.",
        f"/api/projects/999999/exports/{export['id']}{suffix}": "No Project matches the given query.",
        f"/api/projects/{foreign.pk}/exports/{export['id']}{suffix}": "No Project matches the given query.",
    }
    for url, detail in cases.items():
        response = getattr(api_client, method)(url, {"export_type": "CSV"} if method == "post" else None, format="json")
        assert response.status_code == 404, url
        assert response.json()["detail"] == detail, url


def test_unmatched_url_error_is_encoded_as_every_other_error(api_client, project):
    """A URL the router cannot match (an id that is not a number) answers the same compact JSON as a view's 404."""
    unmatched = api_client.get(f"/api/projects/{project.pk}/exports/not-a-number")
    from_view = api_client.get(f"/api/projects/{project.pk}/exports/999999")
    assert unmatched.status_code == from_view.status_code == 404
    for response in (unmatched, from_view):
        assert response["Content-Type"] == "application/json"
        assert b'": ' not in response.content
        assert b'", "' not in response.content
        assert set(response.json()) == {"id", "status_code", "version", "detail", "exc_info"}
