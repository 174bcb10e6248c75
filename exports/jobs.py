"""Background jobs. Each takes one id, runs at most once per claim, and never leaves its row in progress."""

import logging
from collections.abc import Iterable
from contextlib import ExitStack
from itertools import islice
from pathlib import Path
from typing import BinaryIO

from django.db import connection

from exports import converting, parallel, storage
from exports.converters.availability import label_config_of
from exports.converters.registry import ConversionError, get_format
from exports.exceptions import IncrementBaseUnusable, LeaseLost
from exports.failures import describe
from exports.files import (
    conversion_file_name,
    deleted_ids_file_name,
    discard_unreferenced,
    export_file_name,
    index_file_name,
)
from exports.increments import ChangedTasks, IndexReader, IndexWriter, deleted_ids
from exports.jsonarray import COMPACT, JsonArray
from exports.leases import LeaseOwner, lease_deadline
from exports.models import ConvertedFormat, Export, Status
from exports.snapshot import SnapshotWriter
from projects.selectors import organization_project_ids

__all__ = ["run_conversion", "run_export"]

logger = logging.getLogger(__name__)


def reset_broken_connection() -> None:
    """After a database error (e.g. the server restarted) the connection is unusable; drop it so the
    failure can still be recorded on a fresh one. Inside a transaction (the job run inline) nothing is dropped."""
    if connection.connection is not None and not connection.in_atomic_block and not connection.is_usable():
        connection.close()


def run_export(export_id: int) -> None:
    """Build the snapshot file of one export. A second run of the same export does nothing."""
    claim = LeaseOwner.new()
    owner = str(claim)
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
        # A large snapshot is split: its parts write, join and complete it (exports/parallel.py). An incremental
        # one never is: it walks its base's task index in one pass.
        if export.since_export is None and parallel.split_export(export, writer, claim):
            return
        with ExitStack() as stack:
            scratch, index = stack.enter_context(storage.scratch_file()), stack.enter_context(storage.scratch_file())
            progress(0, 0)
            if export.since_export is None:
                result, deleted = writer.write(scratch, progress=progress, index=IndexWriter(index)), None
            else:
                base = incremental_base_index(export)
                changes = ChangedTasks(IndexReader(storage.read_chunks(base)))
                result = writer.write(scratch, progress=progress, index=IndexWriter(index), since=changes)
                deleted = stack.enter_context(storage.scratch_file())
                gone = deleted_ids(IndexReader(storage.read_chunks(base)), writer.project_task_ids())
                result.counters["deleted_task_ids_count"] = write_ids(deleted, gone)
            name = export_file_name(export, result.md5)
            keep_alive = lambda: Export.objects.renew_lease(export_id, owner)  # noqa: E731
            storage.store(index_file_name(name), index, keep_alive=keep_alive)
            if deleted is not None:
                storage.store(deleted_ids_file_name(name), deleted, keep_alive=keep_alive)
            name = storage.store(name, scratch, keep_alive=keep_alive)
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


def incremental_base_index(export: Export) -> str:
    """The stored task index of an incremental snapshot's base; IncrementBaseUnusable when it is gone."""
    assert export.since_export is not None  # only incremental snapshots have a base
    base = (
        Export.objects.filter(pk=export.since_export, project_id=export.project_id, status=Status.COMPLETED)
        .only("file")
        .first()
    )
    if base is None or not base.file:
        raise IncrementBaseUnusable(f"snapshot {export.since_export} (since_export) was deleted or is not completed")
    name = index_file_name(base.file)
    try:
        storage.size(name)
    except FileNotFoundError as exc:
        raise IncrementBaseUnusable(
            f"snapshot {export.since_export} (since_export) has no task index; make a full snapshot first"
        ) from exc
    return name


def write_ids(out: BinaryIO, ids: Iterable[int]) -> int:
    """`ids` as one compact JSON array of numbers into `out`; returns how many."""
    array, count = JsonArray(COMPACT), 0
    out.write(array.start())
    ids = iter(ids)
    while batch := [str(task_id).encode() for task_id in islice(ids, 10_000)]:
        out.write(array.add(batch))
        count += len(batch)
    out.write(array.end())
    return count


def run_conversion(converted_format_id: int) -> None:
    """Convert a completed snapshot's file into one format. A second run of the same conversion does nothing."""
    claim = LeaseOwner.new()
    owner = str(claim)
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
            scratch_dir = stack.enter_context(converting.conversion_scratch_dir())
            out = stack.enter_context(storage.scratch_file())
            scratch = [scratch_dir, Path(out.name)]
            if snapshot_path.parent == storage.scratch_folder():  # a downloaded copy, not the stored file itself
                scratch.append(snapshot_path)
            keep_alive = converting.KeepAlive(
                lambda: ConvertedFormat.objects.renew_lease(converted_format_id, owner),
                interval=converting.renew_interval(),
                paths=scratch,
            )
            converting.convert_snapshot(
                fmt,
                snapshot_path,
                out,
                label_config=label_config_of(export.project),
                project_id=export.project_id,
                organization_project_ids=organization_project_ids(project_id=export.project_id),
                scratch_dir=scratch_dir,
                download_resources=converted.download_resources,
                keep_alive=keep_alive,
            )
            name = storage.store(conversion_file_name(export, converted, fmt, claim.run), out)
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


def conversion_failure(export_type: str, exc: BaseException) -> str:
    """The `traceback` a failed conversion shows: the converter's own reason, or what went wrong (no stack)."""
    if isinstance(exc, ConversionError):
        return str(exc).strip() or f"Conversion to {export_type} failed."
    return f"Conversion to {export_type} failed: {describe(exc)}"
