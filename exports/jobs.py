"""Background jobs. Each takes one id, runs at most once per claim, and never leaves its row in progress."""

import logging
import os
import socket
import uuid
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from exports import storage
from exports.exceptions import LeaseLost
from exports.models import Export, Status
from exports.snapshot import SnapshotWriter

logger = logging.getLogger(__name__)


def new_lease_owner() -> str:
    """host:pid:run — unique per run; the pid lets a restart on the same host spot a dead owner at once."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def lease_deadline():
    return timezone.now() + timedelta(seconds=settings.EXPORT_LEASE_SECONDS)


def describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def export_file_name(export: Export, md5: str) -> str:
    return f"{export.project_id}/export-{export.pk}-{md5}.json"


def run_export(export_id: int) -> None:
    """Build the snapshot file of one export. A second run of the same export does nothing."""
    owner = new_lease_owner()
    if not Export.objects.transition(
        export_id, Status.IN_PROGRESS, lease_owner=owner, lease_expires_at=lease_deadline()
    ):
        return  # already claimed, finished or deleted

    def progress(done: int, total: int) -> None:
        if not Export.objects.renew_lease(export_id, owner, counters={"done": done, "total": total}):
            raise LeaseLost(f"export {export_id} is no longer held by {owner}")

    name = ""
    try:
        export = Export.objects.select_related("project").filter(pk=export_id).first()
        if export is None:
            raise LeaseLost(f"export {export_id} was deleted")
        writer = SnapshotWriter(
            project=export.project,
            task_filter_options=export.task_filter_options,
            annotation_filter_options=export.annotation_filter_options,
            serialization_options=export.serialization_options,
            batch_size=settings.EXPORT_BATCH_SIZE,
        )
        with storage.scratch_file() as scratch:
            progress(0, 0)
            result = writer.write(scratch, progress=progress)
            name = storage.store(export_file_name(export, result.md5), scratch)
        counters = {**result.counters, "done": result.counters["task_number"], "total": result.counters["task_number"]}
        if not Export.objects.transition(
            export_id,
            Status.COMPLETED,
            only_if={"lease_owner": owner},
            file=name,
            md5=result.md5,
            counters=counters,
            reason="",
        ):
            raise LeaseLost(f"export {export_id} was taken from {owner} before it completed")
    except LeaseLost:
        logger.warning("Export %s: lease lost, discarding its file", export_id)
        if name and not Export.objects.filter(file=name).exists():
            storage.remove(name)
    except Exception as exc:
        logger.exception("Export %s failed", export_id)
        if name:
            storage.remove(name)
        Export.objects.transition(export_id, Status.FAILED, only_if={"lease_owner": owner}, reason=describe(exc))
