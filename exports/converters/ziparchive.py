"""A zip archive written front to back, entry by entry, in memory that does not grow with the entry count.

`zipfile.ZipFile` keeps a `ZipInfo` object for every entry until it writes the central directory at the end,
about half a kilobyte each (50 MB for the label files of 100,000 images), and seeks back over each entry to
fill in its header. Here a whole entry's size and checksum are known before its header is written, a streamed
entry ends with a data descriptor, and each central directory record (APPNOTE 4.3.12) is kept in a temporary
file until the end. ZIP64 fields are written when sizes, offsets or the entry count need them, so the output
can go to any writable stream, seekable or not.
"""

from __future__ import annotations

import struct
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol

__all__ = ["Archive", "Writer"]

_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
_CENTRAL_RECORD = struct.Struct("<IBBHHHHHIIIHHHHHII")
_DESCRIPTOR64 = struct.Struct("<IIQQ")
_ZIP64_END = struct.Struct("<IQHHIIQQQQ")
_ZIP64_LOCATOR = struct.Struct("<IIQI")
_END = struct.Struct("<IHHHHIIH")
_FOUR_BYTES = 0xFFFFFFFF
_TWO_BYTES = 0xFFFF
# Sizes and offsets above this go to ZIP64 fields (the threshold `zipfile` uses too).
_ZIP64_LIMIT = (1 << 31) - 1
_STORED, _DEFLATED = 0, 8
_VERSION, _ZIP64_VERSION = 20, 45
_UNIX = 3
_UTF8_NAME = 0x800
_HAS_DESCRIPTOR = 0x08
_FILE_MODE, _FOLDER_MODE = 0o100644, 0o40755
_MSDOS_FOLDER = 0x10
# Deflating costs more than it saves below this size (label files of a few boxes): such entries are stored.
_SMALL = 256
_LEVEL = 1
_BLOCK = 1 << 20


class Writer(Protocol):
    """Where bytes are written: a binary file, or the member `Archive.stream` yields."""

    def write(self, data: bytes | memoryview, /) -> int: ...


class Archive:
    """The zip archive a converter writes: folders and files get the current time and everyone-readable modes.

    Text is deflated at level 1, several times faster than the default and still shrinking JSON about tenfold;
    images, and files too small to gain from deflating, are stored as they are. Entry names must be unique
    (callers see to it).
    """

    def __init__(self, out: BinaryIO, scratch_dir: Path | str | None = None):
        self._out = out
        self._offset = 0
        self._entries = 0
        self._central = tempfile.TemporaryFile(dir=scratch_dir)  # noqa: SIM115 (closed by __exit__)
        year, month, day, hour, minute, second = time.localtime()[:6]
        self._dos_date = max(year - 1980, 0) << 9 | month << 5 | day
        self._dos_time = hour << 11 | minute << 5 | second // 2

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, exc_type: Any, *exc_info: Any) -> None:
        try:
            if exc_type is None:
                self._finish()
        finally:
            self._central.close()

    def folder(self, name: str) -> None:
        self._whole(name.rstrip("/") + "/", b"", _STORED, _FOLDER_MODE << 16 | _MSDOS_FOLDER)

    def write(self, name: str, data: bytes | str, *, stored: bool = False) -> None:
        """A whole member; `stored` for data compressed already (images). Small members are always stored."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        method = _STORED if stored or len(data) < _SMALL else _DEFLATED
        self._whole(name, data, method, _FILE_MODE << 16)

    @contextmanager
    def stream(self, name: str) -> Iterator[Writer]:
        """A member of any size written piece by piece; its sizes and checksum follow it in a data descriptor."""
        encoded, flags = _encode_name(name)
        flags |= _HAS_DESCRIPTOR
        offset = self._offset
        # Sizes are unknown yet: zero here, with a ZIP64 extra field so the descriptor carries 8-byte sizes.
        extra = struct.pack("<HHQQ", 1, 16, 0, 0)
        self._emit(
            _LOCAL_HEADER.pack(
                0x04034B50,
                _ZIP64_VERSION,
                flags,
                _DEFLATED,
                self._dos_time,
                self._dos_date,
                0,
                0,
                0,
                len(encoded),
                len(extra),
            )
            + encoded
            + extra
        )
        member = _DeflatingWriter(self._emit)
        yield member
        crc, compressed, size = member.close()
        self._emit(_DESCRIPTOR64.pack(0x08074B50, crc, compressed, size))
        self._record(encoded, flags, _DEFLATED, crc, compressed, size, offset, _FILE_MODE << 16, zip64=True)

    def copy(self, name: str, file: IO[bytes]) -> None:
        """A member stored as it is from a seekable file (one made in a scratch file, such as a zip of its own).

        The file is read twice, once for its size and checksum and once to copy it, so it is never held whole.
        """
        crc = size = 0
        file.seek(0)
        while block := file.read(_BLOCK):
            crc = zlib.crc32(block, crc)
            size += len(block)
        file.seek(0)
        encoded, flags, offset, zip64 = self._local_header(name, _STORED, crc, size, size)
        copied = 0
        while block := file.read(_BLOCK):
            self._emit(block)
            copied += len(block)
        if copied != size:
            raise RuntimeError(f"{name}: the file changed while it was copied into the archive")
        self._record(encoded, flags, _STORED, crc, size, size, offset, _FILE_MODE << 16, zip64=zip64)

    def _whole(self, name: str, data: bytes, method: int, attributes: int) -> None:
        crc = zlib.crc32(data)
        if method == _DEFLATED:
            compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -15)
            payload = compressor.compress(data) + compressor.flush()
        else:
            payload = data
        encoded, flags, offset, zip64 = self._local_header(name, method, crc, len(payload), len(data))
        self._emit(payload)
        self._record(encoded, flags, method, crc, len(payload), len(data), offset, attributes, zip64=zip64)

    def _local_header(
        self, name: str, method: int, crc: int, compressed: int, size: int
    ) -> tuple[bytes, int, int, bool]:
        """Write the local header of a member whose sizes are known; its encoded name, flags, offset and ZIP64 need."""
        encoded, flags = _encode_name(name)
        offset = self._offset
        zip64 = size > _ZIP64_LIMIT or compressed > _ZIP64_LIMIT
        if zip64:
            extra = struct.pack("<HHQQ", 1, 16, size, compressed)
            sizes = (_FOUR_BYTES, _FOUR_BYTES)
        else:
            extra, sizes = b"", (compressed, size)
        version = _ZIP64_VERSION if zip64 else _VERSION
        header = _LOCAL_HEADER.pack(
            0x04034B50, version, flags, method, self._dos_time, self._dos_date, crc, *sizes, len(encoded), len(extra)
        )
        self._emit(header + encoded + extra)
        return encoded, flags, offset, zip64

    def _emit(self, data: bytes) -> None:
        self._out.write(data)
        self._offset += len(data)

    def _record(
        self,
        name: bytes,
        flags: int,
        method: int,
        crc: int,
        compressed: int,
        size: int,
        offset: int,
        attributes: int,
        *,
        zip64: bool,
    ) -> None:
        large = []  # the ZIP64 extra field lists only the values too large for their field, in this order
        if size > _ZIP64_LIMIT:
            large.append(size)
            size = _FOUR_BYTES
        if compressed > _ZIP64_LIMIT:
            large.append(compressed)
            compressed = _FOUR_BYTES
        if offset > _ZIP64_LIMIT:
            large.append(offset)
            offset = _FOUR_BYTES
        extra = struct.pack(f"<HH{len(large)}Q", 1, 8 * len(large), *large) if large else b""
        version = _ZIP64_VERSION if zip64 or large else _VERSION
        self._central.write(
            _CENTRAL_RECORD.pack(
                0x02014B50,
                version,
                _UNIX,
                version,
                flags,
                method,
                self._dos_time,
                self._dos_date,
                crc,
                compressed,
                size,
                len(name),
                len(extra),
                0,  # comment length
                0,  # disk number
                0,  # internal attributes
                attributes,
                offset,
            )
            + name
            + extra
        )
        self._entries += 1

    def _finish(self) -> None:
        start = self._offset
        self._central.seek(0)
        while block := self._central.read(_BLOCK):
            self._emit(block)
        size = self._offset - start
        count = self._entries
        if count >= _TWO_BYTES or size > _ZIP64_LIMIT or start > _ZIP64_LIMIT:
            end64 = self._offset
            self._emit(
                _ZIP64_END.pack(
                    0x06064B50, _ZIP64_END.size - 12, _ZIP64_VERSION, _ZIP64_VERSION, 0, 0, count, count, size, start
                )
            )
            self._emit(_ZIP64_LOCATOR.pack(0x07064B50, 0, end64, 1))
        entries = min(count, _TWO_BYTES)
        self._emit(_END.pack(0x06054B50, 0, 0, entries, entries, min(size, _FOUR_BYTES), min(start, _FOUR_BYTES), 0))
        self._out.flush()


class _DeflatingWriter:
    """The file-like end of `Archive.stream`: deflates what it is given and counts it."""

    def __init__(self, emit: Any):
        self._emit = emit
        self._compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -15)
        self._crc = 0
        self._size = 0
        self._compressed = 0

    def write(self, data: bytes | memoryview) -> int:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._send(self._compressor.compress(data))
        return len(data)

    def _send(self, payload: bytes) -> None:
        if payload:
            self._emit(payload)
            self._compressed += len(payload)

    def close(self) -> tuple[int, int, int]:
        self._send(self._compressor.flush())
        return self._crc, self._compressed, self._size


def _encode_name(name: str) -> tuple[bytes, int]:
    try:
        return name.encode("ascii"), 0
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogatepass"), _UTF8_NAME
