"""The request side of task import: the JSON body parser, the multipart size limit, and uploaded files read
into task sources. Nothing here writes; `projects.imports` checks and writes what it reads.
"""

import csv
import gc
import hashlib
import io
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from projects.exceptions import ImportRejected
from projects.imports import TaskSource

FILE_FORMATS = (".json", ".jsonl", ".csv", ".tsv")
TABLE_FORMATS = (".csv", ".tsv")
BOM = b"\xef\xbb\xbf"
# File systems allow 255 bytes per name and the stored name gets a `<8 hex>-` prefix (`projects.models.upload_path`).
MAX_STORED_NAME_BYTES = 200


# Reading the request ------------------------------------------------------------------------------------------


class ImportJSONParser(JSONParser):
    """JSON bodies parsed with orjson: a large import spends noticeably less time here than with `json`."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return orjson.loads(stream.read())
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc


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


def read_file(name: str, content: bytes) -> TaskSource:
    """Raw task items of one uploaded file: a JSON list or object, JSON lines, or a CSV/TSV table."""
    check_file_format(name)
    content = content.removeprefix(BOM)
    kind = file_format(name)
    if kind == ".json":
        return _read_json(name, content)
    if kind == ".jsonl":
        return _read_json_lines(name, content)
    return _read_table(name, content, delimiter="\t" if kind == ".tsv" else ",")


def _read_json(name: str, content: bytes) -> TaskSource:
    try:
        parsed = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise ImportRejected(f"{name}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    return TaskSource(parsed if isinstance(parsed, list) else [parsed], file_name=name)


def _read_json_lines(name: str, content: bytes) -> TaskSource:
    items, numbers = [], []
    for number, line in enumerate(content.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            items.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise ImportRejected(f"{name} line {number}: invalid JSON at column {exc.colno}: {exc.msg}") from exc
        numbers.append(number)
    return TaskSource(items, file_name=name, unit="line", numbers=numbers)


def _read_table(name: str, content: bytes, *, delimiter: str) -> TaskSource:
    """A header row names the columns; each later row is one task's `data`, every value a string.
    A CSV whose first line has more semicolons than commas is read as semicolon-separated (as Label Studio)."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImportRejected(f"{name}: not UTF-8 text (invalid byte at position {exc.start})") from exc
    first_line = text.partition("\n")[0]
    if delimiter == "," and first_line.count(";") > first_line.count(","):
        delimiter = ";"
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    items, numbers = [], []
    number = 0
    try:
        for number, row in enumerate(reader, start=1):  # noqa: B007 -- `number` names the row csv.Error is about
            if not row:
                continue  # blank line
            if header is None:
                header = _check_header(name, number, row)
                continue
            if len(row) > len(header):
                raise ImportRejected(f"{name} row {number}: {len(row)} values but {len(header)} columns")
            if len(row) < len(header):
                row += [""] * (len(header) - len(row))
            items.append({"data": dict(zip(header, row, strict=True))})
            numbers.append(number)
    except csv.Error as exc:
        raise ImportRejected(f"{name} row {number + 1}: {exc}") from exc
    return TaskSource(items, file_name=name, unit="row", numbers=numbers)


def _check_header(name: str, number: int, header: list[str]) -> list[str]:
    for position, column in enumerate(header, start=1):
        if not column.strip():
            raise ImportRejected(f"{name} row {number}: column {position} of the header has no name")
    seen = set()
    for column in header:
        if column in seen:
            raise ImportRejected(f'{name} row {number}: column "{column}" appears twice in the header')
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
    """One task source per uploaded file, in order; every name is checked before any file is read."""
    for upload in uploads:
        check_file_format(upload_name(upload))
    sources = []
    for upload in uploads:
        upload.seek(0)
        sources.append(read_file(upload_name(upload), upload.read()))
    return sources
