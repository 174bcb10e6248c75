"""BRUSH_TO_COCO: `result_coco.json` with brush masks traced into polygons, plus polygon and rectangle regions."""

import hashlib
import math
import posixpath
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, BinaryIO

import orjson

from exports.converters.brush.contours import bounding_box, polygon_area, trace_outer_contours
from exports.converters.brush.items import Item, Region, dimension, exported_items, region_labels, scratch_folder
from exports.converters.brush.masks import MaskTooLarge, RleError, decode_mask
from exports.converters.json_min import annotator
from exports.converters.registry import ConversionContext, ConversionError
from exports.converters.source import TaskSource
from exports.converters.ziparchive import Archive, Writer
from exports.jsonarray import LINES, JsonArray

__all__ = ["convert_coco"]

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
_COCO_FILE = "result_coco.json"


def convert_coco(source: TaskSource, out: BinaryIO, context: ConversionContext) -> None:
    """BRUSH_TO_COCO: `result_coco.json` with brush masks as polygons, plus polygon and rectangle regions.

    Images and annotations are spooled to scratch files as they are produced and joined at the end, so
    the JSON is never built in memory. A brush mask that cannot be decoded is left out, as the SDK does; one of
    more than `context.max_mask_pixels` pixels fails the conversion.
    """
    scratch = scratch_folder(context)
    categories: dict[str, dict[str, Any]] = {}
    with (
        tempfile.TemporaryFile(dir=scratch) as images,
        tempfile.TemporaryFile(dir=scratch) as annotations,
    ):
        image_rows = _ScratchArray(images)
        annotation_rows = _ScratchArray(annotations)
        for image_id, item in enumerate(exported_items(source, context.label_config)):
            try:
                _coco_item(image_id, item, categories, image_rows, annotation_rows, context.max_mask_pixels)
            except MaskTooLarge as exc:
                raise ConversionError(f"{item.label}: {exc}") from None
        with Archive(out, scratch) as archive:
            archive.folder("images")
            with archive.stream(_COCO_FILE) as entry:
                entry.write(b'{"images": ')
                image_rows.copy_to(entry)
                entry.write(b', "annotations": ')
                annotation_rows.copy_to(entry)
                entry.write(b', "categories": ')
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


class _ScratchArray:
    """A JSON array built in a scratch file while the tasks stream by, then copied into the result."""

    def __init__(self, file: BinaryIO):
        self.file = file
        self.array = JsonArray(LINES)

    @property
    def count(self) -> int:
        return self.array.count

    def add(self, value: Any) -> None:
        self.file.write(self.array.add([orjson.dumps(value)]))

    def copy_to(self, target: Writer) -> None:
        target.write(self.array.start())
        self.file.seek(0)
        shutil.copyfileobj(self.file, target, 1024 * 1024)
        target.write(self.array.end())


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
    item: Item,
    categories: dict[str, dict[str, Any]],
    images: _ScratchArray,
    annotations: _ScratchArray,
    max_pixels: int,
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
            for category_id, (segmentation, bbox, area) in _coco_shapes(region, categories, max_pixels):
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


def _coco_shapes(region: Region, categories: dict[str, dict[str, Any]], max_pixels: int) -> Iterator[tuple[int, tuple]]:
    """(category id, (segmentation, bbox, area)) for each label of a region and each shape it converts to."""
    value = region.value
    for key in ("brushlabels", "polygonlabels", "rectanglelabels", "labels"):
        if key in value:
            break
    else:
        return
    labels = region_labels(value, key, [])
    shapes: list[tuple] | None = None
    for label in labels:
        category_id = _category_id(label, categories)
        if shapes is None:
            shapes = _shapes(region, key, max_pixels)
        for shape in shapes:
            yield category_id, shape


def _shapes(region: Region, key: str, max_pixels: int) -> list[tuple]:
    value, width, height = region.value, region.width, region.height
    if key == "brushlabels" and "rle" in value:
        if width is None or height is None:
            return []
        return _mask_shapes(value["rle"], width, height, max_pixels)
    if key == "polygonlabels" and "points" in value:
        return _polygon_shapes(value["points"], width, height)
    if region.control_type.lower() == "rectanglelabels" or key == "labels":
        return _rectangle_shapes(value, width, height)
    return []


def _mask_shapes(rle: Any, width: Any, height: Any, max_pixels: int) -> list[tuple]:
    width, height = dimension(width), dimension(height)
    if width is None or height is None:
        return []
    try:
        mask = decode_mask(rle, width, height, max_pixels=max_pixels)  # MaskTooLarge passes through
    except RleError:
        return []  # the SDK logs and skips a mask it cannot decode
    shapes = []
    for points in trace_outer_contours(mask):
        if len(points) >= 3:
            flat = [coordinate for point in points for coordinate in point]
            shapes.append(([flat], bounding_box(points), polygon_area(points)))
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
    return [([flat], bounding_box(pixels), polygon_area(pixels))]


def _rectangle_shapes(value: Mapping[str, Any], width: Any, height: Any) -> list[tuple]:
    box = [value.get(key) for key in ("x", "y", "width", "height")]
    if not all(_number(v) for v in [*box, width, height]):
        return []
    x, y = box[0] * width / 100, box[1] * height / 100
    w, h = box[2] * width / 100, box[3] * height / 100
    return [([], [x, y, w, h], w * h)]
