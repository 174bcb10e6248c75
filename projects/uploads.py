"""The request side of task import: the body parsers, the multipart size limit, and readers that turn a request
body or an uploaded file into a task source. Nothing here writes; `projects.imports` checks and writes what it reads.

Every reader is incremental: it takes the bytes a piece at a time (CHUNK_BYTES) and yields one task after another,
so a body or file of any size is never held, nor parsed, as a whole. JSON arrays go through the standard library's
C decoder one element at a time over a sliding window of decoded text (`_json_items`); JSON Lines one line at a
time with orjson; CSV and TSV through `csv.reader` over the decoded lines.
"""

import codecs
import csv
import gc
import hashlib
import io
import itertools
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from projects.exceptions import ImportRejected
from projects.imports import TaskSource

FILE_FORMATS = (".json", ".jsonl", ".csv", ".tsv")
TABLE_FORMATS = (".csv", ".tsv")
BOM = b"\xef\xbb\xbf"
# File systems allow 255 bytes per name and the stored name gets a `<8 hex>-` prefix (`projects.models.upload_path`).
MAX_STORED_NAME_BYTES = 200
# Bytes read from a body or file at a time. The JSON reader holds about two pieces of decoded text, more only
# while one task is larger than that.
CHUNK_BYTES = 1024 * 1024


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class Unreadable(Exception):
    """What makes a source unreadable, and the line or row it is on when the source counts them."""

    def __init__(self, problem: str, number: int | None = None):
        super().__init__(problem)
        self.problem = problem
        self.number = number


# Reading the request ------------------------------------------------------------------------------------------


class ImportBodyParser(BaseParser):
    """Hands the view a `TaskSource` that reads the request body as the import goes, instead of parsed data.

    Not a subclass of DRF's JSONParser: DRF reads a JSONParser's whole body into memory before parsing it. The
    body is held to DATA_UPLOAD_MAX_MEMORY_SIZE (413), checked against its Content-Length here and counted again
    while it is read.
    """

    label = "JSON"  # names the format in "<label> parse error - ..."
    unit = "item"  # what the numbers in task errors count

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        meta = parser_context["request"].META if parser_context and "request" in parser_context else {}
        try:
            length = int(meta.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if limit is not None and length > limit:
            raise RequestDataTooBig(f"Request body is larger than the limit of {limit} bytes.")
        return TaskSource(self._items(stream, limit), unit=self.unit)

    def read(self, chunks: Iterator[bytes]) -> Iterator[tuple[int, Any]]:
        return _json_items(chunks)

    def _items(self, stream: Readable, limit: int | None) -> Iterator[tuple[int, Any]]:
        try:
            yield from self.read(byte_chunks(stream, limit=limit))
        except Unreadable as exc:
            where = "" if exc.number is None else f"{self.unit} {exc.number}: "
            raise ParseError(f"{self.label} parse error - {where}{exc.problem}") from None


class ImportJSONParser(ImportBodyParser):
    """A JSON array of tasks, or one task object."""

    media_type = "application/json"


class ImportJSONLinesParser(ImportBodyParser):
    """JSON Lines: one task object per line; blank lines are skipped."""

    media_type = "application/x-ndjson"
    unit = "line"

    def read(self, chunks: Iterator[bytes]) -> Iterator[tuple[int, Any]]:
        return _json_line_items(chunks)


class ImportJSONLParser(ImportJSONLinesParser):
    """JSON Lines under the other media type clients send them with."""

    media_type = "application/jsonl"


class ImportCSVParser(ImportBodyParser):
    """A table with a header row; each later row is one task's `data`."""

    media_type = "text/csv"
    label = "CSV"
    unit = "row"

    def read(self, chunks: Iterator[bytes]) -> Iterator[tuple[int, Any]]:
        return _table_items(chunks, delimiter=",")


class ImportTSVParser(ImportCSVParser):
    media_type = "text/tab-separated-values"
    label = "TSV"

    def read(self, chunks: Iterator[bytes]) -> Iterator[tuple[int, Any]]:
        return _table_items(chunks, delimiter="\t")


IMPORT_BODY_PARSERS = [ImportJSONParser, ImportJSONLinesParser, ImportJSONLParser, ImportCSVParser, ImportTSVParser]


class UploadLimitHandler(FileUploadHandler):
    """Holds multipart bodies to DATA_UPLOAD_MAX_MEMORY_SIZE. Django applies that limit to form fields only, so
    without this a file of any size would be spooled to disk."""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        self.limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        self.received = 0
        if self.limit is not None and content_length > self.limit:
            raise RequestDataTooBig(self.message())

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.limit is not None and self.received > self.limit:
            raise RequestDataTooBig(self.message())
        return raw_data

    def file_complete(self, file_size):
        return None  # the next handler (memory or temporary file) keeps the data

    def message(self) -> str:
        return f"Request body is larger than the limit of {self.limit} bytes."


@contextmanager
def paused_gc() -> Iterator[None]:
    """Cyclic garbage collection off while an import builds millions of short-lived containers. They hold no
    cycles (reference counting frees them), but each allocation burst would trigger a collection that scans
    them all, which costs about as much as the parsing itself."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def limit_upload_size(request) -> None:
    """Install `UploadLimitHandler` first on a Django request whose body has not been read yet."""
    request.upload_handlers.insert(0, UploadLimitHandler(request))


# Reading files ------------------------------------------------------------------------------------------------


def file_format(name: str) -> str:
    return os.path.splitext(name)[1].lower()


def check_file_format(name: str) -> None:
    if file_format(name) not in FILE_FORMATS:
        raise ImportRejected(
            f"{name}: unsupported file type {file_format(name) or '(no extension)'}; "
            f"tasks are read from {', '.join(FILE_FORMATS)} files"
        )


def read_file(name: str, file: Any) -> TaskSource:
    """The tasks of one uploaded file (a JSON list or object, JSON lines, or a CSV/TSV table), read from the file's
    start when the source is first iterated. `file` needs `seek` and `read`."""
    check_file_format(name)
    kind = file_format(name)
    if kind == ".json":
        return TaskSource(_file_items(name, file, _json_items, unit="item"), file_name=name)
    if kind == ".jsonl":
        return TaskSource(_file_items(name, file, _json_line_items, unit="line"), file_name=name, unit="line")
    delimiter = "\t" if kind == ".tsv" else ","
    read = lambda chunks: _table_items(chunks, delimiter=delimiter)  # noqa: E731
    return TaskSource(_file_items(name, file, read, unit="row"), file_name=name, unit="row")


def _file_items(
    name: str, file: Any, read: Callable[[Iterator[bytes]], Iterator[tuple[int, Any]]], *, unit: str
) -> Iterator[tuple[int, Any]]:
    file.seek(0)
    try:
        yield from read(byte_chunks(file))
    except Unreadable as exc:
        where = name if exc.number is None else f"{name} {unit} {exc.number}"
        raise ImportRejected(f"{where}: {exc.problem}") from None


def byte_chunks(stream: Readable, *, limit: int | None = None) -> Iterator[bytes]:
    """The bytes of `stream`, CHUNK_BYTES at a time, without a leading UTF-8 byte order mark. More than `limit`
    bytes in all raise RequestDataTooBig."""
    received = 0
    head = b""  # the first bytes, until there are enough to tell whether they are a byte order mark
    checked = False
    while chunk := stream.read(CHUNK_BYTES):
        received += len(chunk)
        if limit is not None and received > limit:
            raise RequestDataTooBig(f"Request body is larger than the limit of {limit} bytes.")
        if not checked:
            head += chunk
            if len(head) < len(BOM):
                continue
            chunk, head, checked = head.removeprefix(BOM), b"", True
        if chunk:
            yield chunk
    if head:
        yield head.removeprefix(BOM)


class _Text:
    """The UTF-8 text of a byte stream, decoded into a window that moves along it, with what it takes to name a
    position in the whole text (line, column, character)."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._fed = 0  # bytes given to the decoder so far
        self.window = ""
        self.eof = False
        self._start = 0  # characters before the window
        self._lines = 0  # line breaks before the window
        self._line_start = 0  # the character where the line holding the window's first character begins

    def extend(self, keep: int, at_least: int = CHUNK_BYTES) -> None:
        """Drop the window before `keep`, then add the text of at least `at_least` more bytes (fewer at the end)."""
        newlines = self.window.count("\n", 0, keep)
        if newlines:
            self._lines += newlines
            self._line_start = self._start + self.window.rfind("\n", 0, keep) + 1
        self._start += keep
        parts = [self.window[keep:]]
        added = 0
        while added < at_least and not self.eof:
            chunk = next(self._chunks, None)
            if chunk is None:
                self.eof = True
                parts.append(self._decode(b"", final=True))
            else:
                added += len(chunk)
                parts.append(self._decode(chunk))
        self.window = "".join(parts)

    def _decode(self, data: bytes, final: bool = False) -> str:
        held = len(self._decoder.getstate()[0])  # the start of a character cut by the previous piece
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            position = self._fed - held + exc.start
            raise Unreadable(f"not UTF-8 text (invalid byte at position {position})") from None
        self._fed += len(data)
        return text

    def position(self, index: int) -> tuple[int, int, int]:
        """Line and column (both from 1) and character (from 0) of `window[index]` in the whole text."""
        line = self._lines + self.window.count("\n", 0, index) + 1
        newline = self.window.rfind("\n", 0, index)
        column = index - newline if newline >= 0 else self._start + index - self._line_start + 1
        return line, column, self._start + index

    def invalid(self, index: int, message: str) -> Unreadable:
        line, column, _ = self.position(index)
        return Unreadable(f"invalid JSON at line {line} column {column}: {message}")


def _decoded(chunks: Iterator[bytes]) -> Iterator[str]:
    text = _Text(chunks)
    while not text.eof:
        text.extend(len(text.window))
        if text.window:
            yield text.window


# JSON ---------------------------------------------------------------------------------------------------------

_WHITESPACE = re.compile(r"[ \t\n\r]*")


class _NotJSON(ValueError):
    """A number Python's decoder reads and JSON (as orjson) does not: NaN, Infinity, or one too large for a float
    (it would be stored as null)."""

    def __init__(self, text: str, problem: str):
        super().__init__(problem)
        self.text = text


def _refuse_constant(name: str) -> Any:
    raise _NotJSON(name, f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if value - value != 0:  # infinite
        raise _NotJSON(text, f"number {text} is too large")
    return value


# `parse_float` costs a Python call per float (about a fifth of the decoding time of the benchmark's tasks, which
# hold mostly floats); any search of the text for long exponents costs more than the decoding itself.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def _json_items(chunks: Iterator[bytes]) -> Iterator[tuple[int, Any]]:
    """The elements of a JSON array, numbered from 0, decoded one at a time; any other JSON value is element 0.

    The standard library's C decoder reads each element from a window of decoded text (`raw_decode` tells where
    the element ends); an element that runs past the window is decoded again once the window holds more. This
    reads within about a third of orjson's time for a whole body, more than twice as fast as ijson's yajl2_c
    backend (bench/README.md, "Import"), and errors carry their line and column.
    """
    text = _Text(chunks)
    pos = _skip(text, 0)
    if pos == len(text.window):
        raise text.invalid(pos, "Expecting value")
    if text.window[pos] != "[":
        value, pos = _value(text, pos)
        _expect_end(text, pos)
        yield 0, value
        return
    pos = _skip(text, pos + 1)
    if text.window.startswith("]", pos):
        _expect_end(text, pos + 1)
        return
    index = 0
    while True:
        value, pos = _value(text, pos)
        yield index, value
        index += 1
        pos = _skip(text, pos)
        mark = text.window[pos : pos + 1]
        if mark == ",":
            pos = _skip(text, pos + 1)
        elif mark == "]":
            _expect_end(text, pos + 1)
            return
        else:
            raise text.invalid(pos, "Expecting ',' delimiter")


def _skip(text: _Text, pos: int) -> int:
    """The position of the next character that is not JSON whitespace (the window's end only at the end)."""
    while True:
        pos = _WHITESPACE.match(text.window, pos).end()  # type: ignore[union-attr]  # matches the empty string
        if pos < len(text.window) or text.eof:
            return pos
        text.extend(pos)
        pos = 0


def _expect_end(text: _Text, pos: int) -> None:
    pos = _skip(text, pos)
    if pos < len(text.window):
        raise text.invalid(pos, "Extra data")


def _value(text: _Text, pos: int) -> tuple[Any, int]:
    """The JSON value at `window[pos]` and the position after it, reading on while it may run past the window."""
    seen: tuple[int, str] | None = None
    while True:
        try:
            value, end = _DECODER.raw_decode(text.window, pos)
            if end < len(text.window) or text.eof:
                return value, end
            # A number at the window's end may go on in the next piece: decode again with more text.
        except json.JSONDecodeError as exc:
            # Past the window's end, the error may only mean the value goes on. One that comes back at the same
            # place with more text is the value's own; a string runs to the window's end until it is closed.
            failure = (text.position(exc.pos)[2], exc.msg)
            if text.eof or (failure == seen and not exc.msg.startswith("Unterminated string")):
                raise text.invalid(exc.pos, exc.msg) from None
            seen = failure
        except _NotJSON as exc:
            found = text.window.find(exc.text, pos)
            raise text.invalid(found if found >= 0 else pos, str(exc)) from None
        except RecursionError:
            raise text.invalid(pos, "the value nests too deeply") from None
        except ValueError as exc:  # an integer longer than Python converts (sys.get_int_max_str_digits)
            raise text.invalid(pos, str(exc)) from None
        text.extend(pos, at_least=max(CHUNK_BYTES, len(text.window) - pos))
        pos = 0


# JSON Lines ---------------------------------------------------------------------------------------------------


def _json_line_items(chunks: Iterator[bytes]) -> Iterator[tuple[int, Any]]:
    """One JSON value per line, numbered by line from 1; blank lines are skipped."""
    for number, line in enumerate(_byte_lines(chunks), start=1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise Unreadable(f"invalid JSON at column {exc.colno}: {exc.msg}", number) from exc
        yield number, item


def _byte_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The pieces between b"\n" bytes, as `bytes.split` gives them, whatever the chunks' boundaries."""
    pending: list[bytes] = []
    for chunk in chunks:
        if b"\n" not in chunk:
            pending.append(chunk)
            continue
        lines = chunk.split(b"\n")
        if pending:
            pending.append(lines[0])
            lines[0] = b"".join(pending)
        pending = [lines.pop()]
        yield from lines
    yield b"".join(pending)


# CSV and TSV --------------------------------------------------------------------------------------------------


def _table_items(chunks: Iterator[bytes], *, delimiter: str) -> Iterator[tuple[int, Any]]:
    """A header row names the columns; each later row is one task's `data`, every value a string, numbered by row
    from 1. A CSV whose first line has more semicolons than commas is read as semicolon-separated (as Label
    Studio)."""
    lines = _text_lines(_decoded(chunks))
    first = next(lines, None)
    if first is None:
        return
    if delimiter == "," and first.count(";") > first.count(","):
        delimiter = ";"
    reader = csv.reader(itertools.chain([first], lines), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    number = 0
    try:
        for number, row in enumerate(reader, start=1):  # noqa: B007 -- `number` names the row csv.Error is about
            if not row:
                continue  # blank line
            if header is None:
                header = _check_header(number, row)
                continue
            if len(row) > len(header):
                raise Unreadable(f"{len(row)} values but {len(header)} columns", number)
            if len(row) < len(header):
                row += [""] * (len(header) - len(row))
            yield number, {"data": dict(zip(header, row, strict=True))}
    except csv.Error as exc:
        raise Unreadable(str(exc), number + 1) from exc


def _text_lines(texts: Iterable[str]) -> Iterator[str]:
    """Lines ending in "\n", "\r\n" or "\r", their ends kept (what `io.StringIO(text, newline="")` gives), whatever
    the boundaries of the pieces of text."""
    pending: list[str] = []
    for text in texts:
        if "\n" not in text and "\r" not in text:
            pending.append(text)
            continue
        if pending:
            pending.append(text)
            text = "".join(pending)
        lines = io.StringIO(text, newline="").readlines()
        # A last line without "\n" may go on in the next piece (a "\r" there may be the first half of "\r\n").
        pending = [lines.pop()] if not lines[-1].endswith("\n") else []
        yield from lines
    if pending:
        yield from io.StringIO("".join(pending), newline="").readlines()


def _check_header(number: int, header: list[str]) -> list[str]:
    for position, column in enumerate(header, start=1):
        if not column.strip():
            raise Unreadable(f"column {position} of the header has no name", number)
    seen = set()
    for column in header:
        if column in seen:
            raise Unreadable(f'column "{column}" appears twice in the header', number)
        seen.add(column)
    return header


def upload_name(upload: UploadedFile) -> str:
    """The name a file was uploaded with (the request parsers skip a file sent without one), shortened by
    `storable_name` when it is too long to be stored as a file."""
    if upload.name is None:
        raise ImportRejected("An uploaded file has no name.")
    return storable_name(upload.name)


def storable_name(name: str) -> str:
    """`name` when it takes at most MAX_STORED_NAME_BYTES in UTF-8; otherwise its start, cut on a character
    boundary, then `-` and 8 hex digits of the whole name's hash (long names that differ only after the cut stay
    apart), then its extension."""
    encoded = name.encode(errors="surrogatepass")
    if len(encoded) <= MAX_STORED_NAME_BYTES:
        return name
    stem, extension = os.path.splitext(name)
    if len(extension) > 16:  # not an extension a file is read by: cut it with the rest
        stem, extension = name, ""
    digest = hashlib.sha256(encoded).hexdigest()[:8]
    room = MAX_STORED_NAME_BYTES - len(extension.encode(errors="surrogatepass")) - len(digest) - 1
    start = stem.encode(errors="surrogatepass")[:room].decode(errors="ignore")
    return f"{start}-{digest}{extension}"


def read_uploads(uploads: Sequence[UploadedFile]) -> list[TaskSource]:
    """One task source per uploaded file, in order; every name is checked before any file is read. Each file is
    read, from its start, when its source is iterated."""
    for upload in uploads:
        check_file_format(upload_name(upload))
    return [read_file(upload_name(upload), upload) for upload in uploads]
