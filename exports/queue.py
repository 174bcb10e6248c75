"""The only module that knows how background jobs run: in-process pool, synchronously, or on Celery workers.

`settings.JOBS_BACKEND` picks one: "thread" (the embedded default: a small pool in the web process plus a sweep
thread), "sync" (in the calling thread, for tests) or "celery" (when CELERY_BROKER_URL is set: each job is sent
as the task of the same name in `exports.tasks`; every worker runs the sweep, and web processes run one that
only fails dead jobs).
"""

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from django.conf import settings
from django.db import close_old_connections, connection, transaction

logger = logging.getLogger(__name__)

# None: every settings.JOBS_SWEEP_SECONDS. A number pins the interval (tests that must not meet a sweep).
SWEEP_SECONDS: float | None = None

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _run(job, *args) -> None:
    try:
        job(*args)
    except Exception:
        logger.exception("Background job %s%r failed", job.__name__, args)
    finally:
        connection.close()


def _pool_instance() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=settings.JOBS_THREADS, thread_name_prefix="jobs")
            start_sweeper(requeue_older_than=settings.EXPORT_LEASE_SECONDS)
        return _pool


def sweep(*, requeue_older_than: float | None) -> None:
    """One pass of `jobs_recover` on a fresh connection; a failure (e.g. the database is down) is only logged."""
    from exports.services import jobs_recover

    try:
        close_old_connections()
        jobs_recover(requeue_older_than=requeue_older_than)
    except Exception:
        logger.exception("Stale job sweep failed")
    finally:
        connection.close()


def start_sweeper(*, requeue_older_than: float | None, at_once: bool = False) -> threading.Event:
    """Sweep in a daemon thread every SWEEP_SECONDS (first right away when `at_once`); set the event to stop it."""
    stop = threading.Event()

    def loop() -> None:
        if at_once:
            sweep(requeue_older_than=requeue_older_than)
        while not stop.wait(SWEEP_SECONDS or settings.JOBS_SWEEP_SECONDS):
            sweep(requeue_older_than=requeue_older_than)

    threading.Thread(target=loop, name="jobs-sweeper", daemon=True).start()
    return stop


def submit(job, *args) -> None:
    """Run `job(*args)` in the background now (the caller has already committed). Raises when the broker
    cannot be reached."""
    if settings.JOBS_BACKEND == "sync":
        job(*args)
    elif settings.JOBS_BACKEND == "celery":
        from exports import tasks

        # No time limits in the message: each worker applies its own EXPORT_TIME_LIMIT.
        tasks.task_for(job).apply_async(args=args, time_limit=None, soft_time_limit=None)
    else:
        _pool_instance().submit(_run, job, *args)


def _submit_committed(job, *args) -> None:
    if settings.JOBS_BACKEND != "celery":
        submit(job, *args)
        return
    try:
        submit(job, *args)
    except Exception:
        # The row is committed and the request must still answer: it stays `created` and a worker's sweep
        # sends it again later.
        logger.exception("Could not send %s%r to the broker; the sweep will requeue it", job.__name__, args)


def enqueue(job, *args) -> None:
    """Run `job(*args)` once the current transaction commits, so the job sees the rows it needs."""
    transaction.on_commit(partial(_submit_committed, job, *args))


_started = False
_web_sweeper: threading.Event | None = None


def start_embedded_runner(**kwargs) -> None:
    """On a web process's first request: recover jobs a dead process left behind, then start the pool.

    With Celery the web process runs no job; it only fails dead ones (requeueing is left to the workers), so a
    snapshot never stays in_progress even while no worker is running."""
    global _started, _web_sweeper
    if _started or settings.JOBS_BACKEND == "sync":
        return
    with _lock:
        if _started:
            return
        _started = True
    if settings.JOBS_BACKEND == "celery":
        _web_sweeper = start_sweeper(requeue_older_than=None, at_once=True)
        return
    from exports.services import jobs_recover

    try:
        jobs_recover(requeue_older_than=0)
    except Exception:
        logger.exception("Recovering interrupted jobs failed")
    _pool_instance()


def start_worker_sweeper() -> threading.Event:
    """In a Celery worker's main process: sweep at once (a job of this host's previous worker may be dead), then
    every JOBS_SWEEP_SECONDS. Every worker sweeps; a sweep is safe to run from many processes at once."""
    return start_sweeper(requeue_older_than=settings.JOBS_REQUEUE_SECONDS, at_once=True)
