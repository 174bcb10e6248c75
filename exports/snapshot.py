"""Writes a project's tasks as Label Studio's JSON export, streaming in id order, batch by batch."""

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import orjson
from django.db.models import Exists, OuterRef, Q, QuerySet

from projects.models import Annotation, AnnotationDraft, Prediction, Project, Task

TASK_FIELDS = [
    "id",
    "data",
    "meta",
    "created_at",
    "updated_at",
    "allow_skip",
    "inner_id",
    "total_annotations",
    "cancelled_annotations",
    "total_predictions",
    "project_id",
    "updated_by_id",
    "file_upload",
]
ANNOTATION_FIELDS = [
    "id",
    "task_id",
    "completed_by_id",
    "result",
    "was_cancelled",
    "ground_truth",
    "created_at",
    "updated_at",
    "draft_created_at",
    "lead_time",
    "prediction",
    "result_count",
    "unique_id",
    "import_id",
    "last_action",
    "bulk_created",
    "project_id",
    "updated_by_id",
    "parent_prediction_id",
    "parent_annotation_id",
    "last_created_by_id",
]
USER_FIELDS = ["completed_by__email", "completed_by__first_name", "completed_by__last_name"]
PREDICTION_FIELDS = [
    "id",
    "task_id",
    "result",
    "model_version",
    "score",
    "cluster",
    "neighbors",
    "mislabeling",
    "created_at",
    "updated_at",
    "project_id",
]
DRAFT_FIELDS = [
    "id",
    "task_id",
    "user_id",
    "result",
    "lead_time",
    "was_postponed",
    "import_id",
    "created_at",
    "updated_at",
    "annotation_id",
]
JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


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


def _grouped(rows: Iterator[dict]) -> dict[int, list[dict]]:
    grouped: dict[int, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row.pop("task_id"), []).append(row)
    return grouped


class SnapshotWriter:
    """Serializes tasks of one export in batches; a fixed number of queries per batch, one batch in memory."""

    def __init__(
        self,
        *,
        project: Project,
        task_filter_options: dict | None = None,
        annotation_filter_options: dict | None = None,
        serialization_options: dict | None = None,
        batch_size: int = 1000,
    ):
        self.project = project
        self.tasks = filter_tasks(project, task_filter_options)
        self.annotation_rule = annotation_filter(annotation_filter_options)
        self.predictions_as_ids = _only_id(serialization_options, "predictions")
        self.drafts_as_ids = _only_id(serialization_options, "drafts")
        self.users_as_ids = _only_id(serialization_options, "annotations__completed_by")
        self.batch_size = batch_size

    def count(self) -> int:
        return self.tasks.count()

    def batches(self) -> Iterator[list[dict]]:
        last_id = 0
        while True:
            rows = list(self.tasks.filter(pk__gt=last_id).order_by("pk").values(*TASK_FIELDS)[: self.batch_size])
            if not rows:
                return
            last_id = rows[-1]["id"]
            yield rows

    def _relations(self, ids: list[int]) -> tuple[dict, dict, dict]:
        annotation_fields = ANNOTATION_FIELDS if self.users_as_ids else ANNOTATION_FIELDS + USER_FIELDS
        annotations = _grouped(
            Annotation.objects.filter(self.annotation_rule, task_id__in=ids)
            .order_by("task_id", "pk")
            .values(*annotation_fields)
            .iterator()
        )
        predictions = Prediction.objects.filter(task_id__in=ids).order_by("task_id", "pk")
        drafts = AnnotationDraft.objects.filter(task_id__in=ids).order_by("task_id", "pk")
        return (
            annotations,
            _grouped(predictions.values(*(["id", "task_id"] if self.predictions_as_ids else PREDICTION_FIELDS))),
            _grouped(drafts.values(*(["id", "task_id"] if self.drafts_as_ids else DRAFT_FIELDS))),
        )

    def _annotation(self, row: dict) -> dict[str, Any]:
        user_id = row["completed_by_id"]
        completed_by: Any = user_id
        if not self.users_as_ids:
            completed_by = None
            if user_id is not None:
                completed_by = {
                    "id": user_id,
                    "email": row["completed_by__email"],
                    "first_name": row["completed_by__first_name"],
                    "last_name": row["completed_by__last_name"],
                }
        return {
            "id": row["id"],
            "completed_by": completed_by,
            "result": row["result"],
            "was_cancelled": row["was_cancelled"],
            "ground_truth": row["ground_truth"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "draft_created_at": row["draft_created_at"],
            "lead_time": row["lead_time"],
            "prediction": row["prediction"],
            "result_count": row["result_count"],
            "unique_id": row["unique_id"],
            "import_id": row["import_id"],
            "last_action": row["last_action"],
            "bulk_created": row["bulk_created"],
            "task": row.get("task"),
            "project": row["project_id"],
            "updated_by": row["updated_by_id"],
            "parent_prediction": row["parent_prediction_id"],
            "parent_annotation": row["parent_annotation_id"],
            "last_created_by": row["last_created_by_id"],
        }

    @staticmethod
    def _prediction(row: dict, task_id: int) -> dict[str, Any]:
        return {
            "id": row["id"],
            "result": row["result"],
            "model_version": row["model_version"],
            "created_ago": "",
            "score": row["score"],
            "cluster": row["cluster"],
            "neighbors": row["neighbors"],
            "mislabeling": row["mislabeling"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "model": None,
            "model_run": None,
            "task": task_id,
            "project": row["project_id"],
        }

    @staticmethod
    def _draft(row: dict, task_id: int) -> dict[str, Any]:
        return {
            "id": row["id"],
            "user": row["user_id"],
            "created_username": "",
            "created_ago": "",
            "result": row["result"],
            "lead_time": row["lead_time"],
            "was_postponed": row["was_postponed"],
            "import_id": row["import_id"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "task": task_id,
            "annotation": row["annotation_id"],
        }

    def serialize_batch(self, rows: list[dict]) -> tuple[list[dict], int, int]:
        """Tasks of one batch in export shape, with the number of annotations and predictions they hold."""
        annotations, predictions, drafts = self._relations([row["id"] for row in rows])
        tasks, annotation_count, prediction_count = [], 0, 0
        for row in rows:
            task_id = row["id"]
            task_annotations = []
            for annotation in annotations.get(task_id, ()):
                annotation["task"] = task_id
                task_annotations.append(self._annotation(annotation))
            task_predictions = predictions.get(task_id, [])
            task_drafts = drafts.get(task_id, [])
            annotation_count += len(task_annotations)
            prediction_count += len(task_predictions)
            tasks.append(
                {
                    "id": task_id,
                    "annotations": task_annotations,
                    "drafts": [d["id"] for d in task_drafts]
                    if self.drafts_as_ids
                    else [self._draft(d, task_id) for d in task_drafts],
                    "predictions": [p["id"] for p in task_predictions]
                    if self.predictions_as_ids
                    else [self._prediction(p, task_id) for p in task_predictions],
                    "data": row["data"],
                    "meta": row["meta"],
                    "created_at": row["created_at"],
                    "updated_at": row["updated_at"],
                    "allow_skip": row["allow_skip"],
                    "inner_id": row["inner_id"],
                    "total_annotations": row["total_annotations"],
                    "cancelled_annotations": row["cancelled_annotations"],
                    "total_predictions": row["total_predictions"],
                    "comment_count": 0,
                    "unresolved_comment_count": 0,
                    "last_comment_updated_at": None,
                    "project": row["project_id"],
                    "updated_by": row["updated_by_id"],
                    "file_upload": row["file_upload"],
                    "comment_authors": [],
                }
            )
        return tasks, annotation_count, prediction_count

    def write(self, out: BinaryIO, *, progress: Callable[[int, int], None] | None = None) -> SnapshotResult:
        """Write the JSON array to `out`, hashing as it goes; `progress(done, total)` at most once a second."""
        digest = hashlib.md5(usedforsecurity=False)
        total = self.count() if progress else 0
        result = SnapshotResult(counters={"task_number": 0, "annotation_number": 0, "prediction_number": 0})
        last_report = time.monotonic()

        def emit(chunk: bytes) -> None:
            out.write(chunk)
            digest.update(chunk)
            result.size += len(chunk)

        emit(b"[")
        first = True
        for rows in self.batches():
            tasks, annotation_count, prediction_count = self.serialize_batch(rows)
            parts = [orjson.dumps(task, option=JSON_OPTIONS) for task in tasks]
            emit((b"" if first else b",") + b",".join(parts))
            first = False
            result.counters["task_number"] += len(tasks)
            result.counters["annotation_number"] += annotation_count
            result.counters["prediction_number"] += prediction_count
            if progress and time.monotonic() - last_report >= 1.0:
                progress(result.counters["task_number"], total)
                last_report = time.monotonic()
        emit(b"]")
        result.md5 = digest.hexdigest()
        return result
