"""Running a format's converter over a snapshot file, for conversion jobs and the easy export alike.

The converter reads the snapshot a task at a time and writes one output file; meanwhile its caller's lease is
renewed and its scratch files are touched, so neither the sweep of dead jobs nor that of abandoned scratch
files mistakes a long conversion for a dead one.

Conversions run inside requests (the easy export) take a slot of `inline_conversion_slot` first: background jobs
are bounded by their pool or workers, but requests are not, and each conversion may take a core and hundreds of
megabytes.
"""

import os
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings

from exports import storage
from exports.converters.images import image_fetcher
from exports.converters.registry import ConversionContext, Format
from exports.converters.source import SnapshotSource, TaskSource
from exports.exceptions import ConversionsBusy, LeaseLost

__all__ = [
    "CONVERSION_SCRATCH_PREFIX",
    "KeepAlive",
    "KeepAliveSource",
    "conversion_scratch_dir",
    "convert_snapshot",
    "inline_conversion_slot",
    "renew_interval",
]

CONVERSION_SCRATCH_PREFIX = "convert-"


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

    def encoded_tasks(self) -> Iterator[bytes]:
        self.keep_alive(force=True)
        for task in self.source.encoded_tasks():
            self.keep_alive()
            yield task


def renew_interval() -> float:
    """How often a conversion renews its lease: several times per lease, so one slow stretch never loses it."""
    return max(0.5, settings.EXPORT_LEASE_SECONDS / 6)


def convert_snapshot(
    fmt: Format,
    snapshot: Path,
    out: BinaryIO,
    *,
    label_config: dict,
    project_id: int,
    organization_project_ids: Collection[int],
    scratch_dir: Path,
    download_resources: bool,
    keep_alive: KeepAlive,
) -> None:
    """Convert the snapshot file at `snapshot` to `fmt` into `out`; the converter's ConversionError passes through,
    and LeaseLost when the caller's lease was lost meanwhile (even if the converter swallowed it).

    `organization_project_ids` are the projects of the project's organization: the only ones whose uploads are
    packed. The fetcher is given even without `download_resources`, because the *_WITH_IMAGES formats pack images
    regardless (ASR_MANIFEST and DOCLANG read it only when resources are downloaded).
    """
    context = ConversionContext(
        label_config=label_config,
        project_id=project_id,
        scratch_dir=scratch_dir,
        download_resources=download_resources,
        fetch_image=image_fetcher(settings, project_ids=organization_project_ids),
        escape_formulas=bool(settings.EXPORT_CSV_ESCAPE_FORMULAS),
        max_mask_pixels=int(settings.EXPORT_MAX_MASK_PIXELS),
    )
    fmt.load()(KeepAliveSource(SnapshotSource(snapshot), keep_alive), out, context)
    if keep_alive.lost:
        raise LeaseLost("the conversion lost its lease")
    keep_alive(force=True)


_gates: dict[int, threading.BoundedSemaphore] = {}
_gates_lock = threading.Lock()


def _inline_gate(size: int) -> threading.BoundedSemaphore:
    """This process's semaphore of `size` slots, made on first use. Keyed by size because the setting is read when
    a request needs it (never at import time), so a changed value (as in tests) gets a semaphore of its size."""
    with _gates_lock:
        gate = _gates.get(size)
        if gate is None:
            gate = _gates[size] = threading.BoundedSemaphore(size)
        return gate


@contextmanager
def inline_conversion_slot() -> Iterator[None]:
    """Hold one of the EXPORT_INLINE_CONVERSIONS slots that conversions inside requests share in this process.

    Waits at most EXPORT_INLINE_WAIT_SECONDS for a slot, then raises ConversionsBusy (503 with Retry-After), so a
    burst of requests queues briefly instead of running unbounded conversions side by side.
    """
    size = max(1, int(settings.EXPORT_INLINE_CONVERSIONS))
    wait = max(0.0, float(settings.EXPORT_INLINE_WAIT_SECONDS))
    gate = _inline_gate(size)
    if not gate.acquire(timeout=wait):
        raise ConversionsBusy(
            f"No slot for exports converted during a request ({size} per process) freed within {wait:g} s; try again "
            "shortly, or create a snapshot and convert it, which waits in the job queue.",
            wait=wait,
        )
    try:
        yield
    finally:
        gate.release()
