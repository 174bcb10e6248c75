"""Writes on snapshots: create (and enqueue), delete with files, recover jobs that a dead process left behind."""

import logging
import os
import shutil
import socket
import time
from datetime import UTC, timedelta
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from exports import jobs, parallel, queue, storage
from exports.exceptions import ConversionRejected
from exports.models import ConvertedFormat, Export, JobQuerySet, Status
from projects.models import Project
from users.models import User

logger = logging.getLogger(__name__)

LEASE_EXPIRED = (
    "The job stopped renewing its lease (its worker or process probably died); the snapshot was not completed. "
    "Create a new snapshot to try again."
)
OWNER_GONE = "The process writing this snapshot (pid {pid}) stopped before it finished. Create a new snapshot."
CONVERSION_LEASE_EXPIRED = (
    "The conversion stopped renewing its lease (its worker or process probably died); no file was made. "
    "Convert again to retry."
)
CONVERSION_OWNER_GONE = (
    "The process converting this snapshot (pid {pid}) stopped before it finished. Convert again to retry."
)


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
) -> Export:
    """Record a snapshot request and start its job once the transaction commits; returns at once."""
    export = Export.objects.create(
        project=project,
        created_by=created_by,
        title=title or default_title(project),
        task_filter_options=task_filter_options,
        annotation_filter_options=annotation_filter_options,
        serialization_options=serialization_options,
    )
    queue.enqueue(jobs.run_export, export.pk)
    return export


@transaction.atomic
def exports_delete(*, exports: QuerySet) -> None:
    """Delete snapshots with their converted formats; their files are removed once the deletion commits.

    Every row is locked while the file names are read, those without a file too: a job that completes one
    meanwhile waits, then finds its row gone and removes its own file (on SQLite the IMMEDIATE transaction does
    the same).
    """
    converted = ConvertedFormat.objects.filter(export__in=exports.values("pk"))
    names = [
        *exports.select_for_update(of=("self",)).values_list("file", flat=True),
        *converted.select_for_update(of=("self",)).values_list("file", flat=True),
    ]
    exports.delete()
    transaction.on_commit(partial(_remove_files, [name for name in names if name]))


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


def _owner_is_dead(owner: str) -> int | None:
    """The owner's pid when it ran on this host and that process no longer exists; None otherwise."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return pid
    except PermissionError:
        return None
    return None


def _fail_dead_jobs(objects: JobQuerySet, *, reason_field: str, expired: str, owner_gone: str) -> int:
    """Fail the rows whose lease expired, or whose owner was a process of this host that no longer exists."""
    failed = 0
    for pk in objects.lease_expired().values_list("pk", flat=True):
        failed += objects.transition(
            pk, Status.FAILED, only_if={"lease_expires_at__lt": timezone.now()}, **{reason_field: expired}
        )
    for pk, owner in objects.filter(status=Status.IN_PROGRESS).values_list("pk", "lease_owner"):
        pid = _owner_is_dead(owner)
        if pid is not None:
            failed += objects.transition(
                pk, Status.FAILED, only_if={"lease_owner": owner}, **{reason_field: owner_gone.format(pid=pid)}
            )
    return failed


def _remove_abandoned_conversion_folders(*, older_than: float) -> int:
    """Delete converters' scratch folders that a killed process left (a live job touches its folder as it runs)."""
    removed = 0
    deadline = time.time() - older_than
    for path in storage.scratch_folder().glob(f"{jobs.CONVERSION_SCRATCH_PREFIX}*"):
        try:
            if path.is_dir() and path.stat().st_mtime < deadline:
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def jobs_recover(*, requeue_older_than: float | None = None) -> dict[str, int]:
    """Fail snapshots and conversions whose job died (expired lease, or a dead process on this host), and requeue
    those created more than `requeue_older_than` seconds ago that no job has claimed (None: requeue none); a row
    is sent again at most once per `requeue_older_than` seconds, however many processes sweep.
    Safe to run from many processes at once: a requeued job that finds its row claimed does nothing."""
    failed = _fail_dead_jobs(Export.objects.all(), reason_field="reason", expired=LEASE_EXPIRED, owner_gone=OWNER_GONE)
    failed += _fail_dead_jobs(
        ConvertedFormat.objects.all(),
        reason_field="traceback",
        expired=CONVERSION_LEASE_EXPIRED,
        owner_gone=CONVERSION_OWNER_GONE,
    )
    storage.remove_abandoned_scratch(older_than=2 * settings.EXPORT_LEASE_SECONDS)
    _remove_abandoned_conversion_folders(older_than=2 * settings.EXPORT_LEASE_SECONDS)
    parallel.remove_abandoned_parts()
    requeued = 0
    if requeue_older_than is not None:
        cutoff = timezone.now() - timedelta(seconds=requeue_older_than)
        for job, objects in ((jobs.run_export, Export.objects), (jobs.run_conversion, ConvertedFormat.objects)):
            for pk in objects.waiting_since(cutoff).values_list("pk", flat=True):
                if objects.mark_resent(pk, cutoff):  # once per `requeue_older_than`, by one sweep only
                    queue.submit(job, pk)
                    requeued += 1
    if failed or requeued:
        logger.info("Recovered export jobs: %s failed, %s requeued", failed, requeued)
    return {"failed": failed, "requeued": requeued}
