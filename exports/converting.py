"""Running a format's converter over a snapshot file, for conversion jobs and the easy export alike.

The converter reads the snapshot a task at a time and writes one output file; meanwhile its caller's lease is
renewed and its scratch files are touched, so neither the sweep of dead jobs nor that of abandoned scratch
files mistakes a long conversion for a dead one.
"""

import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings

from exports import storage
from exports.converters.images import image_fetcher
from exports.converters.registry import ConversionContext, Format
from exports.converters.source import SnapshotSource, TaskSource
from exports.exceptions import LeaseLost

__all__ = [
    "CONVERSION_SCRATCH_PREFIX",
    "KeepAlive",
    "KeepAliveSource",
    "conversion_scratch_dir",
    "convert_snapshot",
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
    scratch_dir: Path,
    download_resources: bool,
    keep_alive: KeepAlive,
) -> None:
    """Convert the snapshot file at `snapshot` to `fmt` into `out`; the converter's ConversionError passes through,
    and LeaseLost when the caller's lease was lost meanwhile (even if the converter swallowed it)."""
    context = ConversionContext(
        label_config=label_config,
        project_id=project_id,
        scratch_dir=scratch_dir,
        download_resources=download_resources,
        fetch_image=image_fetcher(settings) if download_resources else None,
        escape_formulas=bool(settings.EXPORT_CSV_ESCAPE_FORMULAS),
    )
    fmt.load()(KeepAliveSource(SnapshotSource(snapshot), keep_alive), out, context)
    if keep_alive.lost:
        raise LeaseLost("the conversion lost its lease")
    keep_alive(force=True)
