"""Snapshot rows read from Django models: the service's own tables by default.

`ModelTables` names the four models a source reads and the database they live in, so the same queries serve
any set of tables of the same shape. JSON columns are read as their stored text and times and UUIDs are rendered
by the database, so the writer splices them into its output without parsing them.

The queries a snapshot runs for every batch are compiled once per selection (`config.prepared`), and their rows
come as the driver returns them: every column is a number, text, or a boolean the driver decodes itself
(`Decoded`), so no Django converter runs for any value.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import CharField, Exists, Field, Func, IntegerField, Model, OuterRef, Q, QuerySet, TextField
from django.db.models.functions import Cast

from config.prepared import PreparedQuery
from exports.sources.base import TaskSelection
from projects.models import Annotation, AnnotationDraft, Prediction, Task

__all__ = ["OWN_TABLES", "ModelTables", "TableRows", "annotation_filter"]


def _text(name: str) -> Cast:
    """A JSON column read as its stored text, so it is copied into the output without being parsed."""
    return Cast(name, TextField())


class IsoUtc(Func):
    """A timestamp rendered by the database as ISO 8601 UTC with microseconds and `Z` (no Python parsing)."""

    output_field = CharField()

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(
            compiler,
            connection,
            template="""to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""",
            **extra,
        )

    def as_sqlite(self, compiler, connection, **extra):
        # Django stores aware datetimes in SQLite as UTC text "YYYY-MM-DD HH:MM:SS[.ffffff]".
        return self.as_sql(compiler, connection, template="replace(%(expressions)s, ' ', 'T') || 'Z'", **extra)


class UuidText(Func):
    """A UUID column as its canonical text (lowercase, hyphenated): the string a UUID object encodes to."""

    template = "%(expressions)s"
    output_field = CharField()

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="(%(expressions)s)::text", **extra)

    def as_sqlite(self, compiler, connection, **extra):
        # Django stores a UUID in SQLite as 32 hex digits; hyphens or capitals written by other means are undone.
        digits = "lower(replace(%(expressions)s, '-', ''))"
        groups = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))  # 8-4-4-4-12
        pieces = (f"substr({digits}, {start}, {length})" for start, length in groups)
        return self.as_sql(compiler, connection, template=" || '-' || ".join(pieces), **extra)


class Decoded(Func):
    """A boolean column as the database driver decodes it, which spares Django's converter (a Python call per
    value, a good part of reading a batch on SQLite). Both drivers decode booleans: psycopg by the column's type,
    SQLite's by the declared type `bool`, through the converter Django registers for it. The untyped output field
    is what tells Django that no converter applies."""

    template = "%(expressions)s"
    output_field = Field()


class Unindexed(Func):
    """A column SQLite filters on without choosing its index (`+column`); elsewhere the column itself.

    With no statistics (no ANALYZE) SQLite prefers an equality to a range: given `project_id = ? AND task_id
    BETWEEN ? AND ?` it reads every annotation of the project through the project index and sorts them, for each
    batch. The batch's rows lie in one range of the task index, which PostgreSQL's planner picks by itself.
    """

    template = "%(expressions)s"
    output_field = IntegerField()

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="+%(expressions)s", **extra)


# Output key (exports.sources.base's *_KEYS, in that order) → column or expression.
TASK_COLUMNS: dict = {
    "id": "id",
    "data": _text("data"),
    "meta": _text("meta"),
    "created_at": IsoUtc("created_at"),
    "updated_at": IsoUtc("updated_at"),
    "allow_skip": Decoded("allow_skip"),
    "inner_id": "inner_id",
    "total_annotations": "total_annotations",
    "cancelled_annotations": "cancelled_annotations",
    "total_predictions": "total_predictions",
    "project": "project_id",
    "updated_by": "updated_by_id",
    "file_upload": "file_upload",
}
ANNOTATION_COLUMNS: dict = {
    "id": "id",
    "task": "task_id",
    "completed_by": "completed_by_id",
    "result": _text("result"),
    "was_cancelled": Decoded("was_cancelled"),
    "ground_truth": Decoded("ground_truth"),
    "created_at": IsoUtc("created_at"),
    "updated_at": IsoUtc("updated_at"),
    "draft_created_at": IsoUtc("draft_created_at"),
    "lead_time": "lead_time",
    "prediction": _text("prediction"),
    "result_count": "result_count",
    "unique_id": UuidText("unique_id"),
    "import_id": "import_id",
    "last_action": "last_action",
    "bulk_created": Decoded("bulk_created"),
    "project": "project_id",
    "updated_by": "updated_by_id",
    "parent_prediction": "parent_prediction_id",
    "parent_annotation": "parent_annotation_id",
    "last_created_by": "last_created_by_id",
}
USER_COLUMNS: dict = {
    "email": "completed_by__email",
    "first_name": "completed_by__first_name",
    "last_name": "completed_by__last_name",
}
PREDICTION_COLUMNS: dict = {
    "id": "id",
    "task": "task_id",
    "result": _text("result"),
    "model_version": "model_version",
    "score": "score",
    "cluster": "cluster",
    "neighbors": _text("neighbors"),
    "mislabeling": "mislabeling",
    "created_at": IsoUtc("created_at"),
    "updated_at": IsoUtc("updated_at"),
    "project": "project_id",
}
DRAFT_COLUMNS: dict = {
    "id": "id",
    "task": "task_id",
    "user": "user_id",
    "result": _text("result"),
    "lead_time": "lead_time",
    "was_postponed": Decoded("was_postponed"),
    "import_id": "import_id",
    "created_at": IsoUtc("created_at"),
    "updated_at": IsoUtc("updated_at"),
    "annotation": "annotation_id",
}
IDS = {"id": "id", "task": "task_id"}


@dataclass(frozen=True)
class ModelTables:
    """The models holding tasks, annotations, predictions and drafts, and the database alias they are read from.

    Annotations and predictions carry their task's project; drafts are scoped through their task.
    """

    task: type[Model]
    annotation: type[Model]
    prediction: type[Model]
    draft: type[Model]
    database: str = "default"


OWN_TABLES = ModelTables(task=Task, annotation=Annotation, prediction=Prediction, draft=AnnotationDraft)


def _rows(queryset: QuerySet, columns: dict) -> QuerySet:
    """`values_list` of the given columns; expressions (JSON as text, ISO times) get private aliases."""
    plain = {key: value for key, value in columns.items() if isinstance(value, str)}
    casts = {f"_out_{key}": value for key, value in columns.items() if not isinstance(value, str)}
    names = [plain.get(key, f"_out_{key}") for key in columns]
    return queryset.annotate(**casts).values_list(*names)


def _run(query: PreparedQuery, **values: int) -> list[tuple]:
    """The rows of a prepared query; none when its filters can match nothing (say, no annotation kind chosen), a
    query Django does not compile."""
    try:
        return query.rows(**values)
    except EmptyResultSet:
        return []


def annotation_filter(options: dict | None) -> Q:
    """Annotations kept by `annotation_filter_options`: any flag that is true matches (none given: all)."""
    if options is None:
        return Q()
    rule = Q(pk__in=[])
    if options.get("usual", True):
        rule |= Q(was_cancelled=False, ground_truth=False)
    if options.get("ground_truth"):
        rule |= Q(ground_truth=True)
    if options.get("skipped"):
        rule |= Q(was_cancelled=True)
    return rule


class TableRows:
    """The rows of one selection, read from `tables` with a fixed number of indexed queries per batch."""

    task_columns: dict = TASK_COLUMNS

    def __init__(self, selection: TaskSelection, tables: ModelTables = OWN_TABLES):
        self.selection = selection
        self.tables = tables
        self.task_queryset = self._filtered_tasks()
        self.annotation_rule = annotation_filter(selection.annotation_filter_options)
        self._count: int | None = None
        self._queries: dict[tuple, PreparedQuery] = {}

    def _objects(self, model: type[Model]) -> QuerySet:
        return model._default_manager.using(self.tables.database)

    def _filtered_tasks(self) -> QuerySet:
        """The project's tasks narrowed by `task_filter_options` (Label Studio's only/exclude semantics) and the
        selection's bounds."""
        selection, annotations = self.selection, self._objects(self.tables.annotation)
        tasks = self._objects(self.tables.task).filter(project_id=selection.project_id)
        options = selection.task_filter_options or {}
        rules = {
            "annotated": Q(Exists(annotations.filter(task=OuterRef("pk"), was_cancelled=False))),
            "finished": Q(is_labeled=True),
            "skipped": Q(Exists(annotations.filter(task=OuterRef("pk"), was_cancelled=True))),
        }
        for name, rule in rules.items():
            mode = options.get(name)
            if mode == "only":
                tasks = tasks.filter(rule)
            elif mode == "exclude":
                tasks = tasks.exclude(rule)
        if options.get("only_with_annotations"):
            tasks = tasks.filter(Exists(annotations.filter(task=OuterRef("pk"))))
        if selection.task_ids is not None:
            tasks = tasks.filter(pk__in=selection.task_ids)
        if selection.first_id is not None:
            tasks = tasks.filter(pk__gte=selection.first_id)
        if selection.last_id is not None:
            tasks = tasks.filter(pk__lte=selection.last_id)
        return tasks

    def count(self) -> int:
        if self._count is None:
            self._count = self.task_queryset.count()
        return self._count

    def task_id_at(self, offset: int) -> int | None:
        found = list(self.task_queryset.order_by("pk").values_list("pk", flat=True)[offset : offset + 1])
        return found[0] if found else None

    def tasks(self, *, after_id: int, limit: int) -> list[tuple]:
        def build(after_id: int) -> QuerySet:
            return _rows(self.task_queryset.filter(pk__gt=after_id).order_by("pk"), self.task_columns)[:limit]

        return _run(self._compiled(("tasks", limit), build, "after_id"), after_id=after_id)

    def project_task_ids(self, *, after_id: int, limit: int) -> list[int]:
        tasks = self._objects(self.tables.task).filter(project_id=self.selection.project_id, pk__gt=after_id)
        return list(tasks.order_by("pk").values_list("pk", flat=True)[:limit])

    def _compiled(self, key: tuple, build: Callable[..., QuerySet], *parameters: str) -> PreparedQuery:
        """The query `key` of this selection, compiled on first use: a snapshot runs each of its queries once per
        batch, and compiling one costs about as much as running it."""
        if (query := self._queries.get(key)) is None:
            query = self._queries[key] = PreparedQuery(build, *parameters, using=self.tables.database)
        return query

    def _related(self, model: type[Model], columns: dict, first: int, last: int, *rules: Q) -> dict[int, list[tuple]]:
        """Rows of `model` for the tasks first..last of the project, grouped by task id, in id order."""
        project_id = self.selection.project_id

        def build(first: int, last: int) -> QuerySet:
            queryset = self._objects(model).filter(*rules, task_id__gte=first, task_id__lte=last)
            if model is self.tables.draft:
                queryset = queryset.filter(task__project_id=project_id)
            else:
                queryset = queryset.alias(_project=Unindexed("project_id")).filter(_project=project_id)
            return _rows(queryset.order_by("task_id", "pk"), columns)

        grouped: dict[int, list[tuple]] = {}
        for row in _run(self._compiled((model, *columns), build, "first", "last"), first=first, last=last):
            grouped.setdefault(row[1], []).append(row)
        return grouped

    def annotations(self, first: int, last: int, *, with_users: bool) -> dict[int, list[tuple]]:
        columns = {**ANNOTATION_COLUMNS, **USER_COLUMNS} if with_users else ANNOTATION_COLUMNS
        return self._related(self.tables.annotation, columns, first, last, self.annotation_rule)

    def predictions(self, first: int, last: int, *, full: bool) -> dict[int, list[tuple]]:
        return self._related(self.tables.prediction, PREDICTION_COLUMNS if full else IDS, first, last)

    def drafts(self, first: int, last: int, *, full: bool) -> dict[int, list[tuple]]:
        return self._related(self.tables.draft, DRAFT_COLUMNS if full else IDS, first, last)

    def read_ahead_database(self) -> str | None:
        """On PostgreSQL outside a transaction only: inside one (as in tests) a second connection could not see
        uncommitted rows. Not on SQLite: its driver releases the GIL for every row it steps, so a reader thread
        beside the encoding one waits for the GIL once per row and reads several times slower than the writer's
        own thread does."""
        connection = connections[self.tables.database]
        if connection.vendor == "postgresql" and not connection.in_atomic_block:
            return self.tables.database
        return None
