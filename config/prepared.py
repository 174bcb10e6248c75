"""The hottest reads, compiled once: querysets compiled to SQL once per process and run again with other values
(compiling the ORM query costs more than running it), and on PostgreSQL planned once per connection.

The queryset is built once with a stand-in value for each parameter; the SQL Django compiles for it is kept with
the positions of those stand-ins among its parameters, and each run substitutes the real values. Rows come back
through Django's own converters, so they are what the queryset itself would give.

On PostgreSQL the statements of every request (`plan_once`: the snapshot detail in `exports.selectors`; the
caller's user in `users.authentication`) run as server-side prepared statements, planned once per connection:
planning them cost PostgreSQL three to four times as much CPU as running them. Django still sends every other
query unprepared (its default, kept so that poolers that cannot follow prepared statements work); these few need
a pooler that can (PgBouncer 1.22 or later in transaction mode, with its default `max_prepared_statements`), or
none; DATABASE_PREPARED_STATEMENTS=0 sends them unprepared too.
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import psycopg
from django.conf import settings
from django.db import connections
from django.db.backends.postgresql.psycopg_any import register_tzloader
from django.db.backends.utils import CursorWrapper
from django.db.models import QuerySet
from django.db.models.expressions import Expression
from django.db.models.sql.compiler import SQLCompiler
from psycopg.pq import Format

__all__ = ["PreparedQuery", "planned_once_cursor"]

_TIMESTAMPTZ_OID = psycopg.adapters.types["timestamptz"].oid
# A prepare threshold no statement reaches by being run repeatedly.
_ONLY_WHEN_ASKED = 2**62
# Stand-ins no real id takes, one per parameter.
_FIRST_STAND_IN = -(10**15)
# What `SQLCompiler.get_converters` returns: per column index, its converters and its expression.
_Converters = dict[int, tuple[list[Callable[..., Any]], Expression]]


class PreparedQuery:
    """`build(**parameters)` → a queryset (usually `values_list`) compiled once, run with `rows(**values)`.

    `plan_once`: also have PostgreSQL plan it once per connection (`planned_once_cursor`), for statements run on
    every request."""

    def __init__(
        self, build: Callable[..., QuerySet], *parameters: str, using: str = "default", plan_once: bool = False
    ):
        self.build = build
        self.parameters = parameters
        self.using = using
        self.plan_once = plan_once
        self._lock = threading.Lock()
        self._compiled: tuple[SQLCompiler, str, list[Any], dict[str, list[int]], _Converters] | None = None

    def _compile(self) -> tuple[SQLCompiler, str, list[Any], dict[str, list[int]], _Converters]:
        with self._lock:
            if self._compiled is None:
                stand_ins = {name: _FIRST_STAND_IN - index for index, name in enumerate(self.parameters)}
                compiler = self.build(**stand_ins).query.get_compiler(using=self.using)
                sql, params = compiler.as_sql()
                params = list(params)
                positions = {name: [i for i, p in enumerate(params) if p == value] for name, value in stand_ins.items()}
                unused = [name for name, found in positions.items() if not found]
                if unused:
                    raise ValueError(f"The prepared query does not use its parameters {unused}")
                fields = [column[0] for column in compiler.select[0 : compiler.col_count]]
                self._compiled = (compiler, sql, params, positions, compiler.get_converters(fields))
            return self._compiled

    def rows(self, **values: Any) -> list[tuple]:
        """The rows for these parameter values, converted as the queryset would convert them."""
        compiler, sql, params, positions, converters = self._compile()
        params = list(params)
        for name, value in values.items():
            for index in positions[name]:
                params[index] = value
        with planned_once_cursor(self.using) if self.plan_once else connections[self.using].cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if converters:
            rows = [tuple(row) for row in compiler.apply_converters(rows, converters)]
        return rows


class _PlannedOnceCursor(psycopg.Cursor):
    """Binds parameters on the server and prepares every statement it runs, once per connection (psycopg keeps
    the prepared ones per connection; Django's own cursors bind on the client, which cannot prepare)."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=binary)

    def _convert_query(self, query, params=None):
        # Kept as the cursor's last query, which psycopg leaves unset for a prepared statement: Django's query log
        # (DEBUG, `CaptureQueriesContext`) reads its text from there.
        self._query = converted = super()._convert_query(query, params)
        return converted


@contextmanager
def planned_once_cursor(using: str = "default") -> Iterator[CursorWrapper]:
    """A cursor of database `using` whose statements PostgreSQL plans once per connection; an ordinary cursor on
    other databases, and with DATABASE_PREPARED_STATEMENTS off. Wrapped as Django wraps its cursors, so its
    queries are counted, logged and wrapped as any."""
    connection = connections[using]
    if connection.vendor != "postgresql" or not settings.DATABASE_PREPARED_STATEMENTS:
        with connection.cursor() as cursor:
            yield cursor
        return
    # What `BaseDatabaseWrapper.cursor()` does, with this cursor class instead of the connection's.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        if connection.connection.prepare_threshold is None:
            # Django's default: psycopg prepares nothing, not even on request. Django's own cursors bind on the
            # client, which never prepares (or, with `server_side_binding`, would prepare past this threshold,
            # which no statement reaches), so this only lets `_PlannedOnceCursor` ask.
            connection.connection.prepare_threshold = _ONLY_WHEN_ASKED
        raw = _PlannedOnceCursor(connection.connection)
        _match_time_zone(connection, raw)
    connection.validate_thread_sharing()
    database_cursor = cast(Any, raw)  # django-stubs types it as Django's wrapper; it is the driver's cursor
    if connection.queries_logged:
        cursor = connection.make_debug_cursor(database_cursor)
    else:
        cursor = connection.make_cursor(database_cursor)
    with cursor:
        yield cursor


def _match_time_zone(connection, cursor: psycopg.Cursor) -> None:
    """Datetimes in the connection's time zone, as Django's `create_cursor` does for its own cursors."""
    loader = connection.connection.adapters.get_loader(_TIMESTAMPTZ_OID, Format.TEXT)
    if connection.timezone != loader.timezone:
        register_tzloader(connection.timezone, cursor)
