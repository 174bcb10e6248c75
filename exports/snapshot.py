"""Writes a project's tasks as Label Studio's JSON export, streaming in id order, batch by batch.

The rows come from a data source (`exports.sources`): the service's own tables unless the caller passes another.
"""

import hashlib
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple, Protocol

import orjson
from django.conf import settings
from django.db import connections

from exports.increments import ChangedTasks, IndexWriter, task_digest
from exports.interpolation import interpolate_key_frames
from exports.jsonarray import COMPACT, LINES, JsonArray, Layout
from exports.sources import TaskRows, TaskSelection, rows_for
from exports.sources.base import ANNOTATION_KEYS, USER_KEYS
from projects import label_config

if TYPE_CHECKING:
    from exports.models import Export

JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC
ANNOTATION_WIDTH = len(ANNOTATION_KEYS)  # an annotation row's columns before the USER_KEYS a source may append


class SnapshotProject(Protocol):
    """What a snapshot needs of its project."""

    @property
    def pk(self) -> int: ...

    @property
    def label_config(self) -> str: ...


class EncodedBatch(NamedTuple):
    """One batch of tasks as the writer encoded them, with per task its id and numbers of annotations and
    predictions."""

    task_ids: list[int]
    parts: list[bytes]
    annotation_counts: list[int]
    prediction_counts: list[int]


@dataclass
class SnapshotResult:
    md5: str = ""
    size: int = 0
    counters: dict[str, int] = field(default_factory=lambda: {"task_number": 0, "annotation_number": 0})


def _only_id(options: dict | None, key: str) -> bool:
    return bool(((options or {}).get(key) or {}).get("only_id", True))


def _fragment(text: str | None) -> orjson.Fragment | None:
    return None if text is None else orjson.Fragment(text)


def has_video_tracks(label_config_text: str) -> bool:
    """Whether a label config has a VideoRectangle control (the only results key frames apply to)."""
    parsed = label_config.parse_label_config_or_empty(label_config_text)
    return any(control["type"] == "VideoRectangle" for control in parsed.values())


def read_ahead(batches: Iterator[tuple], *, database: str = "default") -> Iterator[tuple]:
    """Fetch the next batch in a second thread (its own connection to `database`) while the caller encodes
    this one. The caller decides whether the source allows it (`TaskRows.read_ahead_database`)."""
    handoff: queue.Queue = queue.Queue(maxsize=1)
    done = object()
    stop = threading.Event()

    def offer(item: Any) -> bool:
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
            connections[database].close()

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
    """Serializes the tasks of one selection in batches; a fixed number of queries per batch, one batch in memory.

    JSON columns come as text and are spliced into the output unparsed (orjson fragments), which keeps the
    writer's cost per task close to the cost of reading the rows.
    """

    @classmethod
    def for_export(
        cls, export: "Export", *, first_id: int | None = None, last_id: int | None = None
    ) -> "SnapshotWriter":
        """The writer of a snapshot row (`first_id`/`last_id` for one part of a split one), as jobs run it."""
        return cls(
            project=export.project,
            task_filter_options=export.task_filter_options,
            annotation_filter_options=export.annotation_filter_options,
            serialization_options=export.serialization_options,
            batch_size=settings.EXPORT_BATCH_SIZE,
            first_id=first_id,
            last_id=last_id,
        )

    def __init__(
        self,
        *,
        project: SnapshotProject,
        task_filter_options: dict | None = None,
        annotation_filter_options: dict | None = None,
        serialization_options: dict | None = None,
        task_ids: list[int] | None = None,
        first_id: int | None = None,
        last_id: int | None = None,
        batch_size: int = 1000,
        source: Callable[[TaskSelection], TaskRows] = rows_for,
    ):
        """`project`: anything with `pk` and `label_config`. `source` makes the rows of the selection (by default
        where the projects live: `exports.sources.rows_for`)."""
        self.project = project
        self.selection = TaskSelection(
            project_id=project.pk,
            task_filter_options=task_filter_options,
            annotation_filter_options=annotation_filter_options,
            task_ids=None if task_ids is None else tuple(task_ids),
            first_id=first_id,
            last_id=last_id,
        )
        self.rows = source(self.selection)
        self.predictions_as_ids = _only_id(serialization_options, "predictions")
        self.drafts_as_ids = _only_id(serialization_options, "drafts")
        self.users_as_ids = _only_id(serialization_options, "annotations__completed_by")
        self.interpolate = bool((serialization_options or {}).get("interpolate_key_frames")) and has_video_tracks(
            project.label_config
        )
        self.batch_size = batch_size

    def count(self) -> int:
        """How many tasks the writer writes (the source counts once; a job asks before deciding to split, then
        for progress)."""
        return self.rows.count()

    def batches(self) -> Iterator[list[tuple]]:
        """Task rows in id order, `batch_size` at a time (keyset pagination: each batch is one indexed query)."""
        last_id = 0
        while True:
            rows = self.rows.tasks(after_id=last_id, limit=self.batch_size)
            if not rows:
                return
            last_id = rows[-1][0]
            yield rows

    def _annotation(self, row: tuple) -> dict[str, Any]:
        """An annotation row (ANNOTATION_KEYS, then USER_KEYS when users are objects) in Label Studio's key order:
        `id` and `completed_by` first, then the rest in ANNOTATION_KEYS order. Unpacked by position, like every
        row here: building the dicts is most of the writer's own cost per task."""
        (
            annotation_id,
            task,
            completed_by,
            result,
            was_cancelled,
            ground_truth,
            created_at,
            updated_at,
            draft_created_at,
            lead_time,
            prediction,
            result_count,
            unique_id,
            import_id,
            last_action,
            bulk_created,
            project,
            updated_by,
            parent_prediction,
            parent_annotation,
            last_created_by,
        ) = row if len(row) == ANNOTATION_WIDTH else row[:ANNOTATION_WIDTH]
        if not self.users_as_ids and completed_by is not None:
            completed_by = {"id": completed_by, **dict(zip(USER_KEYS, row[ANNOTATION_WIDTH:], strict=True))}
        return {
            "id": annotation_id,
            "completed_by": completed_by,
            "task": task,
            "result": self._result(result),
            "was_cancelled": was_cancelled,
            "ground_truth": ground_truth,
            "created_at": created_at,
            "updated_at": updated_at,
            "draft_created_at": draft_created_at,
            "lead_time": lead_time,
            "prediction": None if prediction is None else orjson.Fragment(prediction),
            "result_count": result_count,
            "unique_id": unique_id,
            "import_id": import_id,
            "last_action": last_action,
            "bulk_created": bulk_created,
            "project": project,
            "updated_by": updated_by,
            "parent_prediction": parent_prediction,
            "parent_annotation": parent_annotation,
            "last_created_by": last_created_by,
        }

    def _result(self, result: str | None) -> Any:
        """An annotation's stored result: spliced as it is, or with its video key frames filled in on request."""
        if result is None:
            return None
        if self.interpolate:
            return interpolate_key_frames(orjson.loads(result))
        return orjson.Fragment(result)

    @staticmethod
    def _prediction(row: tuple) -> dict[str, Any]:
        """A prediction row (PREDICTION_KEYS) in Label Studio's key order, with its constant keys."""
        (
            prediction_id,
            task,
            result,
            model_version,
            score,
            cluster,
            neighbors,
            mislabeling,
            created_at,
            updated_at,
            project,
        ) = row
        return {
            "id": prediction_id,
            "result": _fragment(result),
            "model_version": model_version,
            "created_ago": "",
            "score": score,
            "cluster": cluster,
            "neighbors": _fragment(neighbors),
            "mislabeling": mislabeling,
            "created_at": created_at,
            "updated_at": updated_at,
            "model": None,
            "model_run": None,
            "task": task,
            "project": project,
        }

    @staticmethod
    def _draft(row: tuple) -> dict[str, Any]:
        """A draft row (DRAFT_KEYS) in Label Studio's key order: `id` and `user`, constants, then DRAFT_KEYS order."""
        draft_id, task, user, result, lead_time, was_postponed, import_id, created_at, updated_at, annotation = row
        return {
            "id": draft_id,
            "user": user,
            "created_username": "",
            "created_ago": "",
            "task": task,
            "result": _fragment(result),
            "lead_time": lead_time,
            "was_postponed": was_postponed,
            "import_id": import_id,
            "created_at": created_at,
            "updated_at": updated_at,
            "annotation": annotation,
        }

    def encoded_batches(self) -> Generator[tuple[list[bytes], int, int], None, None]:
        """Per batch: each task encoded as JSON, and the number of annotations and predictions they hold."""
        batches = self.encoded_task_batches()
        try:
            for batch in batches:
                yield batch.parts, sum(batch.annotation_counts), sum(batch.prediction_counts)
        finally:
            batches.close()

    def encoded_task_batches(self) -> Generator[EncodedBatch, None, None]:
        """Per batch: each task's id and JSON, and its number of annotations and predictions."""
        rows_of = self.rows
        with_users, full_predictions, full_drafts = (
            not self.users_as_ids,
            not self.predictions_as_ids,
            not self.drafts_as_ids,
        )

        def fetched() -> Iterator[tuple]:
            for rows in self.batches():
                first, last = rows[0][0], rows[-1][0]
                yield (
                    rows,
                    rows_of.annotations(first, last, with_users=with_users),
                    rows_of.predictions(first, last, full=full_predictions),
                    rows_of.drafts(first, last, full=full_drafts),
                )

        batches = fetched()
        if (database := rows_of.read_ahead_database()) is not None:
            batches = read_ahead(batches, database=database)
        annotation, prediction, draft = self._annotation, self._prediction, self._draft
        drafts_as_ids, predictions_as_ids = self.drafts_as_ids, self.predictions_as_ids
        for rows, annotations, predictions, drafts in batches:
            batch = EncodedBatch([], [], [], [])
            for row in rows:
                (
                    task_id,
                    data,
                    meta,
                    created_at,
                    updated_at,
                    allow_skip,
                    inner_id,
                    total_annotations,
                    cancelled_annotations,
                    total_predictions,
                    project,
                    updated_by,
                    file_upload,
                ) = row
                task_annotations = [annotation(a) for a in annotations.get(task_id, ())]
                task_predictions = predictions.get(task_id, ())
                task_drafts = drafts.get(task_id, ())
                batch.task_ids.append(task_id)
                batch.annotation_counts.append(len(task_annotations))
                batch.prediction_counts.append(len(task_predictions))
                batch.parts.append(
                    orjson.dumps(
                        {
                            "id": task_id,
                            "annotations": task_annotations,
                            "drafts": [d[0] for d in task_drafts] if drafts_as_ids else [draft(d) for d in task_drafts],
                            "predictions": [p[0] for p in task_predictions]
                            if predictions_as_ids
                            else [prediction(p) for p in task_predictions],
                            "data": None if data is None else orjson.Fragment(data),
                            "meta": None if meta is None else orjson.Fragment(meta),
                            "created_at": created_at,
                            "updated_at": updated_at,
                            "allow_skip": allow_skip,
                            "inner_id": inner_id,
                            "total_annotations": total_annotations,
                            "cancelled_annotations": cancelled_annotations,
                            "total_predictions": total_predictions,
                            "comment_count": 0,
                            "unresolved_comment_count": 0,
                            "last_comment_updated_at": None,
                            "project": project,
                            "updated_by": updated_by,
                            "file_upload": file_upload,
                            "comment_authors": [],
                        },
                        option=JSON_OPTIONS,
                    )
                )
            yield batch

    def _write_items(
        self,
        array: JsonArray,
        write: Callable[[bytes], None],
        progress: Callable[[int], None] | None,
        result: SnapshotResult,
        index: IndexWriter | None = None,
        since: ChangedTasks | None = None,
    ) -> None:
        """Write the tasks as the items of `array`, without its brackets. Every task read goes into `index`;
        with `since`, only the tasks it finds changed are written (and counted)."""
        last_report, read = time.monotonic(), 0
        for task_ids, parts, annotation_counts, prediction_counts in self.encoded_task_batches():
            read += len(parts)
            kept: Sequence[int] = range(len(parts))
            if index is not None or since is not None:
                keys = list(zip(task_ids, map(task_digest, parts), strict=True))
                if index is not None:
                    for task_id, digest in keys:
                        index.add(task_id, digest)
                if since is not None:
                    kept = [n for n, (task_id, digest) in enumerate(keys) if since.changed(task_id, digest)]
                    parts = [parts[n] for n in kept]
            write(array.add(parts))
            result.counters["task_number"] += len(parts)
            result.counters["annotation_number"] += sum(annotation_counts[n] for n in kept)
            result.counters["prediction_number"] += sum(prediction_counts[n] for n in kept)
            if progress and time.monotonic() - last_report >= 1.0:
                progress(read)
                last_report = time.monotonic()
        if index is not None:
            index.flush()

    @staticmethod
    def _hashing(out: BinaryIO) -> tuple[Callable[[bytes], None], SnapshotResult, Any]:
        digest = hashlib.md5(usedforsecurity=False)
        result = SnapshotResult(counters={"task_number": 0, "annotation_number": 0, "prediction_number": 0})

        def emit(chunk: bytes) -> None:
            if chunk:
                out.write(chunk)
                digest.update(chunk)
                result.size += len(chunk)

        return emit, result, digest

    def write(
        self,
        out: BinaryIO,
        *,
        progress: Callable[[int, int], None] | None = None,
        index: IndexWriter | None = None,
        since: ChangedTasks | None = None,
    ) -> SnapshotResult:
        """Write the JSON array to `out`, hashing as it goes; `progress(done, total)` at most once a second.
        `index` receives every task read; with `since` only changed tasks are written (exports/increments.py).

        One task per line (the LINES layout): still one JSON array, and converters can read it back a task at a
        time without a streaming JSON parser."""
        total = self.count() if progress else 0
        emit, result, digest = self._hashing(out)
        array = JsonArray(LINES)
        emit(array.start())
        self._write_items(array, emit, progress and (lambda done: progress(done, total)), result, index, since)
        emit(array.end())
        result.md5 = digest.hexdigest()
        return result

    def write_part(
        self, out: BinaryIO, *, progress: Callable[[int], None] | None = None, index: IndexWriter | None = None
    ) -> SnapshotResult:
        """Only the task lines of `write`, joined as the LINES layout joins them (nothing before the first or
        after the last): one piece of a split snapshot, which exports/parallel.py joins into the bytes one
        `write` gives (and `index` into the index one `write` gives). `progress(done)`."""
        emit, result, digest = self._hashing(out)
        self._write_items(JsonArray(LINES.inner()), emit, progress, result, index)
        result.md5 = digest.hexdigest()
        return result

    def project_task_ids(self) -> Iterator[int]:
        """Every task id of the project, whatever the selection, ascending (keyset batches of ids only)."""
        last_id = 0
        while ids := self.rows.project_task_ids(after_id=last_id, limit=max(self.batch_size, 10_000)):
            yield from ids
            last_id = ids[-1]

    def stream(
        self, encode: Callable[[list[bytes]], list[bytes]] | None = None, *, layout: Layout = COMPACT
    ) -> Iterator[bytes]:
        """The tasks as one compact JSON array (or in another `layout`, say JSON Lines), chunk by chunk (`encode` may
        turn each batch into other records); the array's opening comes before any query runs. Closing the iterator
        stops the reading at once."""
        array = JsonArray(layout)
        if opening := array.start():
            yield opening
        batches = self.encoded_batches()
        try:
            for parts, _annotations, _predictions in batches:
                if chunk := array.add(encode(parts) if encode else parts):
                    yield chunk
        finally:
            batches.close()  # stops the read-ahead at once when the client goes away
        if closing := array.end():
            yield closing
