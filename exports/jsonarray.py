"""How every export file writes a JSON array of already encoded items: the one place that knows the layout.

Two array layouts exist. `LINES` puts each item on a line of its own (`[`, a line break, the items joined by `,`
and a line break, a line break, `]`; an empty array is `[]`): snapshot files use it, so a reader can take a file
of any size back one task per line, and the parts of a split snapshot join into the same bytes. `COMPACT` joins
items with a bare comma (`[a,b]`), for files sent while they are built.

`JSON_LINES` writes the same items as JSON Lines (the JSONL format): no brackets, each item followed by a line
break (`a\nb\n`; no items is an empty file). An item never holds a raw line break, as JSON encoders escape them
inside strings, so each line is one item.

`JsonArray` only returns the bytes to write, so the same object serves a file (write what it returns) and a
stream (yield it).
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace

__all__ = ["COMPACT", "JSON_LINES", "LINES", "JsonArray", "Layout"]


@dataclass(frozen=True)
class Layout:
    separator: bytes
    before_first: bytes
    after_last: bytes
    opening: bytes = b"["
    closing: bytes = b"]"

    def inner(self) -> "Layout":
        """The same items with nothing before the first or after the last: a run of items that another array
        adds as one piece (the parts of a split snapshot)."""
        return replace(self, before_first=b"", after_last=b"")


LINES = Layout(separator=b",\n", before_first=b"\n", after_last=b"\n")
COMPACT = Layout(separator=b",", before_first=b"", after_last=b"")
JSON_LINES = Layout(separator=b"\n", before_first=b"", after_last=b"\n", opening=b"", closing=b"")


class JsonArray:
    """One JSON array (or JSON Lines file) built from encoded items: `start()`, any number of `add()`, then
    `end()`."""

    def __init__(self, layout: Layout = LINES):
        self.layout = layout
        self.count = 0

    def start(self) -> bytes:
        return self.layout.opening

    def add(self, items: Sequence[bytes]) -> bytes:
        """The bytes that append `items` (each one encoded JSON value) to the array."""
        if not items:
            return b""
        prefix = self.prefix()
        self.count += len(items) - 1
        # The prefix joins the first item, not the joined batch: a batch is megabytes, copied once rather than twice.
        return self.layout.separator.join([prefix + items[0], *items[1:]])

    def prefix(self) -> bytes:
        """What goes before one more item that the caller writes itself (say, a stored part read in chunks)."""
        prefix = self.layout.separator if self.count else self.layout.before_first
        self.count += 1
        return prefix

    def end(self) -> bytes:
        return (self.layout.after_last if self.count else b"") + self.layout.closing
