"""Background jobs. Each takes one id, runs at most once per claim, and never leaves its row in progress."""

import logging
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from exports import storage
from exports.converters.availability import label_config_of
from exports.converters.images import image_fetcher
from exports.converters.registry import ConversionContext, ConversionError, Format, get_format
from exports.converters.source import SnapshotSource, TaskSource
from exports.exceptions import LeaseLost
from exports.models import ConvertedFormat, Export, Status
from exports.snapshot import SnapshotWriter

logger = logging.getLogger(__name__)


def new_lease_owner() -> str:
    """host:pid:run — unique per run; the pid lets a restart on the same host spot a dead owner at once."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def lease_deadline():
    return timezone.now() + timedelta(seconds=settings.EXPORT_LEASE_SECONDS)


def describe(exc: BaseException) -> str:
    if type(exc).__name__ == "SoftTimeLimitExceeded":  # Celery's, raised inside the job when its time is up
        return f"The job ran longer than its time limit ({settings.EXPORT_TIME_LIMIT} s) and was stopped."
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def reset_broken_connection() -> None:
    """After a database error (e.g. the server restarted) the connection is unusable; drop it so the
    failure can still be recorded on a fresh one. Inside a transaction (the job run inline) nothing is dropped."""
    if connection.connection is not None and not connection.in_atomic_block and not connection.is_usable():
        connection.close()


def export_file_name(export: Export, md5: str) -> str:
    return f"{export.project_id}/export-{export.pk}-{md5}.json"


def run_export(export_id: int) -> None:
    """Build the snapshot file of one export. A second run of the same export does nothing."""
    from exports import parallel  # it uses this module's helpers

    owner = new_lease_owner()
    if not Export.objects.transition(
        export_id, Status.IN_PROGRESS, lease_owner=owner, lease_expires_at=lease_deadline()
    ):
        return  # already claimed, finished or deleted

    def progress(done: int, total: int) -> None:
        if not Export.objects.renew_lease(export_id, owner, counters={"done": done, "total": total}):
            raise LeaseLost(f"export {export_id} is no longer held by {owner}")

    name = ""
    try:
        export = Export.objects.select_related("project").filter(pk=export_id).first()
        if export is None:
            raise LeaseLost(f"export {export_id} was deleted")
        writer = SnapshotWriter.for_export(export)
        if parallel.split_export(export, writer, owner):
            return  # a large snapshot: its parts write, join and complete it (exports/parallel.py)
        with storage.scratch_file() as scratch:
            progress(0, 0)
            result = writer.write(scratch, progress=progress)
            name = storage.store(
                export_file_name(export, result.md5),
                scratch,
                keep_alive=lambda: Export.objects.renew_lease(export_id, owner),
            )
        counters = {**result.counters, "done": result.counters["task_number"], "total": result.counters["task_number"]}
        if not Export.objects.transition(
            export_id,
            Status.COMPLETED,
            only_if={"lease_owner": owner},
            file=name,
            md5=result.md5,
            counters=counters,
            reason="",
        ):
            raise LeaseLost(f"export {export_id} was taken from {owner} before it completed")
    except LeaseLost:
        logger.warning("Export %s: lease lost, discarding its file", export_id)
        discard_unreferenced(Export, name)
    except Exception as exc:
        logger.exception("Export %s failed", export_id)
        reset_broken_connection()
        Export.objects.transition(export_id, Status.FAILED, only_if={"lease_owner": owner}, reason=describe(exc))
        discard_unreferenced(Export, name)


def discard_unreferenced(model: type[Export] | type[ConvertedFormat], name: str) -> None:
    """Remove a stored file a job made but could not record, unless a row refers to it after all (a run that took
    over may have stored the same name, or the completing UPDATE may have committed before its error)."""
    if name and not model.objects.filter(file=name).exists():
        storage.remove(name)


# --- Conversions of a completed snapshot into another format -------------------------------------------------

CONVERSION_SCRATCH_PREFIX = "convert-"


def conversion_file_name(export: Export, converted: ConvertedFormat, fmt: Format, run: str) -> str:
    """`<project>/export-<snapshot>-<TYPE>-<run>.<ext>`: beside the snapshot, and never shared by two runs,
    so a run that lost its lease cannot overwrite or remove the file of the run that took over."""
    return f"{export.project_id}/export-{export.pk}-{converted.export_type}-{run}.{fmt.extension}"


def conversion_failure(export_type: str, exc: BaseException) -> str:
    """The `traceback` a failed conversion shows: the converter's own reason, or what went wrong (no stack)."""
    if isinstance(exc, ConversionError):
        return str(exc).strip() or f"Conversion to {export_type} failed."
    return f"Conversion to {export_type} failed: {describe(exc)}"


@contextmanager
def conversion_scratch_dir() -> Iterator[Path]:
    """A private folder for a converter's intermediate files, removed afterwards (a killed process's by the sweep)."""
    with tempfile.TemporaryDirectory(dir=storage.scratch_folder(), prefix=CONVERSION_SCRATCH_PREFIX) as path:
        yield Path(path)


class KeepAlive:
    """Renews a running conversion's lease at most every `interval` seconds, and touches its scratch files so the
    sweep of abandoned scratch files leaves them alone. Raises LeaseLost once the job no longer holds its row."""

    def __init__(self, renew: Callable[[], bool], *, interval: float, paths: Iterable[Path] = ()):
        self.renew = renew
        self.interval = interval
        self.paths = list(paths)
        self.lost = False
        self._last = time.monotonic()

    def __call__(self, *, force: bool = False) -> None:
        if self.lost:
            raise LeaseLost("the conversion lost its lease")
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        if not self.renew():
            self.lost = True
            raise LeaseLost("the conversion lost its lease")
        for path in self.paths:
            with suppress(FileNotFoundError):
                os.utime(path)


class KeepAliveSource(TaskSource):
    """A task source that keeps its job's lease alive while a converter walks it, however many passes it makes."""

    def __init__(self, source: TaskSource, keep_alive: KeepAlive):
        self.source = source
        self.keep_alive = keep_alive

    def tasks(self) -> Iterator[dict[str, Any]]:
        self.keep_alive(force=True)
        for task in self.source.tasks():
            self.keep_alive()
            yield task


def renew_interval() -> float:
    """How often a conversion renews its lease: several times per lease, so one slow stretch never loses it."""
    return max(0.5, settings.EXPORT_LEASE_SECONDS / 6)


def run_conversion(converted_format_id: int) -> None:
    """Convert a completed snapshot's file into one format. A second run of the same conversion does nothing."""
    owner = new_lease_owner()
    if not ConvertedFormat.objects.transition(
        converted_format_id, Status.IN_PROGRESS, lease_owner=owner, lease_expires_at=lease_deadline()
    ):
        return  # already claimed, finished or deleted
    name = ""
    export_type = ""
    try:
        converted = (
            ConvertedFormat.objects.select_related("export__project")
            .only(
                "id",
                "export_type",
                "download_resources",
                "export__id",
                "export__status",
                "export__file",
                "export__project__id",
                "export__project__label_config",
            )
            .filter(pk=converted_format_id)
            .first()
        )
        if converted is None:
            raise LeaseLost(f"converted format {converted_format_id} was deleted")
        export, export_type = converted.export, converted.export_type
        fmt = get_format(export_type)
        if fmt is None:
            raise ConversionError(f"{export_type} is not a supported export format.")
        if export.status != Status.COMPLETED or not export.file:
            raise ConversionError(f"The snapshot is not completed (status: {export.status}); nothing to convert.")
        with ExitStack() as stack:
            try:
                snapshot_path = stack.enter_context(storage.local_copy(export.file))
            except FileNotFoundError as exc:
                raise ConversionError("The snapshot's file is missing from storage; create a new snapshot.") from exc
            scratch_dir = stack.enter_context(conversion_scratch_dir())
            out = stack.enter_context(storage.scratch_file())
            scratch = [scratch_dir, Path(out.name)]
            if snapshot_path.parent == storage.scratch_folder():  # a downloaded copy, not the stored file itself
                scratch.append(snapshot_path)
            keep_alive = KeepAlive(
                lambda: ConvertedFormat.objects.renew_lease(converted_format_id, owner),
                interval=renew_interval(),
                paths=scratch,
            )
            context = ConversionContext(
                label_config=label_config_of(export.project),
                project_id=export.project_id,
                scratch_dir=scratch_dir,
                download_resources=converted.download_resources,
                fetch_image=image_fetcher(settings) if converted.download_resources else None,
            )
            fmt.load()(KeepAliveSource(SnapshotSource(snapshot_path), keep_alive), out, context)
            if keep_alive.lost:  # a converter that swallowed the LeaseLost it was sent
                raise LeaseLost(f"converted format {converted_format_id} is no longer held by {owner}")
            keep_alive(force=True)
            name = storage.store(conversion_file_name(export, converted, fmt, owner.rsplit(":", 1)[-1]), out)
        if not ConvertedFormat.objects.transition(
            converted_format_id, Status.COMPLETED, only_if={"lease_owner": owner}, file=name, traceback=None
        ):
            raise LeaseLost(f"converted format {converted_format_id} was taken from {owner} before it completed")
    except LeaseLost:
        logger.warning("Conversion %s: lease lost, discarding its file", converted_format_id)
        discard_unreferenced(ConvertedFormat, name)
    except Exception as exc:
        logger.warning("Conversion %s to %s failed", converted_format_id, export_type, exc_info=True)
        reset_broken_connection()
        ConvertedFormat.objects.transition(
            converted_format_id,
            Status.FAILED,
            only_if={"lease_owner": owner},
            traceback=conversion_failure(export_type or "this format", exc),
        )
        discard_unreferenced(ConvertedFormat, name)
