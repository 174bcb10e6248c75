"""The official `label-studio-sdk` 2.1.2 against a live server, in both of its authentication modes.

`token`: the api_key is a legacy API token, sent as `Authorization: Token <key>`.
`personal_token`: the api_key is a personal access token (a JWT refresh token); the SDK exchanges it at
/api/token/refresh/ and sends `Authorization: Bearer <access token>`.
"""

import pytest
from label_studio_sdk import LabelStudio
from rest_framework.authtoken.models import Token

from tests.factories import make_org, make_user
from users.services import personal_token_create

AUTH_MODES = ["token", "personal_token"]


def sdk_for(base_url: str, user, mode: str = "token") -> LabelStudio:
    if mode == "token":
        key, scheme = Token.objects.get_or_create(user=user)[0].key, "Token"
    else:
        key, scheme = personal_token_create(user=user), "Bearer"
    ls = LabelStudio(base_url=base_url, api_key=key)
    assert ls._client_wrapper.get_headers()["Authorization"].startswith(f"{scheme} ")  # the mode the SDK chose
    return ls


@pytest.fixture
def sdk_user(db):
    return make_user(email="sdk.user@example.com", organization=make_org(title="SDK Org"), first_name="Sdk")


@pytest.fixture(params=AUTH_MODES)
def auth_mode(request) -> str:
    return request.param


@pytest.fixture
def ls(live_server, sdk_user, auth_mode) -> LabelStudio:
    return sdk_for(live_server.url, sdk_user, auth_mode)
