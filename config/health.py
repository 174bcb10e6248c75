"""Operator endpoints, open to anyone and outside the API schema: `GET /health` (the process answers),
`GET /ready` (its database, export storage and, when used, broker answer) and `GET /metrics` (Prometheus).

The bodies name checks only, never paths, URLs or errors; the reason of a failed check is logged.
"""

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from config.api.exceptions import error_response
from exports import storage
from exports.metrics import ExportCollector

logger = logging.getLogger(__name__)

UP = "UP"
DOWN = "DOWN"
BROKER_TIMEOUT = 2.0  # seconds to connect to the broker

registry = CollectorRegistry(auto_describe=False)
registry.register(ExportCollector())


def _safe(view: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """GET and HEAD only, with the JSON error body otherwise."""

    def wrapped(request: HttpRequest) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            response = error_response(405, "Method not allowed.")
            response["Allow"] = "GET, HEAD"
            return response
        return view(request)

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


def check_database(alias: str = "default") -> None:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_storage() -> None:
    """The export storage can be built and, when local, its folder takes a file."""
    exports = storage.export_storage()
    if storage.is_local(exports):
        folder = Path(exports.path(""))
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".ready-", suffix=".probe"):
            pass


def check_broker() -> None:
    from kombu import Connection

    with Connection(settings.CELERY_BROKER_URL, connect_timeout=BROKER_TIMEOUT) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT)


def readiness_checks() -> dict[str, Callable[[], None]]:
    checks: dict[str, Callable[[], None]] = {"database": check_database, "storage": check_storage}
    if settings.LABEL_STUDIO_ATTACHED:
        checks["labelstudio_database"] = lambda: check_database("labelstudio")
    if settings.JOBS_BACKEND == "celery":
        checks["broker"] = check_broker
    return checks


@_safe
def health(request: HttpRequest) -> HttpResponse:
    """Label Studio's answer; touches nothing."""
    return JsonResponse({"status": UP})


@_safe
def ready(request: HttpRequest) -> HttpResponse:
    results: dict[str, str] = {}
    for name, check in readiness_checks().items():
        try:
            check()
        except Exception:
            logger.exception("Readiness check %s failed", name)
            results[name] = DOWN
        else:
            results[name] = UP
    ok = all(result == UP for result in results.values())
    return JsonResponse({"status": UP if ok else DOWN, "checks": results}, status=200 if ok else 503)


@_safe
def metrics(request: HttpRequest) -> HttpResponse:
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
