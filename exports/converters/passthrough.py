"""JSON and JSONL: the snapshot's tasks written back unchanged, as one JSON array or as JSON Lines."""

from typing import BinaryIO

import orjson

from exports.converters.registry import ConversionContext
from exports.converters.source import TaskSource
from exports.jsonarray import JSON_LINES, LINES, JsonArray


def convert_json(source: TaskSource, out: BinaryIO, context: ConversionContext) -> None:
    """One JSON array, one task per line (the snapshot's own layout)."""
    array = JsonArray(LINES)
    out.write(array.start())
    for task in source.tasks():
        out.write(array.add([orjson.dumps(task)]))
    out.write(array.end())


def convert_jsonl(source: TaskSource, out: BinaryIO, context: ConversionContext) -> None:
    """JSON Lines: each task's encoded object on a line of its own. From a snapshot file the lines are copied
    without being parsed, so the objects are byte for byte those of the JSON snapshot."""
    lines = JsonArray(JSON_LINES)
    out.write(lines.start())
    for task in source.encoded_tasks():
        out.write(lines.prefix())
        out.write(task)
    out.write(lines.end())
