"""Writes on snapshots: create (and enqueue), delete with files, recover jobs that a dead process left behind."""

import logging
import os
import socket
from datetime import UTC, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from exports import jobs, queue, storage
from exports.models import ConvertedFormat, Export, Status
from projects.models import Project
from users.models import User

logger = logging.getLogger(__name__)

LEASE_EXPIRED = (
    "The job stopped renewing its lease (its worker or process probably died); the snapshot was not completed. "
    "Create a new snapshot to try again."
)
OWNER_GONE = "The process writing this snapshot (pid {pid}) stopped before it finished. Create a new snapshot."


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


def exports_delete(*, exports: QuerySet) -> None:
    """Delete snapshots with their converted formats; their files are removed once the deletion commits."""
    names = list(exports.exclude(file="").values_list("file", flat=True))
    names += list(ConvertedFormat.objects.filter(export__in=exports).exclude(file="").values_list("file", flat=True))
    exports.delete()

    def remove_files() -> None:
        for name in names:
            try:
                storage.remove(name)
            except OSError:
                logger.exception("Could not remove export file %s", name)

    transaction.on_commit(remove_files)


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


def jobs_recover(*, requeue_older_than: float | None = None) -> dict[str, int]:
    """Fail snapshots whose job died (expired lease, or a dead process on this host), and requeue snapshots
    created more than `requeue_older_than` seconds ago that no job has claimed (None: requeue none).
    Safe to run from many processes at once: a requeued job that finds its snapshot claimed does nothing."""
    failed = 0
    for export_id in Export.objects.lease_expired().values_list("pk", flat=True):
        failed += Export.objects.transition(
            export_id, Status.FAILED, only_if={"lease_expires_at__lt": timezone.now()}, reason=LEASE_EXPIRED
        )
    running = Export.objects.filter(status=Status.IN_PROGRESS).values_list("pk", "lease_owner")
    for export_id, owner in running:
        pid = _owner_is_dead(owner)
        if pid is not None:
            failed += Export.objects.transition(
                export_id, Status.FAILED, only_if={"lease_owner": owner}, reason=OWNER_GONE.format(pid=pid)
            )
    storage.remove_abandoned_scratch(older_than=2 * settings.EXPORT_LEASE_SECONDS)
    requeued = 0
    if requeue_older_than is not None:
        cutoff = timezone.now() - timedelta(seconds=requeue_older_than)
        waiting = Export.objects.filter(status=Status.CREATED, created_at__lte=cutoff)
        for export_id in waiting.values_list("pk", flat=True):
            queue.submit(jobs.run_export, export_id)
            requeued += 1
    if failed or requeued:
        logger.info("Recovered export jobs: %s failed, %s requeued", failed, requeued)
    return {"failed": failed, "requeued": requeued}
