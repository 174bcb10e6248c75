"""Set-based copy of a project's tasks, annotations and predictions into another project.

Each table is copied with one `INSERT ... SELECT`, so the work stays in the database whatever the size of the
project. New task ids are drawn up front into a temporary table of (old id, new id) pairs; annotations and
predictions are then copied through it, pointing at their task's copy. Works on PostgreSQL and SQLite.
"""

from django.db import connection
from django.db.models import Model

from projects.models import Annotation, Prediction, Task

_MAP = "project_copy_task_ids"


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _new_uuid_sql() -> str:
    """SQL giving a fresh random UUID in the column's own format (native uuid, or 32 hex digits on SQLite)."""
    if connection.vendor == "postgresql":
        return "gen_random_uuid()"
    return "lower(hex(randomblob(16)))"


def _fill_task_map(cursor, source_id: int) -> None:
    """Create the temporary (old_id, new_id) table for the source project's tasks, new ids in old id order."""
    task = _quote(Task._meta.db_table)
    if connection.vendor == "postgresql":
        cursor.execute(
            f"CREATE TEMPORARY TABLE {_MAP} (old_id bigint PRIMARY KEY, new_id bigint NOT NULL) ON COMMIT DROP"
        )
        # Ids come from the table's own sequence, so concurrent inserts elsewhere never collide with them. The
        # sequence is looked up once: inside the SELECT the lookup would run again for every row.
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [Task._meta.db_table])
        (sequence,) = cursor.fetchone()
        cursor.execute(
            f"INSERT INTO {_MAP} (old_id, new_id) "
            f"SELECT old.id, nextval(%s::regclass) "
            f"FROM (SELECT id FROM {task} WHERE project_id = %s ORDER BY id) AS old",
            [sequence, source_id],
        )
        cursor.execute(f"ANALYZE {_MAP}")  # temporary tables are never analyzed on their own
        return
    cursor.execute(f"CREATE TEMP TABLE {_MAP} (old_id integer PRIMARY KEY, new_id integer NOT NULL)")
    # SQLite: the caller's transaction already wrote (the new project), so it holds the database's write lock and
    # no other connection can take ids between this read and the insert. AUTOINCREMENT never reuses an id, so
    # start after both the highest id present and the highest ever handed out.
    cursor.execute(
        f"SELECT MAX(COALESCE((SELECT MAX(id) FROM {task}), 0), "
        f"COALESCE((SELECT seq FROM sqlite_sequence WHERE name = %s), 0))",
        [Task._meta.db_table],
    )
    (last,) = cursor.fetchone()
    cursor.execute(
        f"INSERT INTO {_MAP} (old_id, new_id) "
        f"SELECT id, %s + ROW_NUMBER() OVER (ORDER BY id) FROM {task} WHERE project_id = %s",
        [last, source_id],
    )


def _copy_rows(cursor, model: type[Model], *, overrides: dict[str, str], join: str, params: list) -> None:
    """`INSERT INTO t (...) SELECT ... FROM t AS src <join>`: every column of `model` copied from `src`, except
    those in `overrides` ({column: SQL expression}); the primary key is left to the database unless overridden."""
    columns, values = [], []
    for field in model._meta.concrete_fields:
        column = field.column
        assert column is not None  # concrete fields have one
        if field.primary_key and column not in overrides:
            continue
        columns.append(_quote(column))
        values.append(overrides.get(column, f"src.{_quote(column)}"))
    table = _quote(model._meta.db_table)
    cursor.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} FROM {table} AS src {join} "
        f"ORDER BY src.{_quote('id')}",
        params,
    )


def copy_project_data(*, source_id: int, target_id: int) -> None:
    """Copy every task of project `source_id`, with its annotations and predictions, into project `target_id`.

    Values are kept as they are (data, results, timestamps, counters on the task); only the ids and the links to
    the task and the project change. Annotation links to other annotations or predictions of the source project
    are not carried over (this service never sets them). Eight statements in all (seven on SQLite); run it
    inside the transaction that created the target project.
    """
    joined = f"JOIN {_MAP} AS ids ON ids.old_id = src.{_quote('task_id')}"
    with connection.cursor() as cursor:
        _fill_task_map(cursor, source_id)
        _copy_rows(
            cursor,
            Task,
            overrides={"id": "ids.new_id", "project_id": "%s"},
            join=f"JOIN {_MAP} AS ids ON ids.old_id = src.{_quote('id')}",
            params=[target_id],
        )
        _copy_rows(
            cursor,
            Annotation,
            overrides={
                "task_id": "ids.new_id",
                "project_id": "%s",
                "unique_id": _new_uuid_sql(),
                "parent_prediction_id": "NULL",
                "parent_annotation_id": "NULL",
            },
            join=joined,
            params=[target_id],
        )
        _copy_rows(
            cursor,
            Prediction,
            overrides={"task_id": "ids.new_id", "project_id": "%s"},
            join=joined,
            params=[target_id],
        )
        cursor.execute(f"DROP TABLE {_MAP}")  # not left behind for a second copy in the same transaction
