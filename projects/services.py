"""Writes on projects and their data: create, update, delete, task and prediction import."""

import time
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import F, Max

from projects import label_config
from projects.exceptions import ImportRejected
from projects.models import Annotation, AnnotationDraft, Prediction, Project, Task
from users.models import User

IMPORT_BATCH_SIZE = 1000
ANNOTATION_KEYS = {"result", "was_cancelled", "ground_truth", "lead_time", "draft_created_at", "last_action"}


@dataclass
class ImportResult:
    task_count: int = 0
    annotation_count: int = 0
    prediction_count: int = 0
    duration: float = 0.0
    task_ids: list[int] = field(default_factory=list)

    def as_response(self, *, return_task_ids: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "task_count": self.task_count,
            "annotation_count": self.annotation_count,
            "prediction_count": self.prediction_count,
            "predictions_count": self.prediction_count,
            "duration": self.duration,
            "file_upload_ids": [],
            "could_be_tasks_list": False,
            "found_formats": [],
            "data_columns": [],
        }
        if return_task_ids:
            body["task_ids"] = self.task_ids
        return body


def project_create(*, organization, created_by: User, **fields: Any) -> Project:
    """Create a project in `organization`; control weights default to the label config's controls."""
    if "control_weights" not in fields and fields.get("label_config"):
        fields["control_weights"] = label_config.control_weights(
            label_config.parse_label_config(fields["label_config"])
        )
    return Project.objects.create(organization=organization, created_by=created_by, **fields)


def project_update(*, project: Project, **fields: Any) -> Project:
    """Apply a partial update; a new label config brings default weights for controls it adds."""
    if "label_config" in fields and "control_weights" not in fields:
        parsed = label_config.parse_label_config(fields["label_config"])
        fields["control_weights"] = label_config.control_weights(parsed, project.control_weights)
    for name, value in fields.items():
        setattr(project, name, value)
    project.save()
    return project


@transaction.atomic
def project_delete(*, project: Project) -> None:
    """Delete a project with its tasks, snapshots and their files (files go once the deletion commits)."""
    from exports.services import exports_delete

    exports_delete(exports=project.exports.all())
    project.delete()


def _as_task(item: Any, index: int, required_keys: set[str]) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ImportRejected(f"Error at item {index}: a task must be a JSON object, got {type(item).__name__}")
    task = dict(item) if "data" in item else {"data": dict(item)}
    if not isinstance(task["data"], dict):
        raise ImportRejected(f'Error at item {index}: "data" must be a JSON object')
    missing = sorted(required_keys - task["data"].keys())
    if missing:
        raise ImportRejected(f'Error at item {index}: "{missing[0]}" key is expected in task data')
    for key in ("annotations", "predictions", "drafts"):
        value = task.get(key) or []
        if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
            raise ImportRejected(f'Error at item {index}: "{key}" must be a list of objects')
        for position, entry in enumerate(value):
            if not isinstance(entry.get("result", []), list):
                raise ImportRejected(f"Error at item {index}: {key}[{position}].result must be a list")
        task[key] = value
    if not isinstance(task.get("meta") or {}, dict):
        raise ImportRejected(f'Error at item {index}: "meta" must be a JSON object')
    return task


def _annotation(entry: dict, *, task: Task, user: User) -> Annotation:
    cancelled = bool(entry.get("was_cancelled", False))
    return Annotation(
        task=task,
        project_id=task.project_id,
        completed_by=user,
        result=entry.get("result") or [],
        was_cancelled=cancelled,
        ground_truth=bool(entry.get("ground_truth", not cancelled)),
        lead_time=entry.get("lead_time"),
        draft_created_at=entry.get("draft_created_at"),
        last_action=entry.get("last_action"),
        bulk_created=True,
    )


def _prediction(entry: dict, *, task: Task) -> Prediction:
    return Prediction(
        task=task,
        project_id=task.project_id,
        result=entry.get("result") or [],
        score=entry.get("score"),
        model_version=str(entry.get("model_version") or ""),
    )


@transaction.atomic
def tasks_import(*, project: Project, user: User, payload: Any) -> ImportResult:
    """Import a list (or one object) of tasks with inline annotations and predictions, all or nothing."""
    started = time.monotonic()
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise ImportRejected("load_tasks: No tasks added")
    parsed = label_config.parse_label_config(project.label_config) if project.label_config else {}
    required = label_config.data_keys(parsed)
    tasks = [_as_task(item, index, required) for index, item in enumerate(items)]

    result = ImportResult()
    next_inner_id = (project.tasks.aggregate(n=Max("inner_id"))["n"] or 0) + 1
    model_version = ""
    for start in range(0, len(tasks), IMPORT_BATCH_SIZE):
        chunk = tasks[start : start + IMPORT_BATCH_SIZE]
        rows = []
        for offset, task in enumerate(chunk):
            annotations = task["annotations"]
            done = sum(1 for entry in annotations if not entry.get("was_cancelled"))
            rows.append(
                Task(
                    project=project,
                    data=task["data"],
                    meta=task.get("meta") or {},
                    inner_id=next_inner_id + start + offset,
                    total_annotations=done,
                    cancelled_annotations=len(annotations) - done,
                    total_predictions=len(task["predictions"]),
                    is_labeled=done >= max(project.maximum_annotations, 1),
                )
            )
        Task.objects.bulk_create(rows, batch_size=IMPORT_BATCH_SIZE)
        annotations, predictions, drafts = [], [], []
        for row, task in zip(rows, chunk, strict=True):
            annotations += [_annotation(entry, task=row, user=user) for entry in task["annotations"]]
            predictions += [_prediction(entry, task=row) for entry in task["predictions"]]
            drafts += [
                AnnotationDraft(task=row, user=user, result=entry.get("result") or [], lead_time=entry.get("lead_time"))
                for entry in task["drafts"]
            ]
        Annotation.objects.bulk_create(annotations, batch_size=IMPORT_BATCH_SIZE)
        Prediction.objects.bulk_create(predictions, batch_size=IMPORT_BATCH_SIZE)
        AnnotationDraft.objects.bulk_create(drafts, batch_size=IMPORT_BATCH_SIZE)
        model_version = next((p.model_version for p in reversed(predictions) if p.model_version), model_version)
        result.task_ids += [row.pk for row in rows]
        result.annotation_count += len(annotations)
        result.prediction_count += len(predictions)
    result.task_count = len(tasks)
    if model_version and not project.model_version:
        Project.objects.filter(pk=project.pk).update(model_version=model_version)
    result.duration = time.monotonic() - started
    return result


@transaction.atomic
def predictions_import(*, project: Project, items: list[dict]) -> int:
    """Attach predictions to existing tasks of the project; an unknown task rejects the whole list."""
    wanted = {item["task"] for item in items}
    known = set(project.tasks.filter(pk__in=wanted).values_list("pk", flat=True))
    for item in items:
        if item["task"] not in known:
            raise ImportRejected(
                f'{item} contains invalid "task" field: task {item["task"]} is not a task of project {project.pk}'
            )
    tasks = {task.pk: task for task in project.tasks.filter(pk__in=known).only("pk", "project_id")}
    rows = [_prediction(item, task=tasks[item["task"]]) for item in items]
    Prediction.objects.bulk_create(rows, batch_size=IMPORT_BATCH_SIZE)
    counts: dict[int, int] = {}
    for item in items:
        counts[item["task"]] = counts.get(item["task"], 0) + 1
    for task_id, count in counts.items():
        Task.objects.filter(pk=task_id).update(total_predictions=F("total_predictions") + count)
    return len(rows)
