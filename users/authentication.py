"""`Authorization: Token <key>`, looked up with one precompiled SQL statement (it runs on every request)."""

from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from users.models import User

USER_FIELDS = [field for field in User._meta.concrete_fields]


def _sql() -> str:
    columns = ", ".join(f"u.{connection.ops.quote_name(field.column)}" for field in USER_FIELDS)
    return (
        f"SELECT {columns} FROM {Token._meta.db_table} t "  # noqa: S608 -- table and column names are ours
        f"JOIN {User._meta.db_table} u ON u.id = t.user_id WHERE t.key = %s"
    )


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token scheme and messages; the user row is read and built without compiling an ORM query."""

    def authenticate_credentials(self, key):
        with connection.cursor() as cursor:
            cursor.execute(_sql(), [key])
            row = cursor.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        values = []
        for field, value in zip(USER_FIELDS, row, strict=True):
            column = field.get_col(User._meta.db_table)
            for converter in connection.ops.get_db_converters(column) + column.get_db_converters(connection):
                value = converter(value, column, connection)
            values.append(value)
        user = User.from_db(connection.alias, [field.attname for field in USER_FIELDS], values)
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return user, Token(key=key, user=user)
