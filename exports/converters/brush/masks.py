"""Brush masks: Label Studio's bit-packed RLE decoded to a mask, and a mask written as a greyscale PNG."""

import struct
import zlib
from typing import Any

import numpy as np

from exports.converters.registry import DEFAULT_MAX_MASK_PIXELS

__all__ = ["MaskTooLarge", "RleError", "decode_mask", "decode_rle", "greyscale_png"]

_HEADER_BITS = 32 + 5 + 4 * 4


class RleError(ValueError):
    """A brush RLE that cannot be decoded; the message says what is wrong with it."""


class MaskTooLarge(ValueError):
    """A brush mask of more pixels than the conversion allows, found before anything of its size is allocated.

    Not an RleError: BRUSH_TO_COCO skips an undecodable mask as the SDK does, but a mask too large to convert
    fails the conversion with this reason instead of silently going missing.
    """


# Label Studio stores a brush mask as the run-length encoded RGBA bytes of the mask image, bit-packed:
# a 32-bit value count, a 5-bit word size minus one, four 4-bit run-length field widths minus one, then
# runs. Each run starts with one bit (1: one word repeated, 0: that many literal words), two bits picking
# one of the four field widths, and the run length minus one in that width; then the word(s).


def _rle_bytes(rle: Any) -> bytes:
    if isinstance(rle, str):
        return rle.encode("utf-8")  # as the SDK's COCO exporter reads a text RLE
    if isinstance(rle, bytes | bytearray):
        return bytes(rle)
    if not isinstance(rle, list):
        raise RleError(f"rle must be a list of byte values, not {type(rle).__name__}")
    try:
        return bytes(rle)
    except (TypeError, ValueError):
        raise RleError("rle must be a list of integers from 0 to 255") from None


def decode_rle(rle: Any, *, max_pixels: int = DEFAULT_MAX_MASK_PIXELS) -> np.ndarray:
    """Every value of a brush RLE (RGBA bytes of the mask, four per pixel) as a flat `uint8` array.

    Raises MaskTooLarge, before decoding, when the RLE declares more than `max_pixels` pixels.
    """
    data = _rle_bytes(rle)
    _check_declared_size(_declared_count(data), max_pixels)
    values, lengths, count = _runs(data)
    return np.repeat(values, _clipped(lengths, count))


def decode_mask(rle: Any, width: int, height: int, *, max_pixels: int = DEFAULT_MAX_MASK_PIXELS) -> np.ndarray:
    """The mask's alpha channel, a C-contiguous `uint8` array of shape (height, width).

    Only the alpha values are expanded (every fourth value), so the RGBA stream is never held in full. Raises
    MaskTooLarge when the mask (`width` x `height`, or the size its RLE declares) has more than `max_pixels`
    pixels: checked first, so a mask too large is refused without being decoded, traced or written.
    """
    if width * height > max_pixels:
        raise MaskTooLarge(f"brush mask of {width}×{height} pixels exceeds EXPORT_MAX_MASK_PIXELS ({max_pixels})")
    data = _rle_bytes(rle)
    declared = _declared_count(data)
    _check_declared_size(declared, max_pixels)
    if declared != width * height * 4:
        raise RleError(f"rle holds {declared} values, but a {width}x{height} RGBA image needs {width * height * 4}")
    values, lengths, count = _runs(data)
    lengths = _clipped(lengths, count)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    # Values at flat positions 4k+3 (alpha); positions below `e` hold `e // 4` of them.
    per_run = ends // 4 - starts // 4
    return np.repeat(values, per_run).reshape(height, width)


def _clipped(lengths: np.ndarray, count: int) -> np.ndarray:
    """Run lengths with the last repeated run cut at `count` (an overlong final run is tolerated, as by the SDK)."""
    total = int(lengths.sum())
    if total > count:
        lengths = lengths.copy()
        lengths[-1] -= total - count
    return lengths


def _declared_count(data: bytes) -> int:
    """The number of values (four per pixel) the RLE's header declares."""
    if len(data) * 8 < _HEADER_BITS:
        raise RleError("rle is shorter than its header")
    return int.from_bytes(data[:4], "big")


def _check_declared_size(count: int, max_pixels: int) -> None:
    pixels = -(-count // 4)
    if pixels > max_pixels:
        raise MaskTooLarge(
            f"brush mask RLE declares {pixels} pixels, which exceeds EXPORT_MAX_MASK_PIXELS ({max_pixels})"
        )


def _runs(data: bytes) -> tuple[np.ndarray, np.ndarray, int]:
    """The RLE's runs as (values, lengths) arrays, plus the value count its header declares."""
    total = len(data) * 8
    if total < _HEADER_BITS:
        raise RleError("rle is shorter than its header")
    header = int.from_bytes(data[:7], "big") >> 3  # the first 53 bits
    count = header >> 21
    word = ((header >> 16) & 31) + 1
    widths = [((header >> (12 - 4 * k)) & 15) + 1 for k in range(4)]
    length_masks = [(1 << width) - 1 for width in widths]
    word_mask = (1 << word) - 1
    padded = data + bytes(8)  # a 64-bit window can always be read; reads past `total` are errors
    from_bytes = int.from_bytes
    values: list[int] = []
    lengths: list[int] = []
    pos, done = _HEADER_BITS, 0
    while done < count:
        # A 64-bit window from the byte holding `pos` covers the run's head (3 bits), its length
        # (at most 16 bits) and a repeated word (at most 32 bits) for any bit offset within that byte.
        shift = 61 - (pos & 7)
        window = from_bytes(padded[pos >> 3 : (pos >> 3) + 8], "big")
        head = (window >> shift) & 7
        width = widths[head & 3]
        run = ((window >> (shift - width)) & length_masks[head & 3]) + 1
        pos += 3 + width
        if head & 4 or run == 1:  # one word, repeated `run` times (a literal run of one is the same)
            values.append((window >> (shift - width - word)) & word_mask)
            lengths.append(run)
            pos += word
        else:  # literal words
            if done + run > count:
                raise RleError(f"rle has {done + run - count} values more than the {count} its header declares")
            end = pos + word * run
            if end <= total:
                values.extend(_words(padded, pos, word, run))
                lengths.extend([1] * run)
            pos = end
        if pos > total:
            raise RleError(f"rle ends after {done} of {count} values")
        done += run
    if not values:
        return np.zeros(0, np.uint8), np.zeros(0, np.int64), count
    array = np.array(values, dtype=np.int64)
    if int(array.max()) > 255:
        raise RleError(f"rle holds the value {int(array.max())}; mask values are bytes (0-255)")
    return array.astype(np.uint8), np.array(lengths, dtype=np.int64), count


def _words(padded: bytes, pos: int, word: int, run: int) -> list[int]:
    """`run` consecutive `word`-bit values starting at bit `pos`."""
    first, last = pos >> 3, (pos + word * run + 7) >> 3
    if run > 16:  # long literal runs: unpack the bits once instead of shifting a big integer per word
        bits = np.unpackbits(np.frombuffer(padded[first:last], dtype=np.uint8))
        offset = pos - (first << 3)
        grid = bits[offset : offset + word * run].reshape(run, word).astype(np.int64)
        return (grid @ (1 << np.arange(word - 1, -1, -1, dtype=np.int64))).tolist()
    chunk = int.from_bytes(padded[first:last], "big")
    tail = (last << 3) - pos - word * run  # bits after the last word in the chunk
    mask = (1 << word) - 1
    return [(chunk >> (tail + word * (run - 1 - k))) & mask for k in range(run)]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def greyscale_png(mask: np.ndarray) -> bytes:
    """A 2-D `uint8` array as an 8-bit greyscale PNG (what Pillow opens as mode `L`).

    Written directly rather than through Pillow: rows without a filter and the fastest deflate suit
    masks (long runs) and take a fraction of the time; rows are compressed in blocks to bound memory.
    """
    height, width = mask.shape
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit, greyscale, no interlace
    compressor = zlib.compressobj(1)
    parts = []
    block = max(1, (1 << 22) // (width + 1))
    for top in range(0, height, block):
        rows = mask[top : top + block]
        filtered = np.zeros((rows.shape[0], width + 1), dtype=np.uint8)  # a leading 0 per row: no filter
        filtered[:, 1:] = rows
        parts.append(compressor.compress(filtered.tobytes()))
    parts.append(compressor.flush())
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", b"".join(parts)),
            _png_chunk(b"IEND", b""),
        )
    )
