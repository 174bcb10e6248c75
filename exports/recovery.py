"""Nothing stays in progress: the sweep that fails dead jobs, requeues forgotten ones and removes what dead
processes left on disk, and where it runs (a web process's first request, every Celery worker). The same sweep
applies the retention of old snapshots (`exports.retention`, when `EXPORT_RETENTION_DAYS` is set).
"""

import logging
import shutil
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from exports import jobs, parallel, queue, retention, storage
from exports.converting import CONVERSION_SCRATCH_PREFIX
from exports.leases import LeaseOwner
from exports.models import ConvertedFormat, Export, JobQuerySet, Status

__all__ = [
    "CONVERSION_LEASE_EXPIRED",
    "CONVERSION_OWNER_GONE",
    "LEASE_EXPIRED",
    "OWNER_GONE",
    "jobs_recover",
    "start_embedded_runner",
    "start_worker_sweeper",
    "sweep",
]

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

# None: every settings.JOBS_SWEEP_SECONDS. A number pins the interval (tests that must not meet a sweep).
SWEEP_SECONDS: float | None = None


def _fail_dead_jobs(objects: JobQuerySet, *, reason_field: str, expired: str, owner_gone: str) -> int:
    """Fail the rows whose lease expired, or whose owner was a process of this host that no longer exists."""
    failed = 0
    for pk in objects.lease_expired().values_list("pk", flat=True):
        failed += objects.transition(
            pk, Status.FAILED, only_if={"lease_expires_at__lt": timezone.now()}, **{reason_field: expired}
        )
    for pk, owner in objects.filter(status=Status.IN_PROGRESS).values_list("pk", "lease_owner"):
        claim = LeaseOwner.parse(owner)
        pid = claim.dead_pid() if claim is not None else None
        if pid is not None:
            failed += objects.transition(
                pk, Status.FAILED, only_if={"lease_owner": owner}, **{reason_field: owner_gone.format(pid=pid)}
            )
    return failed


def _remove_abandoned_conversion_folders(*, older_than: float) -> int:
    """Delete converters' scratch folders that a killed process left (a live job touches its folder as it runs)."""
    removed = 0
    deadline = time.time() - older_than
    for path in storage.scratch_folder().glob(f"{CONVERSION_SCRATCH_PREFIX}*"):
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
    is sent again at most once per `requeue_older_than` seconds, however many processes sweep. Last, snapshots
    older than `EXPORT_RETENTION_DAYS` are purged.
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
    purged = len(retention.retention_sweep())
    if failed or requeued or purged:
        logger.info("Recovered export jobs: %s failed, %s requeued; %s old snapshots purged", failed, requeued, purged)
    return {"failed": failed, "requeued": requeued, "purged": purged}


def sweep(*, requeue_older_than: float | None) -> None:
    """One pass of `jobs_recover` on a fresh connection; a failure (e.g. the database is down) is only logged."""
    try:
        close_old_connections()
        jobs_recover(requeue_older_than=requeue_older_than)
    except Exception:
        logger.exception("Stale job sweep failed")
    finally:
        connection.close()


def _start_sweeper(*, requeue_older_than: float | None, at_once: bool) -> threading.Event:
    return queue.start_periodic(
        lambda: sweep(requeue_older_than=requeue_older_than),
        every=lambda: SWEEP_SECONDS or settings.JOBS_SWEEP_SECONDS,
        at_once=at_once,
    )


_lock = threading.Lock()
_started = False
_web_sweeper: threading.Event | None = None


def start_embedded_runner(**kwargs) -> None:
    """On a web process's first request: recover jobs a dead process left behind, then start the pool.

    When jobs run on workers the web process runs no job; it only fails dead ones (requeueing is left to the
    workers), so a snapshot never stays in_progress even while no worker is running."""
    global _started, _web_sweeper
    if _started or queue.backend() == "sync":
        return
    with _lock:
        if _started:
            return
        _started = True
    if not queue.jobs_share_this_process():
        _web_sweeper = _start_sweeper(requeue_older_than=None, at_once=True)
        return
    try:
        jobs_recover(requeue_older_than=0)
    except Exception:
        logger.exception("Recovering interrupted jobs failed")
    queue.start_pool()
    _start_sweeper(requeue_older_than=settings.EXPORT_LEASE_SECONDS, at_once=False)


def start_worker_sweeper() -> threading.Event:
    """In a Celery worker's main process: sweep at once (a job of this host's previous worker may be dead), then
    every JOBS_SWEEP_SECONDS. Every worker sweeps; a sweep is safe to run from many processes at once."""
    return _start_sweeper(requeue_older_than=settings.JOBS_REQUEUE_SECONDS, at_once=True)
