"""Writes a project's tasks as Label Studio's JSON export, streaming in id order, batch by batch."""

import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import orjson
from django.conf import settings
from django.db import connection
from django.db.models import CharField, Exists, Func, OuterRef, Q, QuerySet, TextField
from django.db.models.functions import Cast

from exports.interpolation import interpolate_key_frames
from projects import label_config
from projects.models import Annotation, AnnotationDraft, Prediction, Project, Task


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


def _time(name: str) -> IsoUtc:
    return IsoUtc(name)


def _fragment(text: str | None) -> orjson.Fragment | None:
    return None if text is None else orjson.Fragment(text)


TASK_COLUMNS = {
    "id": "id",
    "data": _text("data"),
    "meta": _text("meta"),
    "created_at": _time("created_at"),
    "updated_at": _time("updated_at"),
    "allow_skip": "allow_skip",
    "inner_id": "inner_id",
    "total_annotations": "total_annotations",
    "cancelled_annotations": "cancelled_annotations",
    "total_predictions": "total_predictions",
    "project": "project_id",
    "updated_by": "updated_by_id",
    "file_upload": "file_upload",
}
ANNOTATION_COLUMNS = {
    "id": "id",
    "task": "task_id",
    "completed_by": "completed_by_id",
    "result": _text("result"),
    "was_cancelled": "was_cancelled",
    "ground_truth": "ground_truth",
    "created_at": _time("created_at"),
    "updated_at": _time("updated_at"),
    "draft_created_at": _time("draft_created_at"),
    "lead_time": "lead_time",
    "prediction": _text("prediction"),
    "result_count": "result_count",
    "unique_id": "unique_id",
    "import_id": "import_id",
    "last_action": "last_action",
    "bulk_created": "bulk_created",
    "project": "project_id",
    "updated_by": "updated_by_id",
    "parent_prediction": "parent_prediction_id",
    "parent_annotation": "parent_annotation_id",
    "last_created_by": "last_created_by_id",
}
USER_COLUMNS = {
    "email": "completed_by__email",
    "first_name": "completed_by__first_name",
    "last_name": "completed_by__last_name",
}
PREDICTION_COLUMNS = {
    "id": "id",
    "task": "task_id",
    "result": _text("result"),
    "model_version": "model_version",
    "score": "score",
    "cluster": "cluster",
    "neighbors": _text("neighbors"),
    "mislabeling": "mislabeling",
    "created_at": _time("created_at"),
    "updated_at": _time("updated_at"),
    "project": "project_id",
}
DRAFT_COLUMNS = {
    "id": "id",
    "task": "task_id",
    "user": "user_id",
    "result": _text("result"),
    "lead_time": "lead_time",
    "was_postponed": "was_postponed",
    "import_id": "import_id",
    "created_at": _time("created_at"),
    "updated_at": _time("updated_at"),
    "annotation": "annotation_id",
}
JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def _rows(queryset: QuerySet, columns: dict) -> QuerySet:
    """`values_list` of the given columns; expressions (JSON as text, ISO times) get private aliases."""
    plain = {key: value for key, value in columns.items() if isinstance(value, str)}
    casts = {f"_out_{key}": value for key, value in columns.items() if not isinstance(value, str)}
    names = [plain.get(key, f"_out_{key}") for key in columns]
    return queryset.annotate(**casts).values_list(*names)


@dataclass
class SnapshotResult:
    md5: str = ""
    size: int = 0
    counters: dict[str, int] = field(default_factory=lambda: {"task_number": 0, "annotation_number": 0})


def _only_id(options: dict | None, key: str) -> bool:
    return bool(((options or {}).get(key) or {}).get("only_id", True))


def filter_tasks(project: Project, options: dict | None) -> QuerySet:
    """The project's tasks narrowed by `task_filter_options` (Label Studio's only/exclude semantics)."""
    tasks = Task.objects.filter(project=project)
    options = options or {}
    live = Annotation.objects.filter(task=OuterRef("pk"), was_cancelled=False)
    skipped = Annotation.objects.filter(task=OuterRef("pk"), was_cancelled=True)
    rules = {
        "annotated": Q(Exists(live)),
        "finished": Q(is_labeled=True),
        "skipped": Q(Exists(skipped)),
    }
    for name, rule in rules.items():
        mode = options.get(name)
        if mode == "only":
            tasks = tasks.filter(rule)
        elif mode == "exclude":
            tasks = tasks.exclude(rule)
    if options.get("only_with_annotations"):
        tasks = tasks.filter(Exists(Annotation.objects.filter(task=OuterRef("pk"))))
    return tasks


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


def has_video_tracks(project: Project) -> bool:
    """Whether the project's config has a VideoRectangle control (the only results key frames apply to)."""
    parsed = label_config.parse_label_config_or_empty(project.label_config)
    return any(control["type"] == "VideoRectangle" for control in parsed.values())


def read_ahead(batches: Iterator[tuple]) -> Iterator[tuple]:
    """Fetch the next batch in a second thread (own connection) while the caller encodes this one.

    Only on PostgreSQL outside a transaction: inside one (as in tests) the second connection could not
    see uncommitted rows, so batches are then read in the caller's thread.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield from batches
        return
    handoff: queue.Queue = queue.Queue(maxsize=1)
    done = object()
    stop = threading.Event()

    def offer(item) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not offer(batch):
                    return
            offer(done)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            offer(exc)
        finally:
            connection.close()

    reader = threading.Thread(target=produce, name="snapshot-read-ahead", daemon=True)
    reader.start()
    try:
        while (item := handoff.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


class SnapshotWriter:
    """Serializes tasks of one export in batches; a fixed number of queries per batch, one batch in memory.

    JSON columns are read as text and spliced into the output unparsed (orjson fragments), which keeps
    the writer's cost per task close to the cost of reading the rows.
    """

    @classmethod
    def for_export(cls, export, **bounds) -> "SnapshotWriter":
        """The writer of a snapshot row (`first_id`/`last_id` for one part of a split one), as jobs run it."""
        return cls(
            project=export.project,
            task_filter_options=export.task_filter_options,
            annotation_filter_options=export.annotation_filter_options,
            serialization_options=export.serialization_options,
            batch_size=settings.EXPORT_BATCH_SIZE,
            **bounds,
        )

    def __init__(
        self,
        *,
        project: Project,
        task_filter_options: dict | None = None,
        annotation_filter_options: dict | None = None,
        serialization_options: dict | None = None,
        task_ids: list[int] | None = None,
        first_id: int | None = None,
        last_id: int | None = None,
        batch_size: int = 1000,
    ):
        self.project = project
        self.tasks = filter_tasks(project, task_filter_options)
        if task_ids is not None:
            self.tasks = self.tasks.filter(pk__in=task_ids)
        # A task-id range (both ends included) narrows the writer to one part of a parallel snapshot.
        if first_id is not None:
            self.tasks = self.tasks.filter(pk__gte=first_id)
        if last_id is not None:
            self.tasks = self.tasks.filter(pk__lte=last_id)
        self.annotation_rule = annotation_filter(annotation_filter_options)
        self.predictions_as_ids = _only_id(serialization_options, "predictions")
        self.drafts_as_ids = _only_id(serialization_options, "drafts")
        self.users_as_ids = _only_id(serialization_options, "annotations__completed_by")
        self.interpolate = bool((serialization_options or {}).get("interpolate_key_frames")) and has_video_tracks(
            project
        )
        self.batch_size = batch_size
        self._count: int | None = None

    def count(self) -> int:
        """How many tasks the writer writes, counted once (a job asks before deciding to split, then for progress)."""
        if self._count is None:
            self._count = self.tasks.count()
        return self._count

    def batches(self) -> Iterator[list[tuple]]:
        """Task rows in id order, `batch_size` at a time (keyset pagination: each batch is one indexed query)."""
        last_id = 0
        while True:
            rows = list(_rows(self.tasks.filter(pk__gt=last_id).order_by("pk"), TASK_COLUMNS)[: self.batch_size])
            if not rows:
                return
            last_id = rows[-1][0]
            yield rows

    def _related(self, model, columns: dict, first: int, last: int, *rules: Q) -> dict[int, list[tuple]]:
        """Rows of `model` for the tasks first..last of the project, grouped by task id, in id order."""
        scope = {"project": self.project} if model is not AnnotationDraft else {"task__project": self.project}
        queryset = model.objects.filter(*rules, task_id__gte=first, task_id__lte=last, **scope)
        grouped: dict[int, list[tuple]] = {}
        for row in _rows(queryset.order_by("task_id", "pk"), columns):
            grouped.setdefault(row[1], []).append(row)
        return grouped

    def _annotation(self, row: tuple) -> dict[str, Any]:
        item = dict(zip(ANNOTATION_COLUMNS, row[: len(ANNOTATION_COLUMNS)], strict=True))
        if self.interpolate and item["result"] is not None:
            item["result"] = interpolate_key_frames(orjson.loads(item["result"]))
        else:
            item["result"] = _fragment(item["result"])
        item["prediction"] = _fragment(item["prediction"])
        if not self.users_as_ids and item["completed_by"] is not None:
            extra = row[len(ANNOTATION_COLUMNS) :]
            item["completed_by"] = {"id": item["completed_by"], **dict(zip(USER_COLUMNS, extra, strict=True))}
        return {"id": item.pop("id"), "completed_by": item.pop("completed_by"), **item}

    @staticmethod
    def _prediction(row: tuple) -> dict[str, Any]:
        item = dict(zip(PREDICTION_COLUMNS, row, strict=True))
        item["result"] = _fragment(item["result"])
        item["neighbors"] = _fragment(item["neighbors"])
        return {
            "id": item["id"],
            "result": item["result"],
            "model_version": item["model_version"],
            "created_ago": "",
            "score": item["score"],
            "cluster": item["cluster"],
            "neighbors": item["neighbors"],
            "mislabeling": item["mislabeling"],
            "created_at": item["created_at"],
            "updated_at": item["updated_at"],
            "model": None,
            "model_run": None,
            "task": item["task"],
            "project": item["project"],
        }

    @staticmethod
    def _draft(row: tuple) -> dict[str, Any]:
        item = dict(zip(DRAFT_COLUMNS, row, strict=True))
        item["result"] = _fragment(item["result"])
        return {"id": item.pop("id"), "user": item.pop("user"), "created_username": "", "created_ago": "", **item}

    def encoded_batches(self) -> Iterator[tuple[list[bytes], int, int]]:
        """Per batch: each task encoded as JSON, and the number of annotations and predictions they hold."""
        annotation_columns = ANNOTATION_COLUMNS if self.users_as_ids else {**ANNOTATION_COLUMNS, **USER_COLUMNS}
        prediction_columns = {"id": "id", "task": "task_id"} if self.predictions_as_ids else PREDICTION_COLUMNS
        draft_columns = {"id": "id", "task": "task_id"} if self.drafts_as_ids else DRAFT_COLUMNS

        def fetched() -> Iterator[tuple]:
            for rows in self.batches():
                first, last = rows[0][0], rows[-1][0]
                yield (
                    rows,
                    self._related(Annotation, annotation_columns, first, last, self.annotation_rule),
                    self._related(Prediction, prediction_columns, first, last),
                    self._related(AnnotationDraft, draft_columns, first, last),
                )

        for rows, annotations, predictions, drafts in read_ahead(fetched()):
            encoded, annotation_count, prediction_count = [], 0, 0
            for row in rows:
                task = dict(zip(TASK_COLUMNS, row, strict=True))
                task_id = task["id"]
                task_annotations = [self._annotation(a) for a in annotations.get(task_id, ())]
                task_predictions = predictions.get(task_id, ())
                task_drafts = drafts.get(task_id, ())
                annotation_count += len(task_annotations)
                prediction_count += len(task_predictions)
                encoded.append(
                    orjson.dumps(
                        {
                            "id": task_id,
                            "annotations": task_annotations,
                            "drafts": [d[0] for d in task_drafts]
                            if self.drafts_as_ids
                            else [self._draft(d) for d in task_drafts],
                            "predictions": [p[0] for p in task_predictions]
                            if self.predictions_as_ids
                            else [self._prediction(p) for p in task_predictions],
                            "data": _fragment(task["data"]),
                            "meta": _fragment(task["meta"]),
                            "created_at": task["created_at"],
                            "updated_at": task["updated_at"],
                            "allow_skip": task["allow_skip"],
                            "inner_id": task["inner_id"],
                            "total_annotations": task["total_annotations"],
                            "cancelled_annotations": task["cancelled_annotations"],
                            "total_predictions": task["total_predictions"],
                            "comment_count": 0,
                            "unresolved_comment_count": 0,
                            "last_comment_updated_at": None,
                            "project": task["project"],
                            "updated_by": task["updated_by"],
                            "file_upload": task["file_upload"],
                            "comment_authors": [],
                        },
                        option=JSON_OPTIONS,
                    )
                )
            yield encoded, annotation_count, prediction_count

    def _write_lines(
        self, emit: Callable[[bytes], None], progress: Callable[[int], None] | None, result: SnapshotResult
    ) -> bool:
        """Emit the tasks one per line, joined by `,\n` (nothing before the first or after the last line);
        False when there was no task."""
        first = True
        last_report = time.monotonic()
        for parts, annotation_count, prediction_count in self.encoded_batches():
            if not parts:
                continue
            if not first:
                emit(b",\n")
            emit(b",\n".join(parts))
            first = False
            result.counters["task_number"] += len(parts)
            result.counters["annotation_number"] += annotation_count
            result.counters["prediction_number"] += prediction_count
            if progress and time.monotonic() - last_report >= 1.0:
                progress(result.counters["task_number"])
                last_report = time.monotonic()
        return not first

    def _hashing(self, out: BinaryIO) -> tuple[Callable[[bytes], None], SnapshotResult, Any]:
        digest = hashlib.md5(usedforsecurity=False)
        result = SnapshotResult(counters={"task_number": 0, "annotation_number": 0, "prediction_number": 0})

        def emit(chunk: bytes) -> None:
            out.write(chunk)
            digest.update(chunk)
            result.size += len(chunk)

        return emit, result, digest

    def write(self, out: BinaryIO, *, progress: Callable[[int, int], None] | None = None) -> SnapshotResult:
        """Write the JSON array to `out`, hashing as it goes; `progress(done, total)` at most once a second."""
        total = self.count() if progress else 0
        emit, result, digest = self._hashing(out)
        opened = False

        def line(chunk: bytes) -> None:
            nonlocal opened
            if not opened:
                emit(b"\n")
                opened = True
            emit(chunk)

        # One task per line (`[`, then `task,` lines, the last without its comma, then `]`): still one JSON
        # array, and converters can read it back a task at a time without a streaming JSON parser.
        emit(b"[")
        any_task = self._write_lines(line, progress and (lambda done: progress(done, total)), result)
        emit(b"\n]" if any_task else b"]")
        result.md5 = digest.hexdigest()
        return result

    def write_part(self, out: BinaryIO, *, progress: Callable[[int], None] | None = None) -> SnapshotResult:
        """Only the task lines of `write` (no brackets, no line break around them): one piece of a parallel
        snapshot, which exports/parallel.py joins into the same bytes one `write` gives. `progress(done)`."""
        emit, result, digest = self._hashing(out)
        self._write_lines(emit, progress, result)
        result.md5 = digest.hexdigest()
        return result
