"""Celery bindings of the background jobs: one task per job, named after it, that only calls the job with its
arguments. Only `exports.queue` sends these; a job never knows it runs on Celery.

Each worker also runs the sweep of dead and forgotten jobs (started when the worker is ready), so a Celery
deployment needs no process besides the web server and its workers.
"""

import threading

from celery import Task, shared_task
from celery.signals import worker_ready, worker_shutdown
from django.db import InterfaceError, OperationalError

from exports import jobs, queue

# A job that cannot reach the database (e.g. while PostgreSQL restarts) raises one of these; the task is sent
# again after 2, 4 and 8 seconds, then given up (the sweep requeues a row still `created` later).
JOB_OPTIONS = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "max_retries": 3,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": False,
}


@shared_task(name="exports.run_export", **JOB_OPTIONS)
def run_export_task(export_id: int) -> None:
    jobs.run_export(export_id)


@shared_task(name="exports.run_conversion", **JOB_OPTIONS)
def run_conversion_task(converted_format_id: int) -> None:
    jobs.run_conversion(converted_format_id)


@shared_task(name="exports.run_export_part", **JOB_OPTIONS)
def run_export_part_task(export_id: int, part: dict) -> None:
    from exports import parallel

    parallel.run_export_part(export_id, part)


def task_for(job) -> Task:
    """The task that runs `job`: `<job name>_task` in this module."""
    task = globals().get(f"{job.__name__}_task")
    if not isinstance(task, Task):
        raise LookupError(f"No Celery task runs the job {job.__name__}; add {job.__name__}_task to exports.tasks")
    return task


_sweeper: threading.Event | None = None


@worker_ready.connect
def _start_sweeper(**kwargs) -> None:
    global _sweeper
    _sweeper = queue.start_worker_sweeper()


@worker_shutdown.connect
def _stop_sweeper(**kwargs) -> None:
    if _sweeper is not None:
        _sweeper.set()
