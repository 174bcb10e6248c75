"""Reading a snapshot file back one task at a time.

The snapshot writer puts one task on each line of the JSON array, so a converter can walk a file of
any size holding a single task in memory. A file in another layout (one long line, indented JSON) is
still read, but whole.

`encoded_tasks()` gives each task as encoded JSON instead: from a snapshot file, the task's own line,
copied without being parsed (the line of a task is the object the writer encoded; no JSON encoder
writes a raw line break inside one).
"""

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

__all__ = ["ListSource", "SnapshotSource", "TaskSource"]


class TaskSource:
    """Tasks in Label Studio's export shape; each call of `tasks()` is a fresh pass from the first task."""

    def tasks(self) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def encoded_tasks(self) -> Iterator[bytes]:
        """The tasks of `tasks()`, each as one JSON object in UTF-8 on a single line (no line break)."""
        for task in self.tasks():
            yield orjson.dumps(task)


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

    def encoded_tasks(self) -> Iterator[bytes]:
        """Each task's line of the file as it is, without its comma, checked for shape only: a line must hold one
        object (`{...}`), every line but the last task's end with a comma, and the `]` line must follow the last
        one, so a file cut short raises ValueError instead of giving fewer tasks. The layout is told apart as
        `tasks()` tells it; a file in another layout is parsed whole and its tasks encoded again."""
        with self.path.open("rb") as file:
            if file.readline().strip() == b"[":
                line = file.readline()
                first = _task_line(line)
                if first is not _NOT_A_TASK_LINE:
                    if first is None:
                        self._check_end(file, line, number=2)
                    else:
                        yield from self._task_lines(file, line)
                    return
        yield from super().encoded_tasks()

    def _task_lines(self, file: BinaryIO, line: bytes) -> Iterator[bytes]:
        number = 2  # the first task's line
        while True:
            item = line.strip()
            more = item.endswith(b",")
            if more:
                item = item[:-1]
            if not (item.startswith(b"{") and item.endswith(b"}")):
                raise ValueError(f"{self.path.name}: line {number} is not one task")
            yield item
            line = file.readline()
            number += 1
            if not more:
                self._check_end(file, line, number=number)
                return
            if not line:
                raise ValueError(f"{self.path.name}: the file ends at line {number}, before its closing bracket")

    def _check_end(self, file: BinaryIO, line: bytes, *, number: int) -> None:
        """`line` (number `number`) must be the closing bracket, with nothing but white space after it."""
        if line.strip() != b"]" or any(rest.strip() for rest in iter(lambda: file.read(65536), b"")):
            raise ValueError(f"{self.path.name}: line {number} does not close the array after the last task")


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
