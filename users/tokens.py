"""Personal access tokens: long-lived JWT refresh tokens that users create and revoke, and the short-lived access
tokens they are exchanged for at /api/token/refresh/ (sent as `Authorization: Bearer`).

label-studio-sdk treats a JWT api_key as such a token. Only a token's id (jti), expiry and unsigned
`header.payload` are stored (simplejwt's OutstandingToken), never its signature: the database alone cannot yield
a working token. Revocation is simplejwt's blacklist.
"""

import base64
import binascii
import json
import re
from typing import TYPE_CHECKING

from django.db.models import QuerySet
from django.utils import timezone
from rest_framework_simplejwt import tokens
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

# On an access token: the jti of the personal access token it was issued from, so that revoking one stops both.
PERSONAL_TOKEN_CLAIM = "pat"


class AccessToken(tokens.AccessToken):
    """A short-lived token for `Authorization: Bearer` (SIMPLE_JWT's ACCESS_TOKEN_LIFETIME)."""

    if TYPE_CHECKING:
        # simplejwt annotates `token` as a Token object only; it is the encoded token.
        def __init__(self, token: str | tokens.Token | None = None, verify: bool = True) -> None: ...


class PersonalAccessToken(tokens.RefreshToken):
    """A user's long-lived refresh token (SIMPLE_JWT's REFRESH_TOKEN_LIFETIME)."""

    access_token_class = AccessToken

    if TYPE_CHECKING:
        # As on AccessToken: the encoded token.
        def __init__(self, token: str | tokens.Token | None = None, verify: bool = True) -> None: ...

    @property
    def access_token(self) -> AccessToken:
        access = super().access_token
        assert isinstance(access, AccessToken)  # made by `access_token_class`
        access[PERSONAL_TOKEN_CLAIM] = self[api_settings.JTI_CLAIM]
        access["exp"] = min(access["exp"], self["exp"])  # never outlives the token it came from
        return access


def unsigned(raw: str) -> str:
    """`header.payload` of a JWT: enough to show and to name a token, useless to authenticate with."""
    return ".".join(raw.split(".")[:2])


def token_id(raw: str) -> str | None:
    """The jti claim of a JWT given whole or unsigned, read without checking the signature; None if unreadable."""
    parts = raw.split(".")
    if len(parts) not in (2, 3):
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    jti = payload.get(api_settings.JTI_CLAIM) if isinstance(payload, dict) else None
    # Ids this service issues are hex; anything else (control characters included) cannot match one.
    return jti if isinstance(jti, str) and re.fullmatch(r"[0-9A-Za-z_-]{1,255}", jti) else None


def token_user_id(token: tokens.Token) -> int:
    """The user id a verified token names; ValueError when it is missing or outside the database's integer."""
    try:
        user_id = int(token[api_settings.USER_ID_CLAIM])
    except (KeyError, TypeError) as exc:
        raise ValueError("no user id") from exc
    if not 0 < user_id < 2**63:
        raise ValueError(user_id)
    return user_id


def active_tokens(user) -> QuerySet[OutstandingToken]:
    """`user`'s personal access tokens that are neither expired nor revoked, newest first."""
    return OutstandingToken.objects.filter(
        user=user, expires_at__gt=timezone.now(), blacklistedtoken__isnull=True
    ).order_by("-created_at", "-id")
