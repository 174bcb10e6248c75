"""Where background jobs run: the only module that answers that question.

`settings.JOBS_BACKEND` picks one: "thread" (the embedded default: a small pool in the web process), "sync" (in
the calling thread, for tests) or "celery" (when CELERY_BROKER_URL is set: a job is sent by name, as the Celery
task `exports.<job name>` that `exports.tasks` binds to it). Jobs are plain functions of JSON-safe arguments.

This module imports nothing of the exports app: callers hand it the job functions and, for periodic work such as
the recovery sweep, the function to repeat.
"""

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from config.logs import in_job_context

logger = logging.getLogger(__name__)

Job = Callable[..., None]

__all__ = [
    "Job",
    "backend",
    "enqueue",
    "jobs_share_this_process",
    "send_to_celery",
    "start_periodic",
    "start_pool",
    "submit",
    "submit_later",
]

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def backend() -> str:
    """ "thread", "sync" or "celery" (settings.JOBS_BACKEND)."""
    return settings.JOBS_BACKEND


def jobs_share_this_process() -> bool:
    """Whether jobs run inside the process that submits them (the pool or synchronously), not on workers."""
    return backend() in ("thread", "sync")


def _run(job: Job, *args: Any) -> None:
    try:
        job(*args)
    except Exception:
        logger.exception("Background job %s%r failed", job.__name__, args)
    finally:
        connection.close()


def start_pool() -> ThreadPoolExecutor:
    """The in-process pool (JOBS_THREADS threads), started once."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=settings.JOBS_THREADS, thread_name_prefix="jobs")
        return _pool


def send_to_celery(job: Job, *args: Any, countdown: float | None = None) -> None:
    """Send `job(*args)` to the Celery workers as the task `exports.<job name>`, to run no sooner than `countdown`
    seconds from now when given. Raises when the broker is down."""
    from config.celery import app  # only loaded when Celery is the backend

    later = {"countdown": countdown} if countdown else {}
    # No time limits in the message: each worker applies its own EXPORT_TIME_LIMIT.
    app.send_task(f"exports.{job.__name__}", args=args, time_limit=None, soft_time_limit=None, **later)


def submit(job: Job, *args: Any) -> None:
    """Run `job(*args)` in the background now (the caller has already committed). Raises when the broker
    cannot be reached."""
    job = in_job_context(job)  # the job's log records carry its job id (config.logs), in whichever thread it runs
    kind = backend()
    if kind == "sync":
        job(*args)
    elif kind == "celery":
        send_to_celery(job, *args)
    else:
        start_pool().submit(_run, job, *args)


def submit_later(job: Job, *args: Any, delay: float) -> None:
    """Run `job(*args)` in the background in `delay` seconds, holding no worker meanwhile: Celery's countdown, or a
    timer thread that hands the job to the pool then (a retry still waiting is lost if the process stops). "sync"
    (tests) waits in the calling thread. Raises when the broker cannot be reached."""
    delay = max(0.0, float(delay))
    kind = backend()
    if kind == "celery":
        send_to_celery(job, *args, countdown=delay)
    elif kind == "sync" or not delay:
        time.sleep(delay)
        submit(job, *args)
    else:
        timer = threading.Timer(delay, submit, (job, *args))
        timer.daemon = True
        timer.start()


def _submit_committed(job: Job, *args: Any) -> None:
    if backend() != "celery":
        submit(job, *args)
        return
    try:
        submit(job, *args)
    except Exception:
        # The row is committed and the request must still answer: it stays `created` and a worker's sweep
        # sends it again later.
        logger.exception("Could not send %s%r to the broker; the sweep will requeue it", job.__name__, args)


def enqueue(job: Job, *args: Any) -> None:
    """Run `job(*args)` once the current transaction commits, so the job sees the rows it needs."""
    transaction.on_commit(partial(_submit_committed, job, *args))


def start_periodic(
    work: Callable[[], None], *, every: Callable[[], float], at_once: bool = False, name: str = "jobs-sweeper"
) -> threading.Event:
    """Call `work()` in a daemon thread every `every()` seconds (first right away when `at_once`); set the returned
    event to stop it. `work` must not raise."""
    stop = threading.Event()

    def loop() -> None:
        if at_once:
            work()
        while not stop.wait(every()):
            work()

    threading.Thread(target=loop, name=name, daemon=True).start()
    return stop
