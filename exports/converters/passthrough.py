"""JSON: the snapshot's tasks written back as one JSON array, one task per line (the snapshot's own layout)."""

from typing import BinaryIO

import orjson

from exports.converters.registry import ConversionContext
from exports.converters.source import TaskSource
from exports.jsonarray import LINES, JsonArray


def convert_json(source: TaskSource, out: BinaryIO, context: ConversionContext) -> None:
    array = JsonArray(LINES)
    out.write(array.start())
    for task in source.tasks():
        out.write(array.add([orjson.dumps(task)]))
    out.write(array.end())
