"""Celery bindings of the background jobs: one task per job, named `exports.<job name>`, that only calls the job
with its arguments. `exports.queue` sends them by that name; a job never knows it runs on Celery.

Each worker also runs the sweep of dead and forgotten jobs (started when the worker is ready), so a Celery
deployment needs no process besides the web server and its workers. Celery's own time-limit error is explained
here, so a job stopped by it fails with a readable reason.
"""

import threading

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import InterfaceError, OperationalError

from exports import jobs, parallel, recovery, webhooks
from exports.failures import explain
from exports.queue import Job

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

explain(
    SoftTimeLimitExceeded,
    lambda exc: f"The job ran longer than its time limit ({settings.EXPORT_TIME_LIMIT} s) and was stopped.",
)


@shared_task(name="exports.run_export", **JOB_OPTIONS)
def run_export_task(export_id: int) -> None:
    jobs.run_export(export_id)


@shared_task(name="exports.run_conversion", **JOB_OPTIONS)
def run_conversion_task(converted_format_id: int) -> None:
    jobs.run_conversion(converted_format_id)


@shared_task(name="exports.run_export_part", **JOB_OPTIONS)
def run_export_part_task(export_id: int, part: dict) -> None:
    parallel.run_export_part(export_id, part)


@shared_task(name="exports.deliver_webhook", **JOB_OPTIONS)
def deliver_webhook_task(webhook_id: int, body: str, attempt: int = 1) -> None:
    webhooks.deliver_webhook(webhook_id, body, attempt)


def task_for(job: Job) -> Task:
    """The task that runs `job`: the one named `exports.<job name>` (what `exports.queue` sends)."""
    task = globals().get(f"{job.__name__}_task")
    if not isinstance(task, Task) or task.name != f"exports.{job.__name__}":
        raise LookupError(f"No Celery task runs the job {job.__name__}; add {job.__name__}_task to exports.tasks")
    return task


_sweeper: threading.Event | None = None


@worker_ready.connect
def _start_sweeper(**kwargs) -> None:
    global _sweeper
    _sweeper = recovery.start_worker_sweeper()


@worker_shutdown.connect
def _stop_sweeper(**kwargs) -> None:
    if _sweeper is not None:
        _sweeper.set()
