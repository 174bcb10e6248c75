"""JSON: the snapshot's own tasks, written back as one JSON array."""

from typing import BinaryIO

import orjson

from exports.converters.registry import ConversionContext
from exports.converters.source import TaskSource


def convert_json(source: TaskSource, out: BinaryIO, context: ConversionContext) -> None:
    out.write(b"[")
    for index, task in enumerate(source.tasks()):
        out.write((b"\n" if index == 0 else b",\n") + orjson.dumps(task))
    out.write(b"\n]")
