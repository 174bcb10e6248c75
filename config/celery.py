"""The Celery application of the worker processes (`celery -A config worker`), configured from Django settings.

Only used when CELERY_BROKER_URL is set; `exports/queue.py` decides whether jobs go to it.
"""

import os

from celery import Celery
from celery.signals import setup_logging, task_postrun, task_prerun

from config.logs import job_id, job_label

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
# Every CELERY_* Django setting becomes the lower-case Celery setting of the same name.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def _enter_job(task=None, args=None, **kwargs) -> None:
    """A task's log records carry the job id of the job it runs (`run_export:12`), as in the web process."""
    job_id.set(job_label(task.name.removeprefix("exports."), tuple(args or ())))


@task_postrun.connect
def _leave_job(**kwargs) -> None:
    job_id.set(None)


if os.environ.get("LOG_FORMAT") == "json":
    # A receiver of setup_logging makes Celery leave logging alone, so the worker keeps Django's LOGGING (set up
    # with the app) and writes JSON lines like the web process.
    @setup_logging.connect
    def _keep_django_logging(**kwargs) -> None:
        pass
