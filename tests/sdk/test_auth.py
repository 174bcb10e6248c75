"""The SDK's two authentication modes against a live server: a legacy API token, and a personal access token the SDK
exchanges at /api/token/refresh/ for Bearer access tokens, refreshing them when they expire."""

import time
from datetime import timedelta

import pytest
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from tests.sdk.conftest import sdk_for
from tests.sdk.helpers import NO_RETRIES, create_project
from users import views
from users.tokens import AccessToken

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def legacy(live_server, sdk_user) -> LabelStudio:
    return sdk_for(live_server.url, sdk_user, "token")


def assert_401(caught) -> None:
    assert caught.value.status_code == 401
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["status_code"] == 401
    assert caught.value.body["detail"]


def test_bad_legacy_token_is_401(ls, live_server):
    project = create_project(ls)
    intruder = LabelStudio(base_url=live_server.url, api_key="0" * 40)

    with pytest.raises(ApiError) as caught:
        intruder.projects.get(id=project.id)
    assert_401(caught)
    assert caught.value.headers["www-authenticate"] == "Token"
    with pytest.raises(ApiError) as caught:
        intruder.projects.list()
    assert_401(caught)
    with pytest.raises(ApiError) as caught:
        intruder.projects.exports.create(id=project.id)
    assert_401(caught)
    assert ls.projects.exports.list(id=project.id) == []


def test_personal_token_created_listed_used_and_revoked_through_the_sdk(legacy, live_server):
    project = create_project(legacy, "Seen through a personal token")

    token = legacy.tokens.create().token
    personal = LabelStudio(base_url=live_server.url, api_key=token)

    assert personal._client_wrapper.get_headers()["Authorization"].startswith("Bearer ")
    assert [p.id for p in personal.projects.list()] == [project.id]
    assert personal.projects.get(id=project.id).title == "Seen through a personal token"
    listed = legacy.tokens.list()
    assert [item.token for item in listed] == [".".join(token.split(".")[:2])]  # shown without signature
    with pytest.raises(ApiError) as caught:  # one active token per user, as upstream
        legacy.tokens.create(request_options=NO_RETRIES)
    assert caught.value.status_code == 409

    assert personal.tokens.blacklist(refresh=token) is None

    assert legacy.tokens.list() == []
    with pytest.raises(ApiError) as caught:  # its cached access token stopped working with it
        personal.projects.get(id=project.id)
    assert_401(caught)
    with pytest.raises(ApiError) as caught:  # and it cannot be refreshed any more
        LabelStudio(base_url=live_server.url, api_key=token).projects.list()
    assert_401(caught)
    assert legacy.projects.get(id=project.id).id == project.id  # the legacy token is unaffected


def test_rotate_through_the_sdk(legacy, live_server):
    old = legacy.tokens.create().token

    new = legacy.tokens.rotate(refresh=old).refresh

    assert new != old
    assert LabelStudio(base_url=live_server.url, api_key=new).projects.list().items == []
    with pytest.raises(ApiError) as caught:
        LabelStudio(base_url=live_server.url, api_key=old).projects.list()
    assert_401(caught)


def test_the_sdk_refreshes_an_expired_access_token(live_server, sdk_user, monkeypatch):
    monkeypatch.setattr(AccessToken, "lifetime", timedelta(seconds=4))
    issued = []
    real_issue = views.access_token_issue

    def recording_issue(**kwargs):
        access = real_issue(**kwargs)
        issued.append(access)
        return access

    monkeypatch.setattr(views, "access_token_issue", recording_issue)
    personal = sdk_for(live_server.url, sdk_user, "personal_token")
    project = create_project(personal)
    assert issued
    before = len(issued)

    # Once the current access token has expired, the SDK refreshes it before its next request.
    expires = AccessToken(issued[-1])["exp"]
    time.sleep(max(0.0, expires - time.time()) + 0.5)
    assert personal.projects.get(id=project.id).id == project.id

    assert len(issued) == before + 1
    assert AccessToken(issued[-1])["exp"] > expires
