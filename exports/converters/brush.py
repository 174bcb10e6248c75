"""BRUSH_TO_NUMPY, BRUSH_TO_PNG and BRUSH_TO_COCO: brush masks decoded from Label Studio's RLE.

The output matches what label-studio-sdk 2.1.2's converter writes for these formats
(`label_studio_sdk/converter/brush.py` and `converter/exports/brush_to_coco.py`), which Label Studio
1.23.2 serves as a zip of the converter's folder:

- NUMPY / PNG: one file per brush region of every annotation that is not cancelled, named
  `task-<task id>-annotation-<annotation id>-by-<annotator>-<from_name>-<labels joined by ->-<n>`
  (`n` counts regions with the same name within one control of one annotation), holding the mask's alpha
  channel as a `uint8` array of shape (height, width): an `.npy` file, or a greyscale (mode `L`) PNG.
- COCO: `result_coco.json` (and the empty `images/` folder the SDK creates), with one COCO image per
  annotation, brush masks traced into polygons, and polygon and rectangle regions converted as well.

Masks are decoded and written one at a time, so memory holds one task and one mask, never the export.
"""

from __future__ import annotations

import hashlib
import io
import math
import posixpath
import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np
import orjson

from exports.converters.json_min import NO_ANNOTATION, JsonMinConverter, annotator
from exports.converters.registry import ConversionContext, ConversionError
from exports.converters.source import TaskSource
from exports.converters.ziparchive import Archive

__all__ = [
    "MAX_MASK_PIXELS",
    "RleError",
    "convert_coco",
    "convert_numpy",
    "convert_png",
    "decode_mask",
    "decode_rle",
    "greyscale_png",
    "trace_outer_contours",
]

# Control types whose regions carry brush masks, with the value key that holds their labels.
_MASK_LABEL_KEYS = {"brushlabels": "brushlabels", "labels": "labels"}
_NO_LABEL = "no_label"
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
_HEADER_BITS = 32 + 5 + 4 * 4
# The largest canvas browsers draw (16384 x 16384), so the largest mask Label Studio's editor can paint;
# bounds the memory one decoded mask may take.
MAX_MASK_PIXELS = 16384 * 16384


class RleError(ValueError):
    """A brush RLE that cannot be decoded; the message says what is wrong with it."""


# --- RLE decoding -------------------------------------------------------------------------------------------------
#
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


def decode_rle(rle: Any) -> np.ndarray:
    """Every value of a brush RLE (RGBA bytes of the mask, four per pixel) as a flat `uint8` array."""
    values, lengths, count = _runs(_rle_bytes(rle))
    return np.repeat(values, _clipped(lengths, count))


def decode_mask(rle: Any, width: int, height: int) -> np.ndarray:
    """The mask's alpha channel, a C-contiguous `uint8` array of shape (height, width).

    Only the alpha values are expanded (every fourth value), so the RGBA stream is never held in full.
    """
    if width * height > MAX_MASK_PIXELS:
        raise RleError(f"a {width}x{height} mask is larger than the {MAX_MASK_PIXELS} pixels allowed")
    values, lengths, count = _runs(_rle_bytes(rle))
    if count != width * height * 4:
        raise RleError(f"rle holds {count} values, but a {width}x{height} RGBA image needs {width * height * 4}")
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


# --- Contour tracing ----------------------------------------------------------------------------------------------
#
# COCO polygons are the outer borders of the mask's 8-connected regions, as OpenCV's
# `findContours(mask, RETR_EXTERNAL, CHAIN_APPROX_SIMPLE)` gives them (the SDK's choice): Suzuki and Abe's
# border following (1985) on a copy of the mask with a one-pixel background frame, in raster order, where a
# region enclosed by another region's hole is left out, and each border keeps only the pixels where its
# direction changes. The tracing marks the border pixels it visits, which decides both whether a later
# start pixel lies on a border already traced and whether it lies inside an outer region.

_FOREGROUND = 1
_VISITED = 2  # a traced border pixel
_VISITED_EAST_EDGE = 130  # a traced border pixel whose east neighbour was seen to be background
# Chain directions: 0 east, then counter-clockwise as seen on screen (2 up, 4 west, 6 down).
_DX = (1, 1, 0, -1, -1, -1, 0, 1)
_DY = (0, -1, -1, -1, 0, 1, 1, 1)


def trace_outer_contours(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """Outer borders of the non-zero regions of a 2-D mask, as lists of (x, y) corner pixels.

    Same points, in the same order, as OpenCV's `findContours(..., RETR_EXTERNAL, CHAIN_APPROX_SIMPLE)`.
    """
    height, width = mask.shape
    step = width + 2
    framed = np.zeros((height + 2, step), dtype=np.uint8)
    framed[1:-1, 1:-1] = mask != 0
    flat = framed.ravel()
    # Candidate starts: foreground pixels with background to the west. Tracing only turns foreground into
    # marks, so the candidates only shrink and are checked again when reached.
    candidates = np.flatnonzero((flat[1:] == _FOREGROUND) & (flat[:-1] == 0)) + 1
    cells = bytearray(flat.tobytes())
    offsets = (1, 1 - step, -step, -step - 1, -1, step - 1, step, step + 1) * 2
    contours = []
    for start in candidates.tolist():
        if cells[start] != _FOREGROUND:
            continue
        row_start = start - start % step
        # Inside a region already traced when the nearest mark to the west is not an east edge.
        if cells.rfind(b"\x02", row_start, start) > cells.rfind(b"\x82", row_start, start):
            continue
        y, x = divmod(start, step)
        contours.append(_follow_border(cells, start, offsets, x - 1, y - 1))
    contours.reverse()  # OpenCV lists the last border found first
    return contours


def _follow_border(cells: bytearray, start: int, offsets: tuple[int, ...], x: int, y: int) -> list[tuple[int, int]]:
    """Walk one outer border from its first pixel, marking it; the corner points in walking order."""
    direction = 4  # the background pixel west of the start
    while True:
        direction = (direction - 1) & 7
        first = start + offsets[direction]
        if cells[first] or direction == 4:
            break
    if not cells[first]:  # an isolated pixel
        cells[start] = _VISITED_EAST_EDGE
        return [(x, y)]
    points = []
    current, previous_direction = start, direction ^ 4
    while True:
        search_end = direction
        k = search_end
        while True:  # counter-clockwise, starting after the pixel the walk came from
            k += 1
            following = current + offsets[k]
            if cells[following]:
                break
        direction = k & 7
        if 1 <= direction <= search_end:  # the search passed the east neighbour, which is background
            cells[current] = _VISITED_EAST_EDGE
        elif cells[current] == _FOREGROUND:
            cells[current] = _VISITED
        if direction != previous_direction:
            points.append((x, y))
            previous_direction = direction
        x += _DX[direction]
        y += _DY[direction]
        if following == start and current == first:
            return points
        current = following
        direction = (direction + 4) & 7


def polygon_area(points: list[tuple[int, int]]) -> int:
    """Area enclosed by a closed polygon (shoelace formula), truncated to an integer."""
    twice = 0
    px, py = points[-1]
    for x, y in points:
        twice += px * y - py * x
        px, py = x, y
    return abs(twice) // 2


def _bounding_box(points: list[tuple[int, int]]) -> list[int]:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return [min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1]


# --- Walking the snapshot -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Region:
    """One result of an annotation that belongs to a control of the label config."""

    from_name: str
    control_type: str
    value: Mapping[str, Any]
    result_id: Any
    width: Any
    height: Any


@dataclass(frozen=True)
class _Item:
    """One annotation of a task (or the task itself when it has none), with its regions grouped by control."""

    task: Mapping[str, Any]
    annotation: Mapping[str, Any]
    outputs: dict[str, list[_Region]]

    @property
    def label(self) -> str:
        return f"task {self.task.get('id')}, annotation {self.annotation.get('id')}"


def _items(source: TaskSource, label_config: Mapping[str, Mapping[str, Any]]) -> Iterator[_Item]:
    """The annotations the SDK's converter reads, in its order.

    Per task: one item with no regions when the task has an empty annotation list; otherwise each
    annotation that is neither cancelled nor skipped, newest `created_at` first. A task without an
    `annotations` (or legacy `completions`) key gives nothing.
    """
    matcher = JsonMinConverter(label_config)
    for task in source.tasks():
        if not isinstance(task, Mapping):
            continue
        for annotation in matcher.exported_annotations(task):
            outputs = {} if annotation is NO_ANNOTATION else _outputs(annotation, matcher, label_config)
            yield _Item(task, annotation, outputs)


def _outputs(
    annotation: Mapping[str, Any], matcher: JsonMinConverter, label_config: Mapping[str, Mapping[str, Any]]
) -> dict[str, list[_Region]]:
    outputs: dict[str, list[_Region]] = {}
    result = annotation.get("result") or []
    if not isinstance(result, list):
        return outputs
    for region in result:
        if not isinstance(region, Mapping):
            continue
        from_name = region.get("from_name")
        if not from_name or not isinstance(from_name, str):
            continue
        tag = matcher.tag_for(from_name)
        value = region.get("value")
        if tag is None or not isinstance(value, Mapping):
            continue
        outputs.setdefault(from_name, []).append(
            _Region(
                from_name=from_name,
                control_type=str(label_config[tag].get("type") or ""),
                value=value,
                result_id=region.get("id"),
                width=region.get("original_width", value.get("original_width")),
                height=region.get("original_height", value.get("original_height")),
            )
        )
    return outputs


def _labels(value: Mapping[str, Any], key: str, missing: list[str]) -> list[str]:
    labels = value.get(key)
    if labels is None:
        return list(missing)
    if isinstance(labels, list):
        return [str(label) for label in labels]
    return [str(labels)]


def _dimension(number: Any) -> int | None:
    if isinstance(number, bool):
        return None
    if isinstance(number, int):
        return number if number > 0 else None
    if isinstance(number, float) and number.is_integer() and number > 0:
        return int(number)
    return None


# --- NumPy and PNG ------------------------------------------------------------------------------------------------


def convert_numpy(source: TaskSource, out: BinaryIO, context: ConversionContext) -> None:
    """BRUSH_TO_NUMPY: a zip of one `.npy` file (uint8, height x width) per brush region."""
    _write_masks(source, out, context, ".npy")


def convert_png(source: TaskSource, out: BinaryIO, context: ConversionContext) -> None:
    """BRUSH_TO_PNG: a zip of one greyscale PNG per brush region."""
    _write_masks(source, out, context, ".png")


def _annotator_for_name(completed_by: Any) -> str:
    """The annotator part of a mask's file name: an email (or id) with only letters, digits, `@` and `.` kept."""
    text = str(annotator(completed_by) or "")
    return "".join(ch for ch in text if ch.isalnum() or ch in "@.")


def _mask_files(item: _Item, suffix: str) -> Iterator[tuple[str, _Region]]:
    """(file name, region) for every brush region of the item, in result order."""
    by = _annotator_for_name(item.annotation.get("completed_by", {}))
    prefix = f"task-{item.task.get('id')}-annotation-{item.annotation.get('id')}-by-{by}-"
    for from_name, regions in item.outputs.items():
        counters: dict[str, int] = {}
        for region in regions:
            key = _MASK_LABEL_KEYS.get(region.control_type.lower())
            if key is None or "rle" not in region.value:
                continue
            name = f"{from_name}-{'-'.join(_labels(region.value, key, [_NO_LABEL]))}"
            number = counters.get(name, 0)
            counters[name] = number + 1
            yield (prefix + f"{name}-{number}").replace("/", "-").replace("\\", "-") + suffix, region


def _decoded(item: _Item, region: _Region) -> np.ndarray:
    width, height = _dimension(region.width), _dimension(region.height)
    where = f"{item.label}, brush region {region.result_id!r} of '{region.from_name}'"
    if width is None or height is None:
        raise ConversionError(
            f"{where}: original_width and original_height must be positive integers "
            f"(got {region.width!r} and {region.height!r})."
        )
    try:
        return decode_mask(region.value["rle"], width, height)
    except RleError as exc:
        raise ConversionError(f"{where}: the brush mask cannot be decoded: {exc}.") from None


def _write_masks(source: TaskSource, out: BinaryIO, context: ConversionContext, suffix: str) -> None:
    written = 0
    # `Archive` deflates at level 1: masks are long runs, so that already shrinks them about 25 times.
    with Archive(out, _scratch(context)) as archive:
        task_files: dict[str, tuple[_Item, _Region]] = {}
        current_task: Any = None
        for item in _items(source, context.label_config):
            if item.task is not current_task:
                written += _flush_masks(archive, task_files, suffix)
                current_task = item.task
            # Within a task a later region with the same file name replaces the earlier one, as files do.
            for file_name, region in _mask_files(item, suffix):
                task_files[file_name] = (item, region)
        written += _flush_masks(archive, task_files, suffix)
    if not written:
        raise ConversionError(
            "No converted file found, probably there are no annotations in the export snapshot: "
            "no annotation has a brush region with an RLE mask."
        )


def _flush_masks(archive: Archive, task_files: dict[str, tuple[_Item, _Region]], suffix: str) -> int:
    for file_name, (item, region) in task_files.items():
        mask = _decoded(item, region)
        if suffix == ".npy":
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(mask))
            with archive.stream(file_name) as entry:
                entry.write(header.getvalue())
                entry.write(mask.data.cast("B"))  # the C-contiguous mask's bytes, not copied
        else:
            archive.write(file_name, greyscale_png(mask), stored=True)  # PNG data is deflated already
    count = len(task_files)
    task_files.clear()
    return count


def _scratch(context: ConversionContext) -> Path | None:
    """The folder for scratch files: the context's, when it exists (else the system's)."""
    return context.scratch_dir if context.scratch_dir and Path(context.scratch_dir).is_dir() else None


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


# --- COCO ---------------------------------------------------------------------------------------------------------

_COCO_FILE = "result_coco.json"


def convert_coco(source: TaskSource, out: BinaryIO, context: ConversionContext) -> None:
    """BRUSH_TO_COCO: `result_coco.json` with brush masks as polygons, plus polygon and rectangle regions.

    Images and annotations are spooled to scratch files as they are produced and joined at the end, so
    the JSON is never built in memory. A brush mask that cannot be decoded is left out, as the SDK does.
    """
    scratch = _scratch(context)
    categories: dict[str, dict[str, Any]] = {}
    with (
        tempfile.TemporaryFile(dir=scratch) as images,
        tempfile.TemporaryFile(dir=scratch) as annotations,
    ):
        image_rows = _JsonRows(images)
        annotation_rows = _JsonRows(annotations)
        for image_id, item in enumerate(_items(source, context.label_config)):
            _coco_item(image_id, item, categories, image_rows, annotation_rows)
        with Archive(out, scratch) as archive:
            archive.folder("images")
            with archive.stream(_COCO_FILE) as entry:
                entry.write(b'{"images": [\n')
                image_rows.copy_to(entry)
                entry.write(b'\n], "annotations": [\n')
                annotation_rows.copy_to(entry)
                entry.write(b'\n], "categories": ')
                entry.write(orjson.dumps(list(categories.values())))
                entry.write(b', "info": ')
                now = datetime.now()
                info = {
                    "year": now.year,
                    "version": "1.0",
                    "description": "Converted from Label Studio",
                    "contributor": "Label Studio Converter",
                    "date_created": str(now),
                }
                entry.write(orjson.dumps(info))
                entry.write(b"}\n")


class _JsonRows:
    """JSON values appended to a file as the items of a JSON array, one per line."""

    def __init__(self, file: BinaryIO):
        self.file = file
        self.count = 0

    def add(self, value: Any) -> None:
        self.file.write((b",\n" if self.count else b"") + orjson.dumps(value))
        self.count += 1

    def copy_to(self, target: IO[bytes]) -> None:
        self.file.seek(0)
        shutil.copyfileobj(self.file, target, 1024 * 1024)


def _category_color(name: str) -> str:
    """A colour for a category, stable for its name (the SDK picks a random one each time)."""
    return "#" + hashlib.md5(name.encode("utf-8"), usedforsecurity=False).hexdigest()[:6]


def _image_path(data: Any) -> str | None:
    if not isinstance(data, Mapping):
        return None
    for value in data.values():
        if isinstance(value, str) and value.lower().endswith(_IMAGE_SUFFIXES):
            return value
    return None


def _coco_item(
    image_id: int,
    item: _Item,
    categories: dict[str, dict[str, Any]],
    images: _JsonRows,
    annotations: _JsonRows,
) -> None:
    """Adds one annotation's image and its COCO annotations (as the SDK: only when it has any)."""
    path = _image_path(item.task.get("data"))
    if path is None or not item.outputs:
        return
    width = height = None
    annotator_name = annotator(item.annotation.get("completed_by", {}), "unknown")
    found = False
    for regions in item.outputs.values():
        for region in regions:
            if width is None and region.width is not None:
                width, height = region.width, region.height
            for category_id, (segmentation, bbox, area) in _coco_shapes(region, categories):
                annotations.add(
                    {
                        "id": annotations.count,
                        "image_id": image_id,
                        "category_id": category_id,
                        "segmentation": segmentation,
                        "area": area,
                        "bbox": bbox,
                        "iscrowd": 0,
                        "annotator": annotator_name,
                    }
                )
                found = True
    if found and width is not None and height is not None:
        images.add(
            {"id": image_id, "file_name": posixpath.basename(path), "path": path, "width": width, "height": height}
        )


def _category_id(label: str, categories: dict[str, dict[str, Any]]) -> int:
    if label not in categories:
        categories[label] = {
            "id": len(categories) + 1,
            "name": label,
            "supercategory": "",
            "color": _category_color(label),
            "metadata": {},
        }
    return categories[label]["id"]


def _coco_shapes(region: _Region, categories: dict[str, dict[str, Any]]) -> Iterator[tuple[int, tuple]]:
    """(category id, (segmentation, bbox, area)) for each label of a region and each shape it converts to."""
    value = region.value
    for key in ("brushlabels", "polygonlabels", "rectanglelabels", "labels"):
        if key in value:
            break
    else:
        return
    labels = _labels(value, key, [])
    shapes: list[tuple] | None = None
    for label in labels:
        category_id = _category_id(label, categories)
        if shapes is None:
            shapes = _shapes(region, key)
        for shape in shapes:
            yield category_id, shape


def _shapes(region: _Region, key: str) -> list[tuple]:
    value, width, height = region.value, region.width, region.height
    if key == "brushlabels" and "rle" in value:
        if width is None or height is None:
            return []
        return _mask_shapes(value["rle"], width, height)
    if key == "polygonlabels" and "points" in value:
        return _polygon_shapes(value["points"], width, height)
    if region.control_type.lower() == "rectanglelabels" or key == "labels":
        return _rectangle_shapes(value, width, height)
    return []


def _mask_shapes(rle: Any, width: Any, height: Any) -> list[tuple]:
    width, height = _dimension(width), _dimension(height)
    if width is None or height is None:
        return []
    try:
        mask = decode_mask(rle, width, height)
    except RleError:
        return []  # the SDK logs and skips a mask it cannot decode
    shapes = []
    for points in trace_outer_contours(mask):
        if len(points) >= 3:
            flat = [coordinate for point in points for coordinate in point]
            shapes.append(([flat], _bounding_box(points), polygon_area(points)))
    return shapes


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _polygon_shapes(points: Any, width: Any, height: Any) -> list[tuple]:
    if not (_number(width) and _number(height)) or not isinstance(points, list) or not points:
        return []
    pixels = []
    for point in points:
        if not (isinstance(point, list | tuple) and len(point) == 2 and all(_number(c) for c in point)):
            return []
        x, y = point[0] * width / 100, point[1] * height / 100
        if not (math.isfinite(x) and math.isfinite(y)):
            return []
        pixels.append((round(x), round(y)))
    flat = [coordinate for point in pixels for coordinate in point]
    return [([flat], _bounding_box(pixels), polygon_area(pixels))]


def _rectangle_shapes(value: Mapping[str, Any], width: Any, height: Any) -> list[tuple]:
    box = [value.get(key) for key in ("x", "y", "width", "height")]
    if not all(_number(v) for v in [*box, width, height]):
        return []
    x, y = box[0] * width / 100, box[1] * height / 100
    w, h = box[2] * width / 100, box[3] * height / 100
    return [([], [x, y, w, h], w * h)]
