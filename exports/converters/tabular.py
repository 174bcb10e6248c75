"""CSV and TSV: one row per exported annotation, a column for each task data field and each control.

The rows are those of label-studio-sdk 2.1.2's `CSV`/`TSV` converter, which Label Studio serves for these
formats, and the file is written the same way:

- the columns are sorted by name and always include `annotator`, `annotation_id`, `created_at`,
  `updated_at` and `lead_time`; `id` is the task id;
- one row per annotation that is not cancelled, newest first; a task whose annotation list is empty
  gives one row of its data; a task whose annotations are all cancelled gives none;
- a control's value is the bare text of a single choice or text, else JSON; a data field holding an
  object or a list is JSON; JSON in a cell has no spaces, keeps non-ASCII characters and writes `/`
  as `\\/` (the SDK's `ujson` output);
- a data field with the same name as a control that has results anywhere in the export is renamed
  `_data_<name>` so the control keeps the bare name; a chat control also gets `<name>_transcript`,
  its messages as `role: content` lines;
- every cell that is not a number is quoted, the lines end in CRLF and the text is UTF-8;
- TSV is the same table with tabs (Label Studio names that file `.csv`; the registry says `.tsv`).

With `context.escape_formulas` (settings.EXPORT_CSV_ESCAPE_FORMULAS, off by default as in Label Studio) a text
cell, header included, that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, so a
spreadsheet shows it as text instead of running it as a formula (OWASP's CSV injection advice). Numbers stay
numbers: they are written bare, cannot hold a formula, and `'-2` would turn them into text.

Unlike the SDK, a task without an `id` or with data that is not an object still gives its rows
(without those columns) rather than stopping the whole conversion. The snapshot is read once (the SDK
reads it three times): the rows go to a scratch file while the columns are gathered, then the header
and the rows are written out.
"""

import csv
import io
import uuid
from collections.abc import Mapping
from typing import Any, BinaryIO

import orjson

from exports.converters.json_min import NO_ANNOTATION, JsonMinConverter, _prettify, annotator
from exports.converters.registry import ConversionContext
from exports.converters.source import TaskSource

__all__ = ["convert_csv", "convert_tsv", "escape_formula"]

_ALWAYS = ("annotator", "annotation_id", "created_at", "updated_at", "lead_time")
_CHAT_TYPES = frozenset({"Chat", "chatmessage"})
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def convert_csv(source: TaskSource, out: BinaryIO, context: ConversionContext) -> None:
    write_table(source, out, context, delimiter=",")


def convert_tsv(source: TaskSource, out: BinaryIO, context: ConversionContext) -> None:
    write_table(source, out, context, delimiter="\t")


def write_table(source: TaskSource, out: BinaryIO, context: ConversionContext, *, delimiter: str) -> None:
    """Write the table in two steps: the rows go to a scratch file while the tasks are read once (the
    columns are known only at the end), then the header and the rows go to `out`."""
    converter = JsonMinConverter(context.label_config)
    scratch = context.scratch_dir / f"rows-{uuid.uuid4().hex}.jsonl"
    try:
        with scratch.open("wb") as rows:
            columns = _write_rows(source, converter, rows)
        header = sorted(columns.header())
        blanks = [""] * len(header)  # the cell of a column a row has no value for
        renamed = {key: f"_data_{key}" for key in columns.renamed()}
        text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)
        try:
            writer = csv.writer(text, delimiter=delimiter, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\r\n")
            escape = context.escape_formulas
            writer.writerow(map(escape_formula, header) if escape else header)
            with scratch.open("rb") as rows:
                for line in rows:
                    row, data, after = orjson.loads(line)
                    if renamed:
                        data = {renamed.get(key, key): value for key, value in data.items()}
                    row.update(data)
                    row.update(after)
                    cells = map(row.get, header, blanks)
                    writer.writerow(map(escape_formula, cells) if escape else cells)
            text.flush()
        finally:
            text.detach()  # leaves `out` open for the caller
    finally:
        scratch.unlink(missing_ok=True)


def escape_formula(cell: Any) -> Any:
    """`cell` with a leading `'` when it is text a spreadsheet could take for a formula; any other cell as it is."""
    return "'" + cell if isinstance(cell, str) and cell.startswith(_FORMULA_STARTS) else cell


class _Columns:
    """What the header is made of, gathered while the rows are written."""

    def __init__(self) -> None:
        self.data_keys: set[str] = set()
        self.controls: set[str] = set()
        self.chats: set[str] = set()
        self.extra: set[str] = set(_ALWAYS)

    def renamed(self) -> set[str]:
        """Data fields named like a control with results: they get a `_data_` prefix."""
        return self.data_keys & self.controls

    def header(self) -> set[str]:
        renamed = self.renamed()
        columns = {f"_data_{key}" if key in renamed else key for key in self.data_keys}
        columns.update(self.controls, (f"{name}_transcript" for name in self.chats), self.extra)
        return columns


def _data(task: Mapping[str, Any]) -> Mapping[str, Any]:
    data = task.get("data")
    return data if isinstance(data, dict | Mapping) else {}


def _write_rows(source: TaskSource, converter: JsonMinConverter, rows: BinaryIO) -> _Columns:
    """Write each row as a JSON line `[cells before the data, data cells, cells after the data]` (so a
    renamed data field can still be told apart) and gather the columns."""
    columns = _Columns()
    for task in source.tasks():
        data = _data(task)
        data_cells: dict[str, Any] | None = None
        task_id = task.get("id")
        for annotation, outputs in converter.annotation_outputs(task):
            if data_cells is None:  # a task without rows adds no columns
                columns.data_keys.update(data)
                data_cells = {key: _cell(value) for key, value in data.items()}
            row: dict[str, Any] = {}
            if task_id is not None:
                row["id"] = task_id
                columns.extra.add("id")
            for name, values in outputs.items():
                columns.controls.add(name)
                pretty = _prettify(values)
                row[name] = pretty if isinstance(pretty, str) else _json(pretty)
                if any(kind in _CHAT_TYPES for kind, _value in values):
                    columns.chats.add(name)
                    row[f"{name}_transcript"] = _transcript(pretty)
            after = {
                "annotator": annotator(annotation.get("completed_by", {})),
                "annotation_id": annotation.get("id"),
                "created_at": annotation.get("created_at"),
                "updated_at": annotation.get("updated_at"),
                "lead_time": annotation.get("lead_time"),
            }
            if annotation is not NO_ANNOTATION:
                if "agreement" in task:
                    after["agreement"] = task["agreement"]
                    columns.extra.add("agreement")
                if annotation.get("history"):
                    after["history"] = _json(annotation["history"])
                    columns.extra.add("history")
            rows.write(orjson.dumps([row, data_cells, after]))
            rows.write(b"\n")
    return columns


def _cell(value: Any) -> Any:
    """A data field's cell: objects and lists as JSON, anything else as it is."""
    return _json(value) if isinstance(value, dict | list) else value


def _json(value: Any) -> str:
    """Compact JSON with non-ASCII kept and `/` escaped (a `/` occurs only inside JSON strings)."""
    return orjson.dumps(value).replace(b"/", b"\\/").decode()


def _transcript(messages: Any) -> str:
    """Chat messages as `role: content` lines (`role:` alone without content, the content alone without role)."""
    lines = []
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, Mapping):
            continue
        role, content = str(message.get("role", "")), str(message.get("content", ""))
        if not role:
            lines.append(content)
        else:
            lines.append(f"{role}: {content}" if content else f"{role}:")
    return "\n".join(lines)
