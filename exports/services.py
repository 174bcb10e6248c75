"""Writes on snapshots: create (and enqueue), convert (and enqueue), delete with their files."""

import logging
from datetime import UTC
from functools import partial

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from exports import jobs, queue, storage
from exports.exceptions import ConversionRejected
from exports.files import with_side_files
from exports.models import ConvertedFormat, Export, Status
from projects.models import Project
from users.models import User

logger = logging.getLogger(__name__)


def default_title(project: Project) -> str:
    stamp = timezone.now().astimezone(UTC).strftime("%Y-%m-%d-%H-%M")
    return f"{project.title.replace(' ', '-')}-at-{stamp}"


@transaction.atomic
def export_create(
    *,
    project: Project,
    created_by: User,
    title: str = "",
    task_filter_options: dict | None = None,
    annotation_filter_options: dict | None = None,
    serialization_options: dict | None = None,
    since_export: int | None = None,
) -> Export:
    """Record a snapshot request and start its job once the transaction commits; returns at once."""
    export = Export.objects.create(
        project=project,
        created_by=created_by,
        title=title or default_title(project),
        task_filter_options=task_filter_options,
        annotation_filter_options=annotation_filter_options,
        serialization_options=serialization_options,
        since_export=since_export,
    )
    queue.enqueue(jobs.run_export, export.pk)
    return export


def project_exports_delete(project: Project) -> None:
    """The exports part of a project's deletion (registered with `projects.services.on_project_delete`)."""
    exports_delete(exports=project.exports.all())


@transaction.atomic
def exports_delete(*, exports: QuerySet) -> int:
    """Delete snapshots with their converted formats; their files are removed once the deletion commits.
    Returns how many snapshots this call deleted.

    Every row is locked while the file names are read, those without a file too: a job that completes one
    meanwhile waits, then finds its row gone and removes its own file (on SQLite the IMMEDIATE transaction does
    the same). A caller deleting the same rows meanwhile waits too, then finds them gone and counts 0, so of
    concurrent deletions of one snapshot exactly one counts it.
    """
    converted = ConvertedFormat.objects.filter(export__in=exports.values("pk"))
    names = [
        *with_side_files(list(exports.select_for_update(of=("self",)).values_list("file", flat=True))),
        *converted.select_for_update(of=("self",)).values_list("file", flat=True),
    ]
    _, deleted = exports.delete()
    transaction.on_commit(partial(_remove_files, [name for name in names if name]))
    return deleted.get(Export._meta.label, 0)


def _remove_files(names: list[str]) -> None:
    for name in names:
        storage.remove(name)  # logs, never raises, when the storage cannot be reached


def export_convert(*, export: Export, export_type: str, download_resources: bool = False) -> ConvertedFormat:
    """Start converting a completed snapshot to `export_type` (a format the caller checked); returns at once.

    A snapshot has one conversion per format. While it exists and has not failed, another is refused
    (Label Studio's `Conversion to CSV already started`); a failed one is reused for the retry (FAILED →
    CREATED, its reason and any file dropped), so `converted_formats` never lists a format twice.
    Uses the snapshot's prefetched `converted_formats` when the caller loaded them. Each write is one statement,
    so no transaction wraps them; the job is enqueued for when the caller's transaction, if any, commits.
    """
    if export.status != Status.COMPLETED:
        raise ConversionRejected(
            f"Export is not completed (status: {export.status}); convert it once its status is completed."
        )
    already = f"Conversion to {export_type} already started"
    existing = next((cf for cf in export.converted_formats.all() if cf.export_type == export_type), None)
    if existing is None:
        try:
            with transaction.atomic():
                converted = ConvertedFormat.objects.create(
                    export=export, export_type=export_type, download_resources=download_resources
                )
        except IntegrityError as exc:  # another request created it since the snapshot was read
            raise ConversionRejected(already) from exc
    elif ConvertedFormat.objects.transition(
        existing.pk,
        Status.CREATED,
        traceback=None,
        file="",
        finished_at=None,
        created_at=timezone.now(),  # the sweep requeues by age: a retry starts its wait afresh
        download_resources=download_resources,
    ):
        converted = existing
        if existing.file:
            transaction.on_commit(partial(storage.remove, existing.file))
    else:
        raise ConversionRejected(already)
    queue.enqueue(jobs.run_conversion, converted.pk)
    return converted
