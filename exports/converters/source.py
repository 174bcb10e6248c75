"""Reading a snapshot file back one task at a time.

The snapshot writer puts one task on each line of the JSON array, so a converter can walk a file of
any size holding a single task in memory. A file in another layout (one long line, indented JSON) is
still read, but whole.
"""

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

__all__ = ["ListSource", "SnapshotSource", "TaskSource"]


class TaskSource:
    """Tasks in Label Studio's export shape; each call of `tasks()` is a fresh pass from the first task."""

    def tasks(self) -> Iterator[dict[str, Any]]:
        raise NotImplementedError


class SnapshotSource(TaskSource):
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def tasks(self) -> Iterator[dict[str, Any]]:
        with self.path.open("rb") as file:
            if file.readline().strip() == b"[":
                first = _task_line(file.readline())
                if first is not _NOT_A_TASK_LINE:
                    if first is not None:
                        yield first
                    for line in file:
                        task = _task_line(line)
                        if task is _NOT_A_TASK_LINE:
                            raise ValueError(f"{self.path.name}: a line is not one task")
                        if task is not None:
                            yield task
                    return
            file.seek(0)
            yield from orjson.loads(file.read())


_NOT_A_TASK_LINE = object()


def _task_line(line: bytes) -> Any:
    """The task on one line of the array (None for the closing bracket), or `_NOT_A_TASK_LINE`."""
    line = line.strip()
    if line.endswith(b","):
        line = line[:-1]
    if line in (b"]", b""):
        return None
    if not line.startswith(b"{"):
        return _NOT_A_TASK_LINE
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return _NOT_A_TASK_LINE


class ListSource(TaskSource):
    """Tasks already in memory (tests, small inputs)."""

    def __init__(self, tasks: Iterable[dict[str, Any]]):
        self._tasks = list(tasks)

    def tasks(self) -> Iterator[dict[str, Any]]:
        yield from self._tasks
