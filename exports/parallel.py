"""One snapshot written by several jobs at once: task-id ranges written as part files, then joined in order.

How it runs, with the in-process pool or with workers on other machines alike:

- `run_export` claims the snapshot as usual; when it holds at least EXPORT_PARALLEL_MIN_TASKS tasks and
  EXPORT_PARTS > 1, `split_export` cuts the (filtered) tasks into EXPORT_PARTS id ranges of about equal size and
  submits one `run_export_part` job per range through `exports.queue`, then returns.
- Each part writes its task lines (`SnapshotWriter.write_part`) to a scratch file and stores it in the exports
  storage under `parts/<export>-<run>/`, its counters in its name, so whoever joins can read every part
  wherever it ran. A `.started` marker tells a running (or dead) part from one still waiting in the queue.
- The part that finds every part stored takes the lease over (one conditional UPDATE: exactly one part wins),
  joins the parts in range order into `[`, the lines, `]` (the bytes one writer gives, so the same md5), stores
  the file and completes the snapshot. No job ever waits for another, so a pool smaller than the number of
  parts cannot deadlock.
- No part stays lost: running parts renew the snapshot's lease; a part that finishes while others are missing
  sets the lease to expire after EXPORT_LEASE_SECONDS when the missing ones have started (they renew it if alive)
  or after EXPORT_PART_WAIT_SECONDS when one is still queued. An expired lease is failed by the sweep
  (`jobs_recover`), with its reason. A part sent twice (a worker lost mid-part) writes the same file again.
"""

import hashlib
import logging
import time
from dataclasses import dataclass

from django.conf import settings

from exports import queue, storage
from exports.exceptions import LeaseLost
from exports.failures import describe
from exports.files import discard_unreferenced, export_file_name, index_file_name
from exports.increments import IndexWriter
from exports.jsonarray import LINES, JsonArray
from exports.leases import LeaseOwner, held_by_run, lease_deadline
from exports.models import Export, Status
from exports.snapshot import SnapshotWriter
from exports.sources import TaskRows

logger = logging.getLogger(__name__)

PARTS_FOLDER = "parts"
RENEW_SECONDS = 1.0


@dataclass(frozen=True)
class FinishedPart:
    index: int
    name: str
    tasks: int
    annotations: int
    predictions: int


def plan_ranges(rows: TaskRows, total: int, parts: int) -> list[tuple[int | None, int | None]]:
    """Task-id ranges (first, last; both included, None for open) cutting the selected tasks into about equal runs.

    Each boundary is the id at offset k·total/parts in id order (one indexed `LIMIT 1 OFFSET` query); the first
    range is open below and the last open above, so tasks added while the snapshot runs are written as one
    writer would write them.
    """
    parts = max(1, min(parts, total))
    starts = []
    for k in range(1, parts):
        start = rows.task_id_at(k * total // parts)
        if start is None:  # tasks deleted since they were counted
            break
        starts.append(start)
    ranges: list[tuple[int | None, int | None]] = []
    first = None
    for start in starts:
        ranges.append((first, start - 1))
        first = start
    ranges.append((first, None))
    return ranges


def parts_folder(export_id: int, run: str) -> str:
    return f"{PARTS_FOLDER}/{export_id}-{run}"


def part_name(index: int, counters: dict) -> str:
    return f"{index:05d}.{counters['task_number']}.{counters['annotation_number']}.{counters['prediction_number']}.part"


def part_index_name(index: int) -> str:
    """The part's task index (exports/increments.py), stored before the part itself."""
    return f"{index:05d}.index"


def started_marker(index: int) -> str:
    return f"{index:05d}.started"


def finished_parts(folder: str) -> dict[int, FinishedPart]:
    """The parts stored in `folder`, by index (their counters read from their names)."""
    found = {}
    for name in storage.list_files(folder):
        pieces = name.split(".")
        if len(pieces) == 5 and pieces[-1] == "part" and all(piece.isdigit() for piece in pieces[:4]):
            index, tasks, annotations, predictions = (int(piece) for piece in pieces[:4])
            found[index] = FinishedPart(index, name, tasks, annotations, predictions)
    return found


def started_parts(folder: str) -> set[int]:
    return {int(name.split(".")[0]) for name in storage.list_files(folder) if name.endswith(".started")}


def parts_holder(owner: LeaseOwner) -> LeaseOwner:
    """The lease owner while the parts run. When jobs run in the claiming process the parts share it, so it
    stays the owner (the sweep fails the snapshot at once if that process dies); with workers elsewhere an owner
    that names no process, so only the lease's expiry judges them."""
    if queue.jobs_share_this_process():
        return owner
    return LeaseOwner.for_parts(owner.run)


def _hold(export_id: int, owner: str, *, seconds: float | None = None, **fields) -> bool:
    """Extend the lease of `owner` by `seconds` (EXPORT_LEASE_SECONDS by default), setting `fields` too;
    False when `owner` no longer holds the running snapshot."""
    rows = Export.objects.filter(pk=export_id, status=Status.IN_PROGRESS, lease_owner=owner)
    return rows.update(lease_expires_at=lease_deadline(seconds), **fields) == 1


def split_export(export: Export, writer: SnapshotWriter, owner: LeaseOwner) -> bool:
    """Start the parts of a large snapshot claimed by `owner`; False (nothing done) when it is written whole."""
    if settings.EXPORT_PARTS < 2:
        return False
    total = writer.count()
    if total < max(settings.EXPORT_PARALLEL_MIN_TASKS, 2):
        return False
    ranges = plan_ranges(writer.rows, total, settings.EXPORT_PARTS)
    if len(ranges) < 2:
        return False
    holder = str(parts_holder(owner))
    counters = {"done": 0, "total": total, "parts": len(ranges)}
    seconds = settings.EXPORT_PART_WAIT_SECONDS
    if not _hold(export.pk, str(owner), seconds=seconds, lease_owner=holder, counters=counters):
        raise LeaseLost(f"export {export.pk} is no longer held by {owner}")
    run = owner.run
    logger.info("Export %s: %s tasks written as %s parts", export.pk, total, len(ranges))
    try:
        for index, (first_id, last_id) in enumerate(ranges):
            part = {
                "holder": holder,
                "run": run,
                "index": index,
                "count": len(ranges),
                "first_id": first_id,
                "last_id": last_id,
                "total": total,
            }
            queue.submit(run_export_part, export.pk, part)
    except Exception as exc:
        Export.objects.transition(export.pk, Status.FAILED, only_if={"lease_owner": holder}, reason=describe(exc))
        raise
    return True


def run_export_part(export_id: int, part: dict) -> None:
    """Write one task-id range of a split snapshot; the part that completes the set joins them."""
    holder = part["holder"]
    folder = parts_folder(export_id, part["run"])
    if not _hold(export_id, holder):
        return  # the snapshot failed, completed or was deleted meanwhile
    current = holder
    try:
        storage.put_bytes(f"{folder}/{started_marker(part['index'])}", b"")
        export = Export.objects.select_related("project").filter(pk=export_id).first()
        if export is None:
            raise LeaseLost(f"export {export_id} was deleted")
        writer = SnapshotWriter.for_export(export, first_id=part["first_id"], last_id=part["last_id"])

        def progress(done: int) -> None:
            if not _hold(export_id, holder):
                raise LeaseLost(f"export {export_id} is no longer held by {holder}")

        with storage.scratch_file() as scratch, storage.scratch_file() as index:
            result = writer.write_part(scratch, progress=progress, index=IndexWriter(index))
            storage.store(
                f"{folder}/{part_index_name(part['index'])}", index, keep_alive=lambda: _hold(export_id, holder)
            )
            name = f"{folder}/{part_name(part['index'], result.counters)}"
            storage.store(name, scratch, keep_alive=lambda: _hold(export_id, holder))
        finished = finished_parts(folder)
        if len(finished) < part["count"]:
            _wait_for_others(export_id, holder, folder, part, finished)
            return
        joiner = str(LeaseOwner.new(within=part["run"]))  # still names the run, so the sweep keeps the parts
        if not _hold(export_id, holder, lease_owner=joiner):
            return  # another part is joining (or the snapshot is gone)
        current = joiner
        _join(export, joiner, folder, finished, part["count"])
    except LeaseLost:
        logger.warning("Export %s: part %s lost the lease", export_id, part["index"])
        _discard(export_id, folder, part["run"])
    except Exception as exc:
        logger.exception("Export %s: part %s failed", export_id, part["index"])
        reason = f"Part {part['index'] + 1} of {part['count']}: {describe(exc)}"
        Export.objects.transition(export_id, Status.FAILED, only_if={"lease_owner": current}, reason=reason)
        _discard(export_id, folder, part["run"])


def _runs(export_id: int, run: str) -> bool:
    """Whether the snapshot is still being written by this run (its parts or the part joining them)."""
    return Export.objects.filter(held_by_run(run), pk=export_id, status=Status.IN_PROGRESS).exists()


def _discard(export_id: int, folder: str, run: str) -> None:
    """Remove the run's parts once the snapshot no longer runs under it. A part that only lost the race to join
    (the lease went to the joiner) leaves them: the joiner reads them, then removes them."""
    if not _runs(export_id, run):
        storage.remove_folder(folder)


def _wait_for_others(export_id: int, holder: str, folder: str, part: dict, finished: dict) -> None:
    """Leave the lease to the missing parts: a started one renews it or lets it expire soon; a queued one gets
    EXPORT_PART_WAIT_SECONDS to start. Also publishes how many tasks the finished parts hold."""
    missing = set(range(part["count"])) - set(finished)
    queued = bool(missing - started_parts(folder))
    seconds = settings.EXPORT_PART_WAIT_SECONDS if queued else settings.EXPORT_LEASE_SECONDS
    done = sum(item.tasks for item in finished.values())
    counters = {"done": done, "total": part["total"], "parts": part["count"]}
    if not _hold(export_id, holder, seconds=seconds, counters=counters):
        raise LeaseLost(f"export {export_id} is no longer held by {holder}")


def _join(export: Export, joiner: str, folder: str, finished: dict[int, FinishedPart], count: int) -> None:
    """Concatenate the parts in order into the snapshot file (as items of the snapshot's JSON array, so the
    bytes one writer gives), store it and complete the snapshot."""
    digest = hashlib.md5(usedforsecurity=False)
    last_renewal = time.monotonic()
    name = ""
    with storage.scratch_file() as out:

        def emit(chunk: bytes) -> None:
            nonlocal last_renewal
            out.write(chunk)
            digest.update(chunk)
            if time.monotonic() - last_renewal >= RENEW_SECONDS:
                if not _hold(export.pk, joiner):
                    raise LeaseLost(f"export {export.pk} is no longer held by {joiner}")
                last_renewal = time.monotonic()

        array = JsonArray(LINES)
        emit(array.start())
        for item in (finished[index] for index in range(count)):
            if item.tasks:
                emit(array.prefix())
                for chunk in storage.read_chunks(f"{folder}/{item.name}"):
                    emit(chunk)
        emit(array.end())
        md5 = digest.hexdigest()
        name = export_file_name(export, md5)
        with storage.scratch_file() as index:  # the parts' indexes in order: the index one writer would give
            for number in range(count):
                for chunk in storage.read_chunks(f"{folder}/{part_index_name(number)}"):
                    index.write(chunk)
            storage.store(index_file_name(name), index, keep_alive=lambda: _hold(export.pk, joiner))
        name = storage.store(name, out, keep_alive=lambda: _hold(export.pk, joiner))
    tasks = sum(item.tasks for item in finished.values())
    counters = {
        "task_number": tasks,
        "annotation_number": sum(item.annotations for item in finished.values()),
        "prediction_number": sum(item.predictions for item in finished.values()),
        "done": tasks,
        "total": tasks,
    }
    completed = Export.objects.transition(
        export.pk, Status.COMPLETED, only_if={"lease_owner": joiner}, file=name, md5=md5, counters=counters, reason=""
    )
    if not completed:
        discard_unreferenced(Export, name)
        raise LeaseLost(f"export {export.pk} was taken from {joiner} before it completed")
    storage.remove_folder(folder)


def remove_abandoned_parts() -> int:
    """Delete the part folders of snapshots no longer running (failed by the sweep, deleted, or a former run);
    for `jobs_recover`. Returns how many folders were removed."""
    folders = storage.list_folders(PARTS_FOLDER)
    if not folders:
        return 0
    # Read after listing: a run whose folder is listed was already in progress (as `_runs`, one query for all).
    owners = dict(Export.objects.filter(status=Status.IN_PROGRESS).values_list("pk", "lease_owner"))
    removed = 0
    for folder in folders:
        export_id, _, run = folder.partition("-")
        if not export_id.isdigit():
            continue
        owner = LeaseOwner.parse(owners.get(int(export_id), ""))
        if run and owner is not None and owner.split_run == run:
            continue
        storage.remove_folder(f"{PARTS_FOLDER}/{folder}")
        removed += 1
    return removed
