"""The snapshot list and detail render their bodies without ExportSerializer where it would add nothing; the result
is the serializer's output, byte for byte, whatever the snapshot holds and whichever fields are asked for."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIRequestFactory

from exports.models import ConvertedFormat, Export, Status
from exports.selectors import export_bodies, export_body, exports_body
from exports.serializers import ExportSerializer, export_representation
from tests.exports.helpers import detail_url, list_url
from tests.factories import make_project, make_user

pytestmark = pytest.mark.django_db

FIELD_QUERIES = [
    "",
    "?fields=id,status",
    "?fields=since_export",
    "?fields=created_by",
    "?fields=id&fields=converted_formats",
    "?fields[]=md5",
    "?omit=converted_formats,created_by",
    "?omit=since_export",
    "?fields=id,title&omit=title",
    "?fields=project",
    "?expand=project",
    "?fields=id,created_by.email",
    "?omit=created_by.avatar",
    "?expand=project&fields=id,project.title",
]


def make_snapshots(user, project) -> list[Export]:
    """Snapshots that between them hold every kind of value the body shows."""
    full = Export.objects.create(
        project=project,
        created_by=user,
        title="Cars \u2028 «ünïcode» \U0001f697",
        status=Status.COMPLETED,
        md5="0" * 32,
        counters={"task_number": 3, "ratio": 0.1, "nested": {"a": [1, None, "x"]}},
        finished_at=timezone.now(),
    )
    ConvertedFormat.objects.create(export=full, export_type="CSV", status=Status.FAILED, traceback="no rows\n\u2029")
    ConvertedFormat.objects.create(export=full, export_type="COCO", status=Status.COMPLETED, file="f.zip")
    ConvertedFormat.objects.create(export=full, export_type="TSV")
    incremental = Export.objects.create(
        project=project, created_by=user, title="", status=Status.COMPLETED, since_export=full.pk, counters={}
    )
    orphan = Export.objects.create(project=project, created_by=None, status=Status.FAILED, md5="", counters={})
    running = Export.objects.create(project=project, created_by=user, status=Status.IN_PROGRESS)
    return [full, incremental, orphan, running]


@pytest.fixture
def snapshots(user):
    user.avatar.name = "avatars/alice.png"
    user.first_name = "Ålice"
    user.save(update_fields=["avatar", "first_name"])
    return make_snapshots(user, make_project(user=user, title="Representation"))


def serializer_output(bodies, request, query: str = "") -> list:
    kwargs = {}
    for part in filter(None, query.lstrip("?").split("&")):
        name, _, value = part.partition("=")
        kwargs.setdefault(name.removesuffix("[]"), []).extend(value.split(","))
    return ExportSerializer(bodies, many=True, context={"request": request}, **kwargs).data


def test_representation_is_the_serializers_output(user, snapshots):
    request = APIRequestFactory().get("/")
    bodies = export_bodies(exports_body(user=user, project_id=snapshots[0].project_id))
    assert len(bodies) == len(snapshots)
    expected = ExportSerializer(bodies, many=True, context={"request": request}).data
    assert [export_representation(body, request) for body in bodies] == expected
    assert [list(export_representation(body, request)) for body in bodies] == [list(data) for data in expected]
    by_id = {data["id"]: data for data in expected}
    assert "since_export" not in by_id[snapshots[0].pk]
    assert by_id[snapshots[1].pk]["since_export"] == snapshots[0].pk
    assert by_id[snapshots[2].pk]["created_by"] is None


def test_representation_without_a_request_gives_the_avatars_path(user, snapshots):
    body = export_body(user=user, project_id=snapshots[0].project_id, export_id=snapshots[0].pk)
    assert export_representation(body, None) == ExportSerializer(body).data
    assert export_representation(body, None)["created_by"]["avatar"] == "/media/avatars/alice.png"


@pytest.mark.parametrize("query", FIELD_QUERIES)
def test_detail_answers_the_serializers_bytes(api_client, user, snapshots, query):
    request = APIRequestFactory().get("/", HTTP_HOST="testserver")
    for snapshot in snapshots:
        response = api_client.get(detail_url(snapshot.project, snapshot.pk) + query)
        assert response.status_code == 200
        body = export_body(user=user, project_id=snapshot.project_id, export_id=snapshot.pk)
        [expected] = serializer_output([body], request, query)
        assert response.json() == expected
        assert list(response.json()) == list(expected)
        if not query:
            assert response.content == render(expected)


@pytest.mark.parametrize("query", FIELD_QUERIES)
def test_list_answers_the_serializers_bytes(api_client, user, snapshots, query):
    request = APIRequestFactory().get("/", HTTP_HOST="testserver")
    project = snapshots[0].project
    response = api_client.get(list_url(project) + query)
    assert response.status_code == 200
    expected = serializer_output(export_bodies(exports_body(user=user, project_id=project.pk)), request, query)
    assert response.json() == expected
    if not query:
        assert response.content == render(expected)


def render(data) -> bytes:
    from rest_framework.renderers import JSONRenderer

    return JSONRenderer().render(data)


@pytest.mark.parametrize("query", ["?fields=nope", "?omit=created_by.nope", "?expand=title"])
def test_unknown_names_are_still_refused(api_client, snapshots, query):
    response = api_client.get(detail_url(snapshots[0].project, snapshots[0].pk) + query)
    assert response.status_code == 400
    assert response.json()["detail"] == "Validation error"


def test_a_missing_snapshot_is_a_404_before_the_field_names_are_checked(api_client, snapshots):
    response = api_client.get(detail_url(snapshots[0].project, 10**9) + "?fields=nope")
    assert response.status_code == 404


def test_a_deleted_token_stops_working_at_once(api_client, user, snapshots):
    url = detail_url(snapshots[0].project, snapshots[0].pk)
    assert api_client.get(url).status_code == 200
    user.auth_token.delete()
    assert api_client.get(url).status_code == 401


def test_an_inactive_user_stops_working_at_once(api_client, user, snapshots):
    url = detail_url(snapshots[0].project, snapshots[0].pk)
    assert api_client.get(url).status_code == 200
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert api_client.get(url).status_code == 401


def test_a_removed_membership_hides_the_snapshot_at_once(api_client, user, snapshots):
    url = detail_url(snapshots[0].project, snapshots[0].pk)
    assert api_client.get(url).status_code == 200
    user.memberships.all().delete()
    assert api_client.get(url).status_code == 404


@pytest.mark.postgres
def test_hot_reads_are_planned_once_per_connection(api_client, snapshots):
    """The token lookup and the snapshot's two reads run as prepared statements on PostgreSQL: run again, they
    are not prepared again."""
    url = detail_url(snapshots[0].project, snapshots[0].pk)
    for _ in range(3):
        assert api_client.get(url).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements")
        runs = {statement: count for statement, count in cursor.fetchall()}
    token = [count for statement, count in runs.items() if "authtoken_token" in statement]
    snapshot = [count for statement, count in runs.items() if 'FROM "exports_export"' in statement]
    formats = [count for statement, count in runs.items() if 'FROM "exports_convertedformat"' in statement]
    assert max(token) >= 3
    assert max(snapshot) >= 3
    assert max(formats) >= 3


@pytest.mark.postgres
def test_prepared_statements_can_be_switched_off(api_client, snapshots, settings):
    """DATABASE_PREPARED_STATEMENTS=0: no statement is prepared, nor one prepared before run as prepared."""

    def prepared() -> list[tuple]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT name, generic_plans + custom_plans FROM pg_prepared_statements ORDER BY name")
            return cursor.fetchall()

    settings.DATABASE_PREPARED_STATEMENTS = False
    before = prepared()
    url = detail_url(snapshots[0].project, snapshots[0].pk)
    for _ in range(3):
        assert api_client.get(url).status_code == 200
    assert prepared() == before
    settings.DATABASE_PREPARED_STATEMENTS = True
    assert api_client.get(url).status_code == 200
    assert prepared() != before  # the check above could see a change


@pytest.mark.postgres
def test_prepared_reads_are_logged_with_their_sql(api_client, snapshots):
    url = detail_url(snapshots[0].project, snapshots[0].pk)
    api_client.get(url)
    with CaptureQueriesContext(connection) as captured:
        assert api_client.get(url).status_code == 200
    logged = [query["sql"] for query in captured]
    assert len(logged) == 3
    assert "authtoken_token" in logged[0]
    assert 'FROM "exports_export"' in logged[1]
    assert 'FROM "exports_convertedformat"' in logged[2]


def test_another_users_token_sees_nothing(snapshots, other_client):
    assert other_client.get(detail_url(snapshots[0].project, snapshots[0].pk)).status_code == 404


def test_the_representation_follows_the_current_time_zone(user, snapshots, settings):
    settings.TIME_ZONE = "Europe/Paris"
    body = export_body(user=user, project_id=snapshots[0].project_id, export_id=snapshots[0].pk)
    request = APIRequestFactory().get("/")
    assert export_representation(body, request) == ExportSerializer(body, context={"request": request}).data


def test_a_second_user_in_the_organization_sees_the_same_body(user, org, snapshots):
    from tests.conftest import client_for

    colleague = make_user(email="bob@example.com", organization=org)
    url = detail_url(snapshots[0].project, snapshots[0].pk)
    assert client_for(colleague).get(url).json() == client_for(user).get(url).json()
