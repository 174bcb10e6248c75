"""Writes a project's tasks as Label Studio's JSON export, streaming in id order, batch by batch.

The rows come from a data source (`exports.sources`): the service's own tables unless the caller passes another.
"""

import hashlib
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

import orjson
from django.conf import settings
from django.db import connections

from exports.increments import ChangedTasks, IndexWriter, task_digest, task_id_of
from exports.interpolation import interpolate_key_frames
from exports.jsonarray import COMPACT, LINES, JsonArray, Layout
from exports.sources import TaskRows, TaskSelection, rows_for
from exports.sources.base import ANNOTATION_KEYS, DRAFT_KEYS, PREDICTION_KEYS, TASK_KEYS, USER_KEYS
from projects import label_config

if TYPE_CHECKING:
    from exports.models import Export

JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


class SnapshotProject(Protocol):
    """What a snapshot needs of its project."""

    @property
    def pk(self) -> int: ...

    @property
    def label_config(self) -> str: ...


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
        item = dict(zip(ANNOTATION_KEYS, row[: len(ANNOTATION_KEYS)], strict=True))
        if self.interpolate and item["result"] is not None:
            item["result"] = interpolate_key_frames(orjson.loads(item["result"]))
        else:
            item["result"] = _fragment(item["result"])
        item["prediction"] = _fragment(item["prediction"])
        if not self.users_as_ids and item["completed_by"] is not None:
            extra = row[len(ANNOTATION_KEYS) :]
            item["completed_by"] = {"id": item["completed_by"], **dict(zip(USER_KEYS, extra, strict=True))}
        return {"id": item.pop("id"), "completed_by": item.pop("completed_by"), **item}

    @staticmethod
    def _prediction(row: tuple) -> dict[str, Any]:
        item = dict(zip(PREDICTION_KEYS, row, strict=True))
        return {
            "id": item["id"],
            "result": _fragment(item["result"]),
            "model_version": item["model_version"],
            "created_ago": "",
            "score": item["score"],
            "cluster": item["cluster"],
            "neighbors": _fragment(item["neighbors"]),
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
        item = dict(zip(DRAFT_KEYS, row, strict=True))
        item["result"] = _fragment(item["result"])
        return {"id": item.pop("id"), "user": item.pop("user"), "created_username": "", "created_ago": "", **item}

    def encoded_batches(self) -> Generator[tuple[list[bytes], int, int], None, None]:
        """Per batch: each task encoded as JSON, and the number of annotations and predictions they hold."""
        batches = self.encoded_task_batches()
        try:
            for parts, annotation_counts, prediction_counts in batches:
                yield parts, sum(annotation_counts), sum(prediction_counts)
        finally:
            batches.close()

    def encoded_task_batches(self) -> Generator[tuple[list[bytes], list[int], list[int]], None, None]:
        """Per batch: each task encoded as JSON, and for each task the number of annotations and predictions."""
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
        for rows, annotations, predictions, drafts in batches:
            encoded: list[bytes] = []
            annotation_counts: list[int] = []
            prediction_counts: list[int] = []
            for row in rows:
                task = dict(zip(TASK_KEYS, row, strict=True))
                task_id = task["id"]
                task_annotations = [self._annotation(a) for a in annotations.get(task_id, ())]
                task_predictions = predictions.get(task_id, ())
                task_drafts = drafts.get(task_id, ())
                annotation_counts.append(len(task_annotations))
                prediction_counts.append(len(task_predictions))
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
            yield encoded, annotation_counts, prediction_counts

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
        for parts, annotation_counts, prediction_counts in self.encoded_task_batches():
            read += len(parts)
            kept: Sequence[int] = range(len(parts))
            if index is not None or since is not None:
                keys = [(task_id_of(part), task_digest(part)) for part in parts]
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
