"""Request authentication: `Token <key>` (legacy API token) and `Bearer <access token>` (personal access tokens).

Both run on every request, so each reads the user row with one SQL statement composed once instead of the ORM,
planned once per connection on PostgreSQL (`config.prepared`).
Every scheme here puts the user it accepts on the request's log records (`config.logs.set_user`).
"""

import functools
from dataclasses import dataclass
from typing import cast

from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from config.logs import set_user
from config.prepared import planned_once_cursor
from users import labelstudio
from users.models import OrganizationMember, User
from users.tokens import PERSONAL_TOKEN_CLAIM, AccessToken, token_user_id

USER_FIELDS = [field for field in User._meta.concrete_fields]
_COLUMNS = [field.get_col(User._meta.db_table) for field in USER_FIELDS]
_ATTNAMES = [field.attname for field in USER_FIELDS]
BEARER_CHALLENGE = 'Bearer realm="api"'
TOKEN_KEY_LENGTH = cast(int, Token._meta.get_field("key").max_length)  # a CharField's, never None


def _columns() -> str:
    return ", ".join(_column(field) for field in USER_FIELDS)


def _column(field) -> str:
    """A user column; the active organization only while the user is still a member of it, so a user whose
    membership was removed sees nothing of that organization any more (every scope reads this field)."""
    name = f"u.{connection.ops.quote_name(field.column)}"
    if field.name != "active_organization":
        return name
    members = OrganizationMember._meta.db_table
    return (
        f"CASE WHEN EXISTS (SELECT 1 FROM {members} m WHERE m.user_id = u.id AND m.organization_id = {name}) "
        f"THEN {name} END"
    )


@dataclass(frozen=True)
class _UserStatements:
    """The statements that read a caller's user row, and which of its columns need converting, for one
    database vendor."""

    token: str
    bearer: str
    converted: tuple[int, ...]  # indexes in USER_FIELDS of the columns that have database converters


@functools.cache
def _statements(vendor: str) -> _UserStatements:
    """Built once per vendor (`connection` is of that vendor): composing them cost as much as running them."""
    outstanding, blacklisted = OutstandingToken._meta.db_table, BlacklistedToken._meta.db_table
    columns = _columns()
    token = (
        f"SELECT {columns} FROM {Token._meta.db_table} t "  # noqa: S608 -- table and column names are ours
        f"JOIN {User._meta.db_table} u ON u.id = t.user_id WHERE t.key = %s"
    )
    # The user of an access token, provided the personal access token it came from is theirs and not revoked.
    bearer = (
        f"SELECT {columns} FROM {User._meta.db_table} u WHERE u.id = %s AND EXISTS ("  # noqa: S608
        f"SELECT 1 FROM {outstanding} o WHERE o.jti = %s AND o.user_id = u.id AND NOT EXISTS ("
        f"SELECT 1 FROM {blacklisted} b WHERE b.token_id = o.id))"
    )
    converted = tuple(index for index, column in enumerate(_COLUMNS) if _converters(column))
    return _UserStatements(token=token, bearer=bearer, converted=converted)


def _converters(column) -> list:
    """`connection`'s converters for a user column, as the ORM applies them."""
    return connection.ops.get_db_converters(column) + column.get_db_converters(connection)


def _fetch_user(sql: str, params: list, converted: tuple[int, ...]) -> User | None:
    """Run `sql` (selecting USER_FIELDS) and build the User without compiling an ORM query."""
    with planned_once_cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    for index in converted:
        column = _COLUMNS[index]
        for converter in _converters(column):
            values[index] = converter(values[index], column, connection)
    return User.from_db(connection.alias, _ATTNAMES, values)


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token scheme and messages. Listed first in settings, so every 401 carries its challenge, `Token`,
    as Label Studio's do."""

    def authenticate_credentials(self, key):
        # A key no token can have is refused without a query: PostgreSQL rejects a NUL in a parameter outright.
        if len(key) > TOKEN_KEY_LENGTH or "\x00" in key:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        statements = _statements(connection.vendor)
        user = _fetch_user(statements.token, [key], statements.converted)
        if user is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        set_user(user)
        return user, Token(key=key, user=user)


class BearerAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <access token>`, an access token issued at /api/token/refresh/.

    Checks the signature, expiry and type, then in one query that the user exists and the personal access
    token it was issued from is still theirs and not revoked: revoking a token also stops its access tokens.
    """

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower() != b"bearer":
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(_("Invalid Bearer header: expected 'Bearer <access token>'."))
        if parts[1].count(b".") != 2:
            # Not a JWT (say, an API key sent as Bearer): no Bearer credentials at all, as Label Studio answers.
            return None
        try:
            token = AccessToken(parts[1].decode("ascii"))
            user_id = token_user_id(token)
            personal_token_id = str(token[PERSONAL_TOKEN_CLAIM])
        except (TokenError, UnicodeError, KeyError, ValueError) as exc:
            raise exceptions.AuthenticationFailed(_("Access token is invalid or expired.")) from exc
        statements = _statements(connection.vendor)
        user = _fetch_user(statements.bearer, [user_id, personal_token_id], statements.converted)
        if user is None:
            raise exceptions.AuthenticationFailed(_("Access token is revoked or its user no longer exists."))
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        set_user(user)
        return user, token

    def authenticate_header(self, request):
        return BEARER_CHALLENGE


class SessionAuthentication(authentication.SessionAuthentication):
    """DRF's session scheme (browsable API), with the user on the request's log records."""

    def authenticate(self, request):
        accepted = super().authenticate(request)
        if accepted is not None:
            set_user(accepted[0])
        return accepted


class LabelStudioAuthentication(authentication.BaseAuthentication):
    """Attach mode's only scheme: whoever the attached Label Studio accepts (`users.labelstudio`), by its session
    cookie, legacy token or personal-access JWT. A cookie-authenticated write must carry Label Studio's CSRF
    token. This service never sets, refreshes or clears Label Studio's cookies."""

    def authenticate(self, request):
        credentials = labelstudio.caller_credentials(request._request)
        if credentials is None:
            return None
        try:
            user = labelstudio.user_for(credentials)
        except labelstudio.LabelStudioRefused as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc
        except labelstudio.LabelStudioUnavailable as exc:
            raise LabelStudioUnavailable() from exc
        writes = request.method not in ("GET", "HEAD", "OPTIONS")
        if credentials.is_session and writes and not labelstudio.csrf_matches(request._request):
            raise exceptions.PermissionDenied("CSRF token missing or incorrect.")
        set_user(user)
        return user, None

    def authenticate_header(self, request):
        return "Token"


class LabelStudioUnavailable(exceptions.APIException):
    status_code = 503
    default_detail = "Label Studio could not be asked who the caller is; try again shortly."
    default_code = "label_studio_unavailable"
