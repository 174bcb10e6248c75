"""Reads of snapshots for the hottest endpoint, in plain SQL: two indexed queries, no ORM compilation."""

from datetime import UTC, datetime
from types import SimpleNamespace

import orjson
from django.db import connection

from exports.models import ConvertedFormat, Export
from projects.models import Project
from users.models import User

EXPORT_COLUMNS = ("id", "title", "status", "md5", "counters", "created_at", "finished_at", "project_id")
USER_COLUMNS = ("id", "username", "first_name", "last_name", "email", "avatar")
PROJECT_COLUMNS = ("title", "description", "label_config", "organization_id", "created_at")


def _aware(value):
    """SQLite hands back naive UTC datetimes; PostgreSQL aware ones."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _json(value):
    if value is None or not isinstance(value, str | bytes):
        return value
    return orjson.loads(value)


def _sql() -> str:
    export, project, user = Export._meta.db_table, Project._meta.db_table, User._meta.db_table
    columns = [f"e.{name}" for name in EXPORT_COLUMNS]
    columns += [f"u.{name}" for name in USER_COLUMNS]
    columns += [f"p.{name}" for name in PROJECT_COLUMNS]
    return (
        f"SELECT {', '.join(columns)} FROM {export} e "  # noqa: S608 -- table and column names are ours
        f"JOIN {project} p ON p.id = e.project_id "
        f"LEFT JOIN {user} u ON u.id = e.created_by_id "
        "WHERE e.id = %s AND e.project_id = %s AND p.organization_id = %s"
    )


def _avatar(name: str | None):
    """The stored avatar as the object the user serializer expects (falsy when there is none)."""
    if not name:
        return None
    return User._meta.get_field("avatar").attr_class(User(avatar=name), User._meta.get_field("avatar"), name)


def export_for_api(*, project_id: int, export_id: int, organization_id: int | None) -> SimpleNamespace | None:
    """The snapshot as the API shows it (creator, brief project, converted formats), or None when it is not
    in that project of that organization."""
    if organization_id is None:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_sql(), [export_id, project_id, organization_id])
        row = cursor.fetchone()
        if row is None:
            return None
        cursor.execute(
            f"SELECT id, status, export_type, traceback FROM {ConvertedFormat._meta.db_table} "  # noqa: S608
            "WHERE export_id = %s ORDER BY id",
            [export_id],
        )
        formats = [SimpleNamespace(id=i, status=s, export_type=t, traceback=tb) for i, s, t, tb in cursor.fetchall()]
    values = iter(row)
    export = dict(zip(EXPORT_COLUMNS, values, strict=False))
    user = dict(zip(USER_COLUMNS, values, strict=False))
    project = dict(zip(PROJECT_COLUMNS, values, strict=False))
    creator = None
    if user["id"] is not None:
        creator = SimpleNamespace(**{**user, "avatar": _avatar(user["avatar"])})
    return SimpleNamespace(
        **{
            **export,
            "pk": export["id"],
            "counters": _json(export["counters"]),
            "created_at": _aware(export["created_at"]),
            "finished_at": _aware(export["finished_at"]),
            "created_by": creator,
            "project": SimpleNamespace(
                id=export["project_id"], **{**project, "created_at": _aware(project["created_at"])}
            ),
            "converted_formats": formats,
        }
    )
