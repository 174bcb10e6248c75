"""Personal access tokens: create, list, refresh to an access token, `Authorization: Bearer`, revoke, rotate."""

import base64
import hashlib
import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from tests.conftest import client_for
from tests.exports.helpers import create_export, detail_url, download_url, list_url
from tests.factories import fill_project, make_project
from users.tokens import PERSONAL_TOKEN_CLAIM, AccessToken, PersonalAccessToken

pytestmark = pytest.mark.django_db

TOKENS = reverse("token-list")
REFRESH = reverse("token-refresh")
BLACKLIST = reverse("token-blacklist")
ROTATE = reverse("token-rotate")
PROJECTS = reverse("project-list")
ERROR_KEYS = {"id", "status_code", "version", "detail", "exc_info"}
BEARER_CHALLENGE = 'Bearer realm="api"'
NOT_PROVIDED = "Authentication credentials were not provided."


def claims(raw: str) -> dict:
    payload = raw.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def create_token(client: APIClient) -> str:
    response = client.post(TOKENS)
    assert response.status_code == 201, response.content
    return response.json()["token"]


def refresh(refresh_token: str):
    return APIClient().post(REFRESH, {"refresh": refresh_token}, format="json")


def bearer_client(access: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def access_for(refresh_token: str) -> str:
    response = refresh(refresh_token)
    assert response.status_code == 200, response.content
    return response.json()["access"]


def assert_401(response, challenge: str = "Token") -> dict:
    """A 401 with the JSON error body; the API's challenge is `Token` (as upstream), the refresh endpoint's Bearer."""
    assert response.status_code == 401, response.content
    assert response["Content-Type"] == "application/json"
    assert response["WWW-Authenticate"] == challenge
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["status_code"] == 401
    assert body["detail"]
    return body


def test_create_returns_a_signed_refresh_token_and_records_it_without_signature(api_client, user):
    token = create_token(api_client)

    header, payload, signature = token.split(".")
    assert signature
    assert claims(token)["token_type"] == "refresh"
    assert claims(token)["user_id"] == str(user.pk)
    assert datetime_from_epoch(claims(token)["exp"]) > timezone.now() + timedelta(days=365)
    stored = OutstandingToken.objects.get(user=user)
    assert stored.jti == claims(token)["jti"]
    assert stored.token == f"{header}.{payload}"  # the database never holds a usable token

    listed = api_client.get(TOKENS)
    assert listed.status_code == 200
    assert [item["token"] for item in listed.json()] == [f"{header}.{payload}"]
    assert set(listed.json()[0]) == {"token", "created_at", "expires_at"}


def test_a_second_active_token_is_a_409(api_client):
    create_token(api_client)

    response = api_client.post(TOKENS)

    assert response.status_code == 409
    assert response.json()["status_code"] == 409
    assert len(api_client.get(TOKENS).json()) == 1


def test_token_endpoints_need_credentials():
    client = APIClient()
    assert_401(client.get(TOKENS))
    assert_401(client.post(TOKENS))
    assert_401(client.post(BLACKLIST, {"refresh": "x.y"}, format="json"))
    assert_401(client.post(ROTATE, {"refresh": "x.y"}, format="json"))


def test_refresh_then_bearer_reaches_projects_and_exports(
    api_client, user, other_user, django_capture_on_commit_callbacks
):
    project = make_project(user=user, title="Through Bearer")
    fill_project(project, user=user, count=2)
    make_project(user=other_user, title="Someone else's")
    token = create_token(api_client)

    response = refresh(token)
    assert response.status_code == 200
    assert set(response.json()) == {"access"}
    access = response.json()["access"]
    assert claims(access)["token_type"] == "access"
    assert claims(access)[PERSONAL_TOKEN_CLAIM] == claims(token)["jti"]
    client = bearer_client(access)

    projects = client.get(PROJECTS)
    assert projects.status_code == 200
    assert [item["title"] for item in projects.json()["results"]] == ["Through Bearer"]
    created = create_export(client, project, django_capture_on_commit_callbacks)
    assert created["created_by"]["id"] == user.pk
    detail = client.get(detail_url(project, created["id"]))
    assert detail.status_code == 200
    assert detail.json()["status"] == "completed"
    assert [item["id"] for item in client.get(list_url(project)).json()] == [created["id"]]
    download = client.get(download_url(project, created["id"]))
    assert download.status_code == 200
    assert hashlib.md5(b"".join(download.streaming_content)).hexdigest() == detail.json()["md5"]
    # The scheme word is case-insensitive, like `Token`.
    client.credentials(HTTP_AUTHORIZATION=f"bearer {access}")
    assert client.get(PROJECTS).status_code == 200


def test_refresh_answers_in_both_slash_forms(api_client):
    token = create_token(api_client)

    response = APIClient().post(REFRESH.rstrip("/"), {"refresh": token}, format="json")

    assert response.status_code == 200
    assert claims(response.json()["access"])["token_type"] == "access"


def test_revoked_token_cannot_refresh_and_its_access_tokens_stop(api_client):
    token = create_token(api_client)
    access = access_for(token)
    assert bearer_client(access).get(PROJECTS).status_code == 200

    response = api_client.post(BLACKLIST, {"refresh": token}, format="json")

    assert response.status_code == 204
    assert_401(refresh(token), BEARER_CHALLENGE)
    assert_401(bearer_client(access).get(PROJECTS))
    assert api_client.get(TOKENS).json() == []
    # Revoking again, or a token that is not the caller's: 404.
    again = api_client.post(BLACKLIST, {"refresh": token}, format="json")
    assert again.status_code == 404
    assert again.json()["status_code"] == 404
    # With the old one revoked, a new token can be created.
    assert access_for(create_token(api_client))


def test_revoke_accepts_the_listed_unsigned_form(api_client):
    token = create_token(api_client)
    listed = api_client.get(TOKENS).json()[0]["token"]

    assert api_client.post(BLACKLIST, {"refresh": listed}, format="json").status_code == 204

    assert_401(refresh(token), BEARER_CHALLENGE)


def test_revoke_cannot_touch_another_users_token(api_client, other_client):
    token = create_token(api_client)

    response = other_client.post(BLACKLIST, {"refresh": token}, format="json")

    assert response.status_code == 404
    assert access_for(token)


@pytest.mark.parametrize("body", [{}, {"refresh": ""}, {"refresh": ["a"]}])
def test_revoke_and_refresh_without_a_token_are_400(api_client, body):
    for client, url in ((api_client, BLACKLIST), (APIClient(), REFRESH)):
        response = client.post(url, body, format="json")
        assert response.status_code == 400, url
        assert "refresh" in response.json()["validation_errors"]


def test_revoke_of_unreadable_token_is_404(api_client):
    create_token(api_client)

    nul_id = base64.urlsafe_b64encode(json.dumps({"jti": "a\u0000b"}).encode()).decode().rstrip("=")
    for value in ("garbage", "a.b.c", "a.!!!", "x" * 5000, f"e30.{nul_id}", "e30.e30"):
        response = api_client.post(BLACKLIST, {"refresh": value}, format="json")
        assert response.status_code == 404, value


def test_rotate_revokes_the_old_token_and_returns_a_new_one(api_client, other_client):
    token = create_token(api_client)

    response = api_client.post(ROTATE, {"refresh": token}, format="json")

    assert response.status_code == 200
    new = response.json()["refresh"]
    assert claims(new)["jti"] != claims(token)["jti"]
    assert_401(refresh(token), BEARER_CHALLENGE)
    assert bearer_client(access_for(new)).get(PROJECTS).status_code == 200
    # Only a live token of the caller rotates.
    for client, value in ((api_client, token), (other_client, new), (api_client, "garbage")):
        rejected = client.post(ROTATE, {"refresh": value}, format="json")
        assert rejected.status_code == 400
        assert "refresh" in rejected.json()["validation_errors"]
    assert access_for(new)


def expired_personal_token(user) -> str:
    token = PersonalAccessToken()
    token["user_id"] = str(user.pk)
    token.set_exp(from_time=timezone.now() - timedelta(days=2), lifetime=timedelta(days=1))
    raw = str(token)
    OutstandingToken.objects.create(
        user=user,
        jti=token["jti"],
        token=".".join(raw.split(".")[:2]),
        created_at=timezone.now() - timedelta(days=2),
        expires_at=datetime_from_epoch(token["exp"]),
    )
    return raw


def test_refresh_rejects_what_is_not_a_live_personal_access_token(api_client, user):
    token = create_token(api_client)
    access = access_for(token)
    header, payload, signature = token.split(".")
    legacy_key = Token.objects.get(user=user).key

    for value in (
        "garbage",
        legacy_key,
        access,  # an access token is not a refresh token
        f"{header}.{payload}",  # unsigned
        f"{header}.{payload}.{signature[::-1]}",  # tampered signature
        expired_personal_token(user),
    ):
        assert_401(refresh(value), BEARER_CHALLENGE)


def test_refresh_of_inactive_or_deleted_user_is_401(api_client, user):
    token = create_token(api_client)
    access = access_for(token)

    user.is_active = False
    user.save(update_fields=["is_active"])
    assert_401(refresh(token), BEARER_CHALLENGE)
    assert_401(bearer_client(access).get(PROJECTS))

    user.delete()
    assert_401(refresh(token), BEARER_CHALLENGE)
    assert_401(bearer_client(access).get(PROJECTS))


def forged_access(**claims_) -> str:
    token = AccessToken()
    for key, value in claims_.items():
        token[key] = value
    return str(token)


def test_malformed_or_invalid_bearer_is_401_json(api_client, user):
    token = create_token(api_client)
    access = access_for(token)
    jti = claims(token)["jti"]
    expired = AccessToken()
    expired["user_id"] = str(user.pk)
    expired[PERSONAL_TOKEN_CLAIM] = jti
    expired.set_exp(from_time=timezone.now() - timedelta(hours=1))

    for header in (
        "Bearer",
        "Bearer ",
        f"Bearer {access} extra",
        "Bearer a.b.c",
        f"Bearer {access[:-4]}AAAA",  # bad signature
        f"Bearer {token}",  # a refresh token is not an access token
        f"Bearer {expired}",
        f"Bearer {forged_access(user_id=str(user.pk))}",  # no personal token claim
        f"Bearer {forged_access(user_id=str(user.pk), pat='0' * 32)}",  # unknown personal token
        f"Bearer {forged_access(user_id='99999999999999999999999', pat=jti)}",  # beyond any database id
        f"Bearer {forged_access(user_id='abc', pat=jti)}",
        "Bearer \u00e9.t.\u00e9",
    ):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=header)
        body = assert_401(client.get(PROJECTS))
        assert body["detail"] != NOT_PROVIDED, header
    # What is not a JWT at all (an API key sent as Bearer) counts as no credentials, as upstream answers.
    for header in ("Bearer garbage", f"Bearer {Token.objects.get(user=user).key}"):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=header)
        assert assert_401(client.get(PROJECTS))["detail"] == NOT_PROVIDED


def test_bearer_of_another_users_token_cannot_pass_as_a_third(api_client, user, other_user):
    """An access token names its user and its personal token; both must belong together."""
    token = create_token(api_client)
    forged = forged_access(user_id=str(other_user.pk), pat=claims(token)["jti"])

    assert_401(bearer_client(forged).get(PROJECTS))


def test_bearer_costs_the_same_queries_as_a_token(api_client, user, django_assert_num_queries):
    """Authentication is one query in both schemes, so a Bearer request costs what a Token request does."""
    make_project(user=user, title="Counted")
    access = access_for(create_token(api_client))
    token_client = client_for(user)
    with CaptureQueriesContext(connection) as by_token:
        assert token_client.get(PROJECTS).status_code == 200
    with django_assert_num_queries(len(by_token.captured_queries)):
        assert bearer_client(access).get(PROJECTS).status_code == 200
