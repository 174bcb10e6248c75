"""What the project views call: create, update (config checked against the data), validate a config, duplicate,
delete, and import tasks or predictions. Writes and their transactions live here."""

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import DataError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet

from projects import imports, label_config
from projects.copying import copy_project_data
from projects.exceptions import ImportRejected, LabelConfigRejected, LabelConfigUnreadable
from projects.imports import TaskSource
from projects.models import (
    MAX_ROW_ID,
    Annotation,
    AnnotationDraft,
    FileUpload,
    Prediction,
    Project,
    Task,
    counted_when_recounting,
    finished_tasks,
)
from projects.selectors import project_used_tags
from projects.uploads import TABLE_FORMATS, file_format, read_uploads, upload_name
from users.models import Organization, User


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


def project_create(*, organization: Organization, created_by: User, **fields: Any) -> Project:
    """Create a project in `organization`; control weights default to the label config's controls."""
    if "control_weights" not in fields and fields.get("label_config"):
        fields["control_weights"] = label_config.control_weights(
            label_config.parse_label_config(fields["label_config"])
        )
    return Project.objects.create(organization=organization, created_by=created_by, **fields)


def project_config_check(*, project: Project, xml: Any) -> dict[str, dict[str, Any]]:
    """Validate a labeling config for an existing project and return it parsed.

    Raises LabelConfigError when the config is invalid or when it cannot show what the project's annotations and
    drafts already use (a removed control, target or label). Reads the project's results in two queries.
    """
    parsed = label_config.validate_label_config(xml)
    label_config.check_compatible(parsed, project_used_tags(project=project))
    return parsed


def project_config_validate(*, project: Project, xml: Any) -> bool:
    """Check a candidate config for the project, as its validate endpoint does, without saving it.

    Returns whether it changes the essentials (adds a control, changes a type or the inputs, drops a label).
    Raises LabelConfigUnreadable for malformed XML and LabelConfigRejected for anything else that is refused.
    """
    if not xml:
        raise LabelConfigRejected(label_config.EMPTY_CONFIG_MESSAGE)
    try:
        parsed = project_config_check(project=project, xml=xml)
    except label_config.LabelConfigSyntaxError as exc:
        raise LabelConfigUnreadable(str(exc)) from exc
    except label_config.LabelConfigError as exc:
        raise LabelConfigRejected(str(exc)) from exc
    before = label_config.parse_label_config_or_empty(project.label_config)
    return label_config.essential_data_changed(parsed, before)


@transaction.atomic
def project_update(*, project: Project, **fields: Any) -> Project:
    """Apply a partial update; a new label config brings default weights for controls it adds.

    A new config is refused (LabelConfigRejected on `label_config`) when it drops what annotations or drafts use;
    the project stays locked from that check to the save, so no import can add such labels in between.

    As Label Studio, a new `maximum_annotations` decides again which tasks are finished, all of them, and a new
    `skip_queue` those with an annotation that is not ground truth (with the project locked too).
    """
    recount = {
        name
        for name in ("maximum_annotations", "skip_queue")
        if name in fields and fields[name] != getattr(project, name)
    }
    if recount or ("label_config" in fields and fields["label_config"] != project.label_config):
        Project.objects.select_for_update().filter(pk=project.pk).values_list("pk").get()
    if "label_config" in fields and fields["label_config"] != project.label_config:
        try:
            parsed = project_config_check(project=project, xml=fields["label_config"])
        except label_config.LabelConfigError as exc:
            raise LabelConfigRejected(str(exc), field="label_config") from exc
        if "control_weights" not in fields:
            fields["control_weights"] = label_config.control_weights(parsed, project.control_weights)
    for name, value in fields.items():
        setattr(project, name, value)
    project.save()
    if recount:
        tasks = project.tasks.all()
        if "maximum_annotations" not in recount:
            tasks = tasks.filter(Exists(Annotation.objects.filter(task=OuterRef("pk"), ground_truth=False)))
        finished = finished_tasks(
            maximum_annotations=project.maximum_annotations, counted=counted_when_recounting(project.skip_queue)
        )
        tasks_refinish(tasks=tasks, finished=finished)
    return project


def tasks_refinish(*, tasks: QuerySet[Task], finished: Q) -> int:
    """Set `is_labeled` of `tasks` to whether they match `finished` (see `projects.models.finished_tasks`), writing
    only the rows that change; returns how many changed."""
    changed = tasks.filter(finished, is_labeled=False).update(is_labeled=True)
    return changed + tasks.filter(~finished, is_labeled=True).update(is_labeled=False)


def _delete_by_project(project_id: int) -> None:
    """Delete the project's drafts, annotations, predictions and tasks in four statements (no ids in Python)."""
    quote = connection.ops.quote_name
    task = quote(Task._meta.db_table)
    statements = [
        f"DELETE FROM {quote(AnnotationDraft._meta.db_table)} WHERE {quote('task_id')} IN "
        f"(SELECT {quote('id')} FROM {task} WHERE {quote('project_id')} = %s)",
        f"DELETE FROM {quote(Annotation._meta.db_table)} WHERE {quote('project_id')} = %s",
        f"DELETE FROM {quote(Prediction._meta.db_table)} WHERE {quote('project_id')} = %s",
        f"DELETE FROM {task} WHERE {quote('project_id')} = %s",
    ]
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement, [project_id])


# What apps built on projects must do inside a project's deletion (the exports app removes the project's snapshots
# and their files). They register here when they start, so this app never imports theirs.
_delete_hooks: list[Callable[[Project], None]] = []


def on_project_delete(hook: Callable[[Project], None]) -> None:
    """Run `hook(project)` inside every project deletion, before the project's rows go."""
    if hook not in _delete_hooks:
        _delete_hooks.append(hook)


@transaction.atomic
def project_delete(*, project: Project) -> None:
    """Delete a project with its tasks, snapshots, uploads and their files (files go once the deletion commits).

    The labeling data goes in a few set-based statements first: Django's own cascade would read every task,
    annotation and prediction id into memory.
    """
    for hook in _delete_hooks:
        hook(project)
    uploaded = list(project.file_uploads.values_list("file", flat=True))
    _delete_by_project(project.pk)
    project.delete()
    transaction.on_commit(partial(_delete_uploaded_files, uploaded))


# Fields a duplicate never takes from the original: its own identity, owner, timestamps and pin.
_NOT_DUPLICATED = frozenset({"id", "created_by", "created_at", "updated_at", "pinned_at"})


@transaction.atomic
def project_duplicate(
    *, project: Project, created_by: User, title: str, description: str | None = None, with_data: bool
) -> Project:
    """Copy a project's settings into a new project of the same organization, with its tasks, annotations and
    predictions when `with_data`. Drafts stay behind: they are their authors' unsubmitted work.

    The data is copied table by table with `INSERT ... SELECT`, so the number of queries and the memory used do
    not depend on the number of tasks.
    """
    copy = Project(
        **{
            field.attname: getattr(project, field.attname)
            for field in Project._meta.concrete_fields
            if field.name not in _NOT_DUPLICATED
        }
    )
    copy.created_by = created_by
    copy.title = title
    if description is not None:
        copy.description = description
    copy.save()
    if with_data:
        copy_project_data(source_id=project.pk, target_id=copy.pk)
    return copy


def _delete_uploaded_files(names: list[str]) -> None:
    storage = FileUpload._meta.get_field("file").storage
    for name in names:
        storage.delete(name)


def _delete_stored(uploads: list[FileUpload]) -> None:
    for upload in uploads:
        upload.file.delete(save=False)


def _store_upload(*, project: Project, user: User, upload: UploadedFile) -> FileUpload:
    name = upload_name(upload)
    file_upload = FileUpload(project=project, user=user, original_name=name)
    file_upload.file.save(name, upload, save=False)
    file_upload.save()
    return file_upload


def tasks_import(
    *, project: Project, user: User, payload: Any = None, uploads: Sequence[UploadedFile] = ()
) -> ImportResult:
    """Import tasks, with their annotations, predictions and drafts, from a payload (a list of tasks, one task, or
    a `TaskSource` that reads the request body) or from uploaded files. All or nothing, in one transaction: the
    sources are read, checked and written in batches while the project is locked, and the first problem rolls
    everything back. Uploaded files are kept (see `FileUpload`) and their tasks name them."""
    started = time.monotonic()
    if uploads:
        sources = read_uploads(uploads)
    else:
        sources = [payload if isinstance(payload, TaskSource) else TaskSource.of(payload)]
    parsed = label_config.parse_label_config(project.label_config) if project.label_config else {}
    prepared = imports.prepare_tasks(sources, required_keys=label_config.data_keys(parsed))

    stored: list[FileUpload] = []
    try:
        with transaction.atomic():
            # One import at a time; the overlap is read under the lock, as a settings change takes it too.
            overlap = Project.objects.select_for_update().filter(pk=project.pk).values_list("maximum_annotations")
            maximum_annotations = overlap.get()[0]
            stored = [_store_upload(project=project, user=user, upload=upload) for upload in uploads]
            task_ids = imports.write_tasks(
                prepared,
                project_id=project.pk,
                user_id=user.pk,
                labeled_at=max(maximum_annotations, 1),
                file_uploads=[upload.file_name for upload in stored] or [None],
            )
            # Label Studio's rule for imported tasks, where write_tasks counts annotations not skipped: every
            # annotation counts, and one user's annotations count once (see finished_tasks). Only the tasks it
            # judges otherwise are written again; the project is locked, so the new tasks are those from the first.
            tasks_refinish(
                tasks=Task.objects.filter(project_id=project.pk, pk__gte=min(task_ids)),
                finished=finished_tasks(maximum_annotations=maximum_annotations),
            )
            if prepared.model_version and not project.model_version:
                Project.objects.filter(pk=project.pk).update(model_version=prepared.model_version)
    except DataError as exc:  # a value the checks let through but the database refuses
        _delete_stored(stored)
        raise ImportRejected(f"The tasks could not be stored: {str(exc).splitlines()[0]}") from exc
    except BaseException:
        _delete_stored(stored)
        raise

    formats = [file_format(upload_name(upload)) for upload in uploads]
    return ImportResult(
        task_count=len(task_ids),
        annotation_count=prepared.annotation_count,
        prediction_count=prepared.prediction_count,
        duration=time.monotonic() - started,
        task_ids=task_ids,
        file_upload_ids=[upload.pk for upload in stored],
        could_be_tasks_list=any(kind in TABLE_FORMATS for kind in formats),
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
    # An id past a 64-bit integer cannot be a task; the database would refuse to even compare it.
    for task_ids in _chunks([task_id for task_id in added if task_id <= MAX_ROW_ID]):
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
