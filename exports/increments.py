"""Incremental snapshots: the task index every snapshot leaves, and what a later snapshot learns from it.

Every completed snapshot stores beside its file a task index: one fixed-size record per task it read, in id
order, holding the task id and a digest of the task's JSON exactly as the snapshot encoded it. A snapshot made
`since_export` another walks that index in step with its own tasks (both are in id order, so nothing is held in
memory but one record) and writes only the tasks whose encoding differs from the index's, or that it lacks:
created or changed, the change being anywhere in the task, its annotations, predictions or drafts, since all of
them are in its JSON. It still records every task it read in its own index, so it can be the base of the next one.

Why an index and not a time watermark: a task changed by a transaction that began before the earlier snapshot
read it but committed after would carry a timestamp older than any watermark taken then, and be missed; the
index records what the earlier snapshot actually saw, so anything that differs from it, whenever it committed,
is found. It also needs nothing of the database (Label Studio's tables in attach mode record no deletions and do
not touch a task's `updated_at` for every change of its annotations). The price is that the later snapshot reads
the whole selection again, as a full one does; what it saves is in what it writes and what its consumer reads.

Deleted tasks: ids in the base's index that the project no longer has, found by walking the index against the
project's task ids (all of them, whatever the filters), also in id order. A task that still exists but no longer
matches the selection's filters is neither written nor listed as deleted.
"""

import hashlib
import struct
from collections.abc import Iterable, Iterator
from typing import BinaryIO

__all__ = ["INDEX_RECORD", "ChangedTasks", "IndexReader", "IndexWriter", "deleted_ids", "task_digest"]

# Task id (unsigned 64-bit, big-endian), then the first 8 bytes of the BLAKE2b digest of its encoded JSON.
INDEX_RECORD = struct.Struct(">Q8s")


def task_digest(encoded: bytes) -> bytes:
    return hashlib.blake2b(encoded, digest_size=8).digest()


class IndexWriter:
    """Writes index records to a binary file, buffered; `add` takes tasks in id order."""

    BUFFER_RECORDS = 4096

    def __init__(self, out: BinaryIO):
        self.out = out
        self.buffer = bytearray()
        self.count = 0

    def add(self, task_id: int, digest: bytes) -> None:
        self.buffer += INDEX_RECORD.pack(task_id, digest)
        self.count += 1
        if len(self.buffer) >= self.BUFFER_RECORDS * INDEX_RECORD.size:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.out.write(self.buffer)
            self.buffer.clear()


class IndexReader:
    """The records of a stored index, from its bytes in chunks of any size, in id order."""

    def __init__(self, chunks: Iterable[bytes]):
        self.chunks = chunks

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        pending = b""
        size = INDEX_RECORD.size
        for chunk in self.chunks:
            pending += chunk
            usable = len(pending) - len(pending) % size
            yield from INDEX_RECORD.iter_unpack(pending[:usable])
            pending = pending[usable:]
        if pending:
            raise ValueError("the task index ends inside a record")


class ChangedTasks:
    """Tells, task by task in id order, whether a task differs from a base index (or is missing from it)."""

    _END = (1 << 64, b"")

    def __init__(self, base: Iterable[tuple[int, bytes]]):
        self.base = iter(base)
        self.current = next(self.base, self._END)

    def changed(self, task_id: int, digest: bytes) -> bool:
        while self.current[0] < task_id:
            self.current = next(self.base, self._END)
        return self.current != (task_id, digest)


def deleted_ids(base: Iterable[tuple[int, bytes]], existing: Iterable[int]) -> Iterator[int]:
    """Ids of the base's records that `existing` (the project's task ids, ascending) no longer holds."""
    present = iter(existing)
    current = next(present, None)
    for task_id, _digest in base:
        while current is not None and current < task_id:
            current = next(present, None)
        if current != task_id:
            yield task_id
