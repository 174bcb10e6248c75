"""Task import below the service: check tasks from any source and write them in bulk as rows.

Sources are read once, as the import goes: `prepare_tasks` sets up the checks and `write_tasks` pulls checked tasks
in batches (`BATCH_TASKS` tasks or `BATCH_BYTES` of encoded JSON, whichever comes first) and inserts each batch
with its annotations, predictions and drafts inside the caller's transaction, so memory holds one batch whatever
the size of the import. Reading requests and files is `projects.uploads`.
"""

import math
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from django.db import DataError, connection, models
from django.db.models import Max
from django.utils.dateparse import parse_datetime

from projects.exceptions import ImportRejected
from projects.models import Annotation, AnnotationDraft, Prediction, Task

# JSON's escape for the NUL character, which PostgreSQL refuses in JSON and text (not an escaped backslash + "u0000").
NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")

TASK_FIELDS = (
    "project",
    "data",
    "meta",
    "inner_id",
    "created_at",
    "updated_at",
    "is_labeled",
    "allow_skip",
    "total_annotations",
    "cancelled_annotations",
    "total_predictions",
    "file_upload",
)
# Each annotation, prediction and draft row starts with its task's id (known only after the tasks are in).
ANNOTATION_FIELDS = (
    "task",
    "result",
    "was_cancelled",
    "ground_truth",
    "lead_time",
    "draft_created_at",
    "last_action",
    "project",
    "completed_by",
    "created_at",
    "updated_at",
    "prediction",
    "result_count",
    "unique_id",
    "bulk_created",
)
PREDICTION_FIELDS = (
    "task",
    "result",
    "score",
    "model_version",
    "project",
    "mislabeling",
    "created_at",
    "updated_at",
)
DRAFT_FIELDS = ("task", "result", "lead_time", "user", "was_postponed", "created_at", "updated_at")

# A batch ends at this many tasks or this many bytes of encoded JSON, whichever comes first.
BATCH_TASKS = 2000
BATCH_BYTES = 8 * 1024 * 1024


@dataclass
class TaskSource:
    """Raw task items from one place (the request body or one uploaded file), each with its number (index, line
    or row) there, and how to point at one. `items` may be read only once; reading it may raise the source's own
    error (unreadable JSON, a bad CSV row) partway."""

    items: Iterable[tuple[int, Any]]
    file_name: str | None = None
    unit: str = "item"

    @classmethod
    def of(cls, payload: Any) -> "TaskSource":
        """The tasks of an already parsed payload: a list of tasks, or one task."""
        return cls(enumerate(payload if isinstance(payload, list) else [payload]))

    def where(self, number: int) -> str:
        if self.file_name is None:
            return f"Error at {self.unit} {number}"
        return f"{self.file_name} {self.unit} {number}"


class TaskProblem(ValueError):
    """What is wrong with one task; the caller adds where the task came from."""


# Checking tasks -----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class PreparedTask:
    """One checked task with its JSON already encoded, ready to become rows."""

    data: str
    meta: str
    annotations: list[tuple]  # (result, was_cancelled, ground_truth, lead_time, draft_created_at, last_action)
    predictions: list[tuple]  # (result, score, model_version)
    drafts: list[tuple]  # (result, lead_time)
    source: int  # index of the source the task came from
    done: int  # annotations that were not cancelled
    size: int  # bytes of encoded JSON, to bound a batch

    @property
    def cancelled(self) -> int:
        return len(self.annotations) - self.done


@dataclass
class PreparedImport:
    """An import's sources with the checks to apply, and totals over the tasks checked so far (all of them once
    `batches()` is exhausted)."""

    sources: Sequence[TaskSource]
    required_keys: set[str]
    task_count: int = 0
    data_keys: set[str] = field(default_factory=set)
    annotation_count: int = 0
    prediction_count: int = 0
    model_version: str = ""  # the last one named by an imported prediction

    def batches(self) -> Iterator[list[PreparedTask]]:
        """Checked tasks of every source in order, a batch at a time; reads the sources, so it runs once.

        The first problem rejects the import (ImportRejected naming the task). Before that, the rest of the
        sources is still read: one that cannot be read is reported instead, as when every source was parsed
        before any task was checked.
        """
        batch: list[PreparedTask] = []
        size = 0
        for position, source in enumerate(self.sources):
            items = iter(source.items)
            for number, item in items:
                try:
                    task = _prepare_task(item, self.required_keys, position)
                except TaskProblem as exc:
                    _read_rest(items, self.sources[position + 1 :])
                    raise ImportRejected(f"{source.where(number)}: {exc}") from exc
                self.task_count += 1
                self.data_keys.update(item.get("data", item))
                self.annotation_count += len(task.annotations)
                self.prediction_count += len(task.predictions)
                for prediction in task.predictions:
                    self.model_version = prediction[2] or self.model_version
                batch.append(task)
                size += task.size
                if len(batch) >= BATCH_TASKS or size >= BATCH_BYTES:
                    yield batch
                    batch, size = [], 0
        if batch:
            yield batch
        if not self.task_count:
            raise ImportRejected("load_tasks: No tasks added")


def prepare_tasks(sources: Sequence[TaskSource], *, required_keys: set[str]) -> PreparedImport:
    """Set up the checks of every task of every source; they run as `write_tasks` reads the batches."""
    return PreparedImport(sources=sources, required_keys=required_keys)


def _read_rest(items: Iterator[tuple[int, Any]], sources: Sequence[TaskSource]) -> None:
    """Read what is left of the current source and every later one, only for the errors reading raises."""
    for _ in items:
        pass
    for source in sources:
        for _ in source.items:
            pass


def _prepare_task(item: Any, required_keys: set[str], source: int) -> PreparedTask:
    """A task is `{"data": {...}, "annotations": [...], ...}` or, without a "data" key, the data itself."""
    if not isinstance(item, dict):
        raise TaskProblem(f"a task must be a JSON object, got {_json_type(item)}")
    task = item if "data" in item else {"data": item}
    data = task["data"]
    if not isinstance(data, dict):
        raise TaskProblem('"data" must be a JSON object')
    if not required_keys <= data.keys():
        raise TaskProblem(f'"{sorted(required_keys - data.keys())[0]}" key is expected in task data')
    meta = task.get("meta")
    if meta and not isinstance(meta, dict):
        raise TaskProblem('"meta" must be a JSON object')
    annotations = _entries(task, "annotations", _annotation)
    encoded_data = _dumps(data)
    encoded_meta = _dumps(meta) if meta else "{}"
    predictions = _entries(task, "predictions", _prediction)
    drafts = _entries(task, "drafts", _draft)
    size = len(encoded_data) + len(encoded_meta)
    for entries in (annotations, predictions, drafts):
        for entry in entries:
            size += len(entry[0])
    return PreparedTask(
        data=encoded_data,
        meta=encoded_meta,
        annotations=annotations,
        predictions=predictions,
        drafts=drafts,
        source=source,
        done=sum(1 for annotation in annotations if not annotation[1]),
        size=size,
    )


def _entries(task: dict, key: str, prepare: Callable[[dict, str], tuple]) -> list[tuple]:
    entries = task.get(key)
    if not entries:
        return []
    if not isinstance(entries, list):
        raise TaskProblem(f'"{key}" must be a list of objects')
    return [prepare(entry, key) for entry in entries]


def _annotation(entry: Any, key: str) -> tuple:
    if not isinstance(entry, dict):
        raise TaskProblem(f'"{key}" must be a list of objects')
    cancelled = bool(entry.get("was_cancelled", False))
    last_action = entry.get("last_action")
    if last_action is not None and (
        not isinstance(last_action, str) or len(last_action) > 128 or "\x00" in last_action
    ):
        raise TaskProblem(f"{key}: last_action must be a string of at most 128 characters")
    return (
        _result(entry, key),
        cancelled,
        bool(entry.get("ground_truth", True)),  # as Label Studio: imported means ground truth, skipped ones too
        _number(entry, "lead_time", key),
        _datetime(entry, "draft_created_at", key),
        last_action,
    )


def _prediction(entry: Any, key: str) -> tuple:
    if not isinstance(entry, dict):
        raise TaskProblem(f'"{key}" must be a list of objects')
    model_version = str(entry.get("model_version") or "")
    if "\x00" in model_version:
        raise TaskProblem(f"{key}: model_version cannot hold a NUL character")
    return _result(entry, key), _number(entry, "score", key), model_version


def _draft(entry: Any, key: str) -> tuple:
    if not isinstance(entry, dict):
        raise TaskProblem(f'"{key}" must be a list of objects')
    return _result(entry, key), _number(entry, "lead_time", key)


def _result(entry: dict, key: str) -> str:
    result = entry.get("result") or []
    if not isinstance(result, list):
        raise TaskProblem(f"{key}: result must be a list")
    return _dumps(result)


def _number(entry: dict, name: str, key: str) -> float | None:
    value = entry.get(name)
    if value is None:
        return None
    if type(value) is float and math.isfinite(value):
        return value
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if not math.isfinite(number):
        raise TaskProblem(f"{key}: {name} must be a number, got {value!r}")
    return number


def _datetime(entry: dict, name: str, key: str) -> datetime | None:
    value = entry.get(name)
    if value is None:
        return None
    try:
        parsed = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:  # well formed but impossible, such as month 13
        parsed = None
    if parsed is None:
        raise TaskProblem(f"{key}: {name} must be an ISO 8601 date and time, got {value!r}")
    try:
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except OverflowError:  # an offset that moves it past year 9999 in UTC, where it is stored
        raise TaskProblem(f"{key}: {name} is out of range, got {value!r}") from None


def _dumps(value: Any) -> str:
    try:
        text = orjson.dumps(value).decode()
    except orjson.JSONEncodeError as exc:
        raise TaskProblem(f"cannot be stored as JSON: {exc}") from exc
    if "\\u0000" in text and NUL_ESCAPE.search(text):
        raise TaskProblem("text with a NUL character (\\u0000) cannot be stored")
    return text


def _json_type(value: Any) -> str:
    names = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}
    return names.get(type(value), type(value).__name__)


# Writing rows -------------------------------------------------------------------------------------------------


def insert_rows(model: type[models.Model], fields: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Insert many rows of `model` in one go: COPY on PostgreSQL, executemany elsewhere. Values must already be
    in database form: JSON as text, datetimes through `connection.ops.adapt_datetimefield_value`."""
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = ", ".join(quote(_column(model, name)) for name in fields)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # `wrap_database_errors`: psycopg's errors become Django's (DataError, IntegrityError...), as with execute.
            with connection.wrap_database_errors, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * len(fields))
            # Django takes any iterable here (a generator too); its stubs ask for a Sequence.
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", rows)  # type: ignore[arg-type]


def _column(model: type[models.Model], name: str) -> str:
    """The column of one of `model`'s fields, by the field's name."""
    field = model._meta.get_field(name)
    if not isinstance(field, models.Field) or field.column is None:
        raise ValueError(f"{model.__name__}.{name} has no column")
    return field.column


def prediction_rows(*, project_id: int, items: Iterable[dict]) -> list[tuple]:
    """PREDICTION_FIELDS rows for checked `{task, result, score, model_version}` items, all encoded before any is
    written; ImportRejected names the first item whose result cannot be stored."""
    now = connection.ops.adapt_datetimefield_value(datetime.now(UTC))
    rows = []
    for index, item in enumerate(items):
        try:
            result = _dumps(item.get("result") or [])
        except TaskProblem as exc:
            raise ImportRejected(f"Error at item {index}: {exc}") from exc
        rows.append(
            (item["task"], result, item.get("score"), item.get("model_version") or "", project_id, 0.0, now, now)
        )
    return rows


def write_tasks(
    prepared: PreparedImport,
    *,
    project_id: int,
    user_id: int | None,
    labeled_at: int,
    file_uploads: Sequence[str | None],
) -> list[int]:
    """Insert the tasks with their annotations, predictions and drafts, batch by batch as `prepared` reads its
    sources; returns the task ids in import order.

    Tasks are numbered (`inner_id`) after the project's last one and their ids are read back in that order, so
    the caller must hold the project: no other import may add tasks to it meanwhile. A task is labeled once
    `labeled_at` of its annotations are not cancelled. `file_uploads[source]` names the file a task came from.

    A value the database refuses (DataError) stops the writing but not the reading: an unreadable source or a
    task that fails its checks later on is reported instead, as when every task was checked before the first
    was written. The caller's transaction must then be rolled back.
    """
    last = Task.objects.filter(project_id=project_id).aggregate(id=Max("id"), inner_id=Max("inner_id"))
    writer = _BatchWriter(
        project_id=project_id,
        user_id=user_id,
        labeled_at=labeled_at,
        file_uploads=file_uploads,
        last_id=last["id"] or 0,
        next_inner_id=(last["inner_id"] or 0) + 1,
    )
    ids: list[int] = []
    refused: DataError | None = None
    for batch in prepared.batches():
        if refused is not None:
            continue  # only checking from here on
        try:
            ids += writer.write(batch)
        except DataError as exc:
            refused = exc
    if refused is not None:
        raise refused
    return ids


class _BatchWriter:
    """Inserts one batch of prepared tasks after another into a project; inner ids continue from batch to batch.
    Five statements per batch: the tasks, their ids read back, then annotations, predictions and drafts."""

    def __init__(
        self,
        *,
        project_id: int,
        user_id: int | None,
        labeled_at: int,
        file_uploads: Sequence[str | None],
        last_id: int,
        next_inner_id: int,
    ):
        self.project_id = project_id
        self.user_id = user_id
        self.labeled_at = labeled_at
        self.file_uploads = file_uploads
        self.last_id = last_id
        self.next_inner_id = next_inner_id
        self.now = connection.ops.adapt_datetimefield_value(datetime.now(UTC))

    def write(self, tasks: list[PreparedTask]) -> list[int]:
        project_id, user_id, now, labeled_at, file_uploads = (
            self.project_id,
            self.user_id,
            self.now,
            self.labeled_at,
            self.file_uploads,
        )
        first_inner_id = self.next_inner_id
        insert_rows(
            Task,
            TASK_FIELDS,
            (
                (
                    project_id,
                    task.data,
                    task.meta,
                    first_inner_id + offset,
                    now,
                    now,
                    task.done >= labeled_at,
                    True,
                    task.done,
                    task.cancelled,
                    len(task.predictions),
                    file_uploads[task.source],
                )
                for offset, task in enumerate(tasks)
            ),
        )
        # The new rows are the project's tasks after its last id (the (project, id) index finds them), in inner_id
        # order.
        ids = list(
            Task.objects.filter(project_id=project_id, id__gt=self.last_id)
            .order_by("inner_id")
            .values_list("id", flat=True)
        )
        if len(ids) != len(tasks):
            raise RuntimeError(f"expected {len(tasks)} new tasks in project {project_id}, found {len(ids)}")
        self.last_id = ids[-1]
        self.next_inner_id += len(tasks)

        adapt_datetime = connection.ops.adapt_datetimefield_value
        native_uuid = connection.features.has_native_uuid_field
        insert_rows(
            Annotation,
            ANNOTATION_FIELDS,
            (
                (
                    task_id,
                    result,
                    cancelled,
                    ground_truth,
                    lead_time,
                    adapt_datetime(draft_created_at) if draft_created_at else None,
                    last_action,
                    project_id,
                    user_id,
                    now,
                    now,
                    "{}",
                    0,
                    str(uuid.uuid4()) if native_uuid else uuid.uuid4().hex,
                    True,
                )
                for task_id, task in zip(ids, tasks, strict=True)
                for result, cancelled, ground_truth, lead_time, draft_created_at, last_action in task.annotations
            ),
        )
        insert_rows(
            Prediction,
            PREDICTION_FIELDS,
            (
                (task_id, result, score, model_version, project_id, 0.0, now, now)
                for task_id, task in zip(ids, tasks, strict=True)
                for result, score, model_version in task.predictions
            ),
        )
        insert_rows(
            AnnotationDraft,
            DRAFT_FIELDS,
            (
                (task_id, result, lead_time, user_id, False, now, now)
                for task_id, task in zip(ids, tasks, strict=True)
                for result, lead_time in task.drafts
            ),
        )
        return ids
