"""The only module that knows how background jobs run: in-process pool, synchronously, or (later) Celery."""

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from django.conf import settings
from django.db import close_old_connections, connection, transaction

logger = logging.getLogger(__name__)

SWEEP_SECONDS = 30

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
            _start_sweeper()
        return _pool


def _start_sweeper() -> None:
    from exports.services import jobs_recover

    def loop() -> None:
        stop = threading.Event()
        while not stop.wait(SWEEP_SECONDS):
            try:
                close_old_connections()
                jobs_recover(requeue_older_than=settings.EXPORT_LEASE_SECONDS)
            except Exception:
                logger.exception("Stale job sweep failed")
            finally:
                connection.close()

    threading.Thread(target=loop, name="jobs-sweeper", daemon=True).start()


def submit(job, *args) -> None:
    """Run `job(*args)` in the background now (the caller has already committed)."""
    if settings.JOBS_BACKEND == "sync":
        job(*args)
    else:
        _pool_instance().submit(_run, job, *args)


def enqueue(job, *args) -> None:
    """Run `job(*args)` once the current transaction commits, so the job sees the rows it needs."""
    transaction.on_commit(partial(submit, job, *args))


_started = False


def start_embedded_runner(**kwargs) -> None:
    """On a web process's first request: recover jobs a dead process left behind, then start the pool."""
    global _started
    if _started or settings.JOBS_BACKEND != "thread":
        return
    with _lock:
        if _started:
            return
        _started = True
    from exports.services import jobs_recover

    try:
        jobs_recover(requeue_older_than=0)
    except Exception:
        logger.exception("Recovering interrupted jobs failed")
    _pool_instance()
