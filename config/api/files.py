"""File responses with HEAD and single byte ranges (`bytes=a-b`, `bytes=a-`, `bytes=-n`), 416 when unsatisfiable."""

import re
from collections.abc import Callable, Iterable
from typing import Literal

from django.http import HttpResponse, HttpResponseBase, StreamingHttpResponse

from config.api.exceptions import error_response

CHUNK = 256 * 1024
RANGE_RE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
MAX_DIGITS = 18  # every size fits; longer numbers are read as "beyond any size" without calling int() on them
BEYOND = 10**MAX_DIGITS


def _number(digits: str) -> int:
    """`digits` as an int, or BEYOND when it has more than MAX_DIGITS significant digits (`int()` refuses more
    than 4300 digits, and needs none of them to know the number is past the end of any file)."""
    significant = digits.lstrip("0")
    return BEYOND if len(significant) > MAX_DIGITS else int(significant or "0")


def parse_range(header: str, size: int) -> tuple[int, int] | Literal[False] | None:
    """(start, end) inclusive for a satisfiable single range, None to ignore the header, False if unsatisfiable.

    An end past the file is clamped to its last byte and a suffix longer than the file is the whole file
    (RFC 9110 §14.1.2), however many digits they have."""
    match = RANGE_RE.match(header.strip())
    if not match:
        return None  # multiple or malformed ranges: serve the whole file, as RFC 9110 allows
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        length = _number(last)
        if length == 0 or size == 0:
            return False
        return max(size - length, 0), size - 1
    start = _number(first)
    end = _number(last) if last else size - 1
    if start >= size or end < start:
        return False
    return start, min(end, size - 1)


def ranged_response(
    request, chunks: Callable[[int, int], Iterable[bytes]], *, size: int, content_type: str, filename: str
) -> HttpResponseBase:
    """Serve `size` bytes honouring Range and HEAD; `chunks(start, length)` yields the bytes asked for.

    `chunks` is called only when a body is sent, so a HEAD or an unsatisfiable range reads nothing.
    """
    start, end, status = 0, size - 1, 200
    header = request.headers.get("Range")
    if header:
        parsed = parse_range(header, size)
        if parsed is False:
            unsatisfiable = error_response(416, f"Requested range not satisfiable: {header}")
            unsatisfiable["Content-Range"] = f"bytes */{size}"
            return unsatisfiable
        if parsed:
            start, end = parsed
            status = 206
    length = max(end - start + 1, 0)
    response: HttpResponseBase
    if request.method == "HEAD":
        response = HttpResponse(status=status, content_type=content_type)
    else:
        response = StreamingHttpResponse(chunks(start, length), status=status, content_type=content_type)
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    if status == 206:
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["filename"] = filename
    return response
