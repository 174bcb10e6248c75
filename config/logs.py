"""What every log record carries besides its message, and the JSON format of LOG_FORMAT=json.

The request, the authenticated user and the background job a record belongs to live in context variables:
`RequestLogMiddleware` sets the request id (and writes one access line per request), the authentication classes
set the user id (`users.authentication`), and `in_job_context` sets the job id around a background job. A filter
on the handler copies them onto each record, so `JsonFormatter` writes them with the time, level, logger and
message, one JSON object per line. The text format (the default) writes the plain message, as it always did.

Nothing here reads settings or the request's credentials: tokens and the Authorization header never reach a log.
"""

import functools
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import request_finished

__all__ = [
    "REQUEST_ID_HEADER",
    "ContextFilter",
    "JsonFormatter",
    "RequestLogMiddleware",
    "in_job_context",
    "job_context",
    "logging_config",
    "set_user",
]

LOG_FORMATS = ("text", "json")
REQUEST_ID_HEADER = "X-Request-ID"
# An incoming request id is kept only when it is a short token; anything else is replaced by a fresh one.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
user_id: ContextVar[int | None] = ContextVar("user_id", default=None)
job_id: ContextVar[str | None] = ContextVar("job_id", default=None)
CONTEXT: dict[str, ContextVar[Any]] = {"request_id": request_id, "user_id": user_id, "job_id": job_id}

access_logger = logging.getLogger("access")

# Attributes every LogRecord has; any other one came from `extra=` and is written as a field of its own.
RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName", *CONTEXT}
# Django's request loggers pass the request object itself: its repr is no field worth writing.
SKIPPED_EXTRAS = frozenset({"request"})


def set_user(user: Any) -> None:
    """Records from here to the end of the request carry this user's id."""
    user_id.set(getattr(user, "pk", None))


def job_label(name: str, args: tuple) -> str:
    """A job's id in the logs: its name and its id arguments, e.g. `run_export:12`."""
    ids = [str(arg) for arg in args if isinstance(arg, int | str)]
    return ":".join([name, *ids])


@contextmanager
def job_context(name: str, *args: Any) -> Iterator[None]:
    """Records inside carry the job id of `name(*args)`."""
    token = job_id.set(job_label(name, args))
    try:
        yield
    finally:
        job_id.reset(token)


def in_job_context(job: Callable[..., None]) -> Callable[..., None]:
    """`job` wrapped so that its records carry its job id, in whichever thread it runs; it keeps the job's name,
    which the queue sends to Celery."""

    @functools.wraps(job)
    def run(*args: Any) -> None:
        with job_context(job.__name__, *args):
            job(*args)

    return run


class ContextFilter(logging.Filter):
    """Puts the current request id, user id and job id on each record (None where unknown)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in CONTEXT.items():
            if not hasattr(record, name):  # an explicit `extra=` wins
                setattr(record, name, var.get())
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (ISO 8601, UTC), level, logger, message, the context ids that are known,
    any `extra=` fields, and the exception text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        for name, value in vars(record).items():
            if name not in RECORD_ATTRIBUTES and name not in SKIPPED_EXTRAS and name not in entry:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


def logging_config(log_format: str = "text", level: str = "INFO") -> dict:
    """The LOGGING setting: one console handler on stderr, plain messages ("text") or JSON lines ("json")."""
    if log_format not in LOG_FORMATS:
        raise ImproperlyConfigured(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}.")
    console: dict[str, Any] = {"class": "logging.StreamHandler"}
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"console": console},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {"django.request": {"level": "ERROR"}},
    }
    if log_format == "json":
        config["filters"] = {"context": {"()": ContextFilter}}
        config["formatters"] = {"json": {"()": JsonFormatter}}
        console.update(filters=["context"], formatter="json")
        # One access line per request from the middleware (gunicorn's own access log is off in this format).
        config["loggers"]["access"] = {"level": "INFO"}
    else:
        # The text format keeps to what it always wrote; gunicorn's access log covers requests.
        config["loggers"]["access"] = {"level": "WARNING"}
    return config


def incoming_request_id(value: str | None) -> str:
    """The client's X-Request-ID when it is a sane short token, else a new one."""
    if value and SANE_REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


def forget_request(**kwargs: Any) -> None:
    """The request's response was closed (its body sent): later records of this thread belong to no request."""
    request_id.set(None)
    user_id.set(None)


class RequestLogMiddleware:
    """Gives each request an id (the client's `X-Request-ID` when sane, else a new one), echoes it in the
    response's `X-Request-ID`, and writes one access line: method, path (never the query string), status and
    the milliseconds until the response was ready (a streamed body may take longer to send). First in MIDDLEWARE.

    The ids stay set until the response is closed (`request_finished`, after a streamed body is sent), so the
    records Django writes about the request after the middleware returned (a 500's `django.request` line) carry
    them too."""

    def __init__(self, get_response):
        self.get_response = get_response
        request_finished.connect(forget_request, dispatch_uid="config.logs.forget_request")

    def __call__(self, request):
        rid = incoming_request_id(request.headers.get(REQUEST_ID_HEADER))
        request_id.set(rid)
        user_id.set(None)
        started = time.monotonic()
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = rid
        duration_ms = round((time.monotonic() - started) * 1000, 1)
        status = response.status_code
        access_logger.info(
            "%s %s %s %sms",
            request.method,
            request.path,
            status,
            duration_ms,
            extra={"method": request.method, "path": request.path, "status": status, "duration_ms": duration_ms},
        )
        return response
