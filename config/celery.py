"""The Celery application of the worker processes (`celery -A config worker`), configured from Django settings.

Only used when CELERY_BROKER_URL is set; `exports/queue.py` decides whether jobs go to it.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
# Every CELERY_* Django setting becomes the lower-case Celery setting of the same name.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
