"""Writes on projects and their data: create, update, delete, task and prediction import."""

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import DataError, transaction
from django.db.models import F

from projects import imports, label_config
from projects.exceptions import ImportRejected
from projects.imports import TaskSource
from projects.models import FileUpload, Prediction, Project, Task
from users.models import User


@dataclass
class ImportResult:
    task_count: int = 0
    annotation_count: int = 0
    prediction_count: int = 0
    duration: float = 0.0
    task_ids: list[int] = field(default_factory=list)
    file_upload_ids: list[int] = field(default_factory=list)
    could_be_tasks_list: bool = False
    found_formats: dict[str, int] | list = field(default_factory=list)  # Label Studio: [] without files
    data_columns: list[str] = field(default_factory=list)

    def as_response(self, *, return_task_ids: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "task_count": self.task_count,
            "annotation_count": self.annotation_count,
            "prediction_count": self.prediction_count,
            "predictions_count": self.prediction_count,
            "duration": self.duration,
            "file_upload_ids": self.file_upload_ids,
            "could_be_tasks_list": self.could_be_tasks_list,
            "found_formats": self.found_formats,
            "data_columns": self.data_columns,
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
    """Delete a project with its tasks, snapshots, uploads and their files (files go once the deletion commits)."""
    from exports.services import exports_delete

    exports_delete(exports=project.exports.all())
    uploaded = list(project.file_uploads.values_list("file", flat=True))
    project.delete()
    transaction.on_commit(partial(_delete_uploaded_files, uploaded))


def _delete_uploaded_files(names: list[str]) -> None:
    storage = FileUpload._meta.get_field("file").storage
    for name in names:
        storage.delete(name)


def _read_uploads(uploads: Sequence[UploadedFile]) -> list[TaskSource]:
    for upload in uploads:
        imports.check_file_format(upload.name)  # every name is checked before any file is read
    sources = []
    for upload in uploads:
        upload.seek(0)
        sources.append(imports.read_file(upload.name, upload.read()))
    return sources


def _delete_stored(uploads: list[FileUpload]) -> None:
    for upload in uploads:
        upload.file.delete(save=False)


def _store_upload(*, project: Project, user: User, upload: UploadedFile) -> FileUpload:
    file_upload = FileUpload(project=project, user=user, original_name=upload.name)
    file_upload.file.save(upload.name, upload, save=False)
    file_upload.save()
    return file_upload


def tasks_import(
    *, project: Project, user: User, payload: Any = None, uploads: Sequence[UploadedFile] = ()
) -> ImportResult:
    """Import tasks, with their annotations, predictions and drafts, from a JSON payload (a list of tasks or one
    task) or from uploaded files. Everything is read and checked before anything is written, in one transaction;
    uploaded files are kept (see `FileUpload`) and their tasks name them."""
    started = time.monotonic()
    sources = _read_uploads(uploads) if uploads else [TaskSource(payload if isinstance(payload, list) else [payload])]
    parsed = label_config.parse_label_config(project.label_config) if project.label_config else {}
    prepared = imports.prepare_tasks(sources, required_keys=label_config.data_keys(parsed))

    stored: list[FileUpload] = []
    try:
        with transaction.atomic():
            Project.objects.select_for_update().filter(pk=project.pk).values_list("pk").get()  # one import at a time
            stored = [_store_upload(project=project, user=user, upload=upload) for upload in uploads]
            task_ids = imports.write_tasks(
                prepared,
                project_id=project.pk,
                user_id=user.pk,
                labeled_at=max(project.maximum_annotations, 1),
                file_uploads=[upload.file_name for upload in stored] or [None],
            )
            if prepared.model_version and not project.model_version:
                Project.objects.filter(pk=project.pk).update(model_version=prepared.model_version)
    except DataError as exc:  # a value the checks let through but the database refuses
        _delete_stored(stored)
        raise ImportRejected(f"The tasks could not be stored: {str(exc).splitlines()[0]}") from exc
    except BaseException:
        _delete_stored(stored)
        raise

    formats = [source.file_format for source in sources if source.file_format]
    return ImportResult(
        task_count=len(task_ids),
        annotation_count=prepared.annotation_count,
        prediction_count=prepared.prediction_count,
        duration=time.monotonic() - started,
        task_ids=task_ids,
        file_upload_ids=[upload.pk for upload in stored],
        could_be_tasks_list=any(kind in imports.TABLE_FORMATS for kind in formats),
        found_formats=dict(Counter(formats)) if uploads else [],
        data_columns=sorted(prepared.data_keys) if uploads else [],
    )


def _chunks(values: Sequence[int], size: int = 10_000) -> list[Sequence[int]]:
    """Pieces of `values` small enough for one `IN (...)` (SQLite allows 32766 parameters per statement)."""
    return [values[start : start + size] for start in range(0, len(values), size)]


@transaction.atomic
def predictions_import(*, project: Project, items: list[dict]) -> int:
    """Attach predictions to existing tasks of the project; an unknown task rejects the whole list."""
    added = Counter(item["task"] for item in items)
    known: set[int] = set()
    for task_ids in _chunks(list(added)):
        known.update(project.tasks.filter(pk__in=task_ids).values_list("pk", flat=True))
    for item in items:
        if item["task"] not in known:
            raise ImportRejected(
                f'{item} contains invalid "task" field: task {item["task"]} is not a task of project {project.pk}'
            )
    rows = imports.prediction_rows(project_id=project.pk, items=items)
    imports.insert_rows(Prediction, imports.PREDICTION_FIELDS, rows)
    by_count: dict[int, list[int]] = {}
    for task_id, count in added.items():
        by_count.setdefault(count, []).append(task_id)
    for count, task_ids in by_count.items():
        for chunk in _chunks(task_ids):
            Task.objects.filter(pk__in=chunk).update(total_predictions=F("total_predictions") + count)
    return len(items)
