"""COCO: one `result.json` of images, categories and annotations (boxes, polygons, keypoints), zipped.

The layout, ids and coordinates follow label-studio-sdk 2.1.2's converter (`convert_to_coco`), which Label
Studio 1.23.2 serves for COCO. The JSON is written as the tasks stream by: images and annotations are added to
two JSON arrays in scratch files (the boxes and polygons of one item share a line) and copied into `result.json`
at the end, so memory does not grow with the task count.

Deliberate differences from that converter:

- Every item is listed in `images`, also one whose annotation holds only classifications (Choices); the converter
  leaves such images out.
- A rotated rectangle's box is computed in pixels; the converter turns it in percent units, which gives wrong
  boxes for images that are not square.
- The keypoint category lists its keypoints in the order of their coordinates (`model_index`); labels without a
  `model_index` are kept after the others instead of failing the export or being dropped.
- A region without `original_width`/`original_height` uses the image size when it is known.
- Categories are listed by id.

COCO with images: each image is packed once as `images/<name>` and `file_name` says so, also for an uploaded
or Local Storage file (which the converter can only name by its URL) and for an image left out (listed in
`images_not_included.json`). Its `width`/`height` are the packed image's; boxes keep the annotator's pixels.
Two different images with one name get `__task<id>` added to the later name instead of overwriting.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from exports.converters.images import ArchiveImages
from exports.converters.registry import ConversionContext
from exports.converters.source import TaskSource
from exports.converters.vision_common import (
    Categories,
    Item,
    Region,
    UniqueNames,
    VisionTasks,
    coordinates,
    file_name_of,
    iter_file,
    keypoint_order,
    points,
    polygon_area,
    rectangle,
    rectangle_box,
    sdk_image_path,
)
from exports.converters.ziparchive import Archive, Writer
from exports.jsonarray import LINES, JsonArray

__all__ = ["write_coco"]


class _ScratchArray:
    """A JSON array built in a scratch file while the tasks stream by, then copied into `result.json`."""

    def __init__(self, path: Path):
        self.path = path
        self.file = path.open("wb")
        self.array = JsonArray(LINES)
        self.count = 0  # items, which the ids count (a line may hold several)

    def append(self, element: Mapping[str, Any]) -> None:
        self.file.write(self.array.add([orjson.dumps(element)]))
        self.count += 1

    def extend(self, elements: Sequence[Mapping[str, Any]]) -> None:
        """Several items on one line, joined by a bare comma (one serialisation and one write, not one per item)."""
        if elements:
            self.file.write(self.array.prefix() + orjson.dumps(elements)[1:-1])
            self.count += len(elements)

    def close(self) -> None:
        self.file.close()

    def copy_to(self, result: Writer) -> None:
        result.write(self.array.start())
        for block in iter_file(self.path):
            result.write(block)
        result.write(self.array.end())


def write_coco(source: TaskSource, out: BinaryIO, context: ConversionContext, *, fetch_images: Any = None) -> None:
    """Write the COCO archive; with `fetch_images` (an image fetcher) the images are packed under `images/`."""
    writer = _CocoWriter(context)
    with Archive(out, context.scratch_dir) as archive:
        archive.folder("images")
        packer = ArchiveImages(archive, fetch_images, Path(context.scratch_dir)) if fetch_images else None
        names = UniqueNames()
        try:
            for task in source.tasks():
                for item in writer.tasks.items(task):
                    file_name, size = sdk_image_path(item.url), None
                    if packer is not None:
                        stem, extension = posixpath.splitext(file_name_of(item.url))
                        stem, new = names.claim(stem or f"task-{item.task_id}", extension, item.task_id, item.url)
                        file_name = f"images/{stem}{extension}"
                        size = packer.add(file_name, item.url, item.task_id) if new else packer.size_of(file_name)
                    writer.add(item, file_name, size)
        finally:
            writer.close()
            if packer is not None:
                packer.close()
        if packer is not None:
            packer.finish()
        with archive.stream("result.json") as result:
            writer.assemble(result)


class _CocoWriter:
    """Collects images and annotations in scratch files and assembles `result.json` from them."""

    def __init__(self, context: ConversionContext):
        self.tasks = VisionTasks(context.label_config)
        self.categories = Categories(context.label_config)
        has_keypoints = self.tasks.has_control("KeyPointLabels")
        self.kp_names = keypoint_order(context.label_config) if has_keypoints else []
        self.kp_position = {name: index for index, name in enumerate(self.kp_names)}
        self.kp_category = _merge_keypoint_categories(self.categories, self.kp_names) if self.kp_names else 0
        self.images = _ScratchArray(Path(context.scratch_dir) / "coco-images.jsonl")
        self.annotations = _ScratchArray(Path(context.scratch_dir) / "coco-annotations.jsonl")

    def close(self) -> None:
        self.images.close()
        self.annotations.close()

    def assemble(self, result: Writer) -> None:
        result.write(b'{"images": ')
        self.images.copy_to(result)
        result.write(b',\n"categories": ' + orjson.dumps(self.categories.listing()) + b',\n"annotations": ')
        self.annotations.copy_to(result)
        now = datetime.now()
        info = {
            "year": now.year,
            "version": "1.0",
            "description": "",
            "contributor": "Label Studio",
            "url": "",
            "date_created": str(now),
        }
        result.write(b',\n"info": ' + orjson.dumps(info) + b"}\n")

    def add(self, item: Item, file_name: str, size: tuple[float, float] | None) -> None:
        image_id = self.images.count
        size = size or item.size()
        width, height = size if size else (None, None)
        self.images.append({"width": width, "height": height, "id": image_id, "file_name": file_name})
        keypoints = []
        found: list[dict[str, Any]] = []
        next_id = self.annotations.count
        ids = self.categories.ids
        for region in item.regions:
            name = region.first_class
            if name is None:
                continue
            if region.is_keypoint:
                keypoints.append(region)
                continue
            category_id = ids[name] if name in ids else self.categories.id_for(name)
            region_w, region_h = region.width or width, region.height or height
            if not region_w or not region_h:
                continue  # no image size to turn percent into pixels (Label Studio's converter skips these too)
            if region.is_rectangle:
                x, y, w, h, rotation = rectangle(region, item.task_id, item.annotation)
                left, top, box_w, box_h = rectangle_box(x, y, w, h, rotation, region_w, region_h)
                segmentation, bbox, area = [], [left, top, box_w, box_h], box_w * box_h
            elif region.is_polygon:
                polygon = points(region, item.task_id, item.annotation)
                pixels = [(x / 100 * region_w, y / 100 * region_h) for x, y in polygon]
                xs, ys = [p[0] for p in pixels], [p[1] for p in pixels]
                bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
                segmentation = [[coordinate for point in pixels for coordinate in point]]
                area = polygon_area(xs, ys)
            else:
                continue
            found.append(
                {
                    "id": next_id + len(found),
                    "image_id": image_id,
                    "category_id": category_id,
                    "segmentation": segmentation,
                    "bbox": bbox,
                    "ignore": 0,
                    "iscrowd": 0,
                    "area": area,
                }
            )
        self.annotations.extend(found)
        if keypoints and self.kp_names:
            self.annotations.append(self._keypoints(item, keypoints, image_id, width, height))

    def _keypoints(self, item: Item, regions: list[Region], image_id: int, width: Any, height: Any) -> dict[str, Any]:
        """All keypoints of one item as one COCO annotation: `[x, y, visibility]` per keypoint name, in order."""
        position = self.kp_position
        values = [0] * (3 * len(self.kp_names))
        for region in regions:
            region_w, region_h = region.width or width, region.height or height
            if not region_w or not region_h:
                continue
            x, y = coordinates(region, ("x", "y"), item.task_id, item.annotation)
            for name in region.value.get("keypointlabels") or ():
                index = position.get(name)
                if index is not None:
                    values[3 * index : 3 * index + 3] = [round(x / 100 * region_w), round(y / 100 * region_h), 2]
        visible = [index for index in range(len(self.kp_names)) if values[3 * index + 2] > 0]
        if visible:
            xs = [values[3 * index] for index in visible]
            ys = [values[3 * index + 1] for index in visible]
            bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
        else:
            bbox = [0, 0, 0, 0]
        return {
            "id": self.annotations.count,
            "image_id": image_id,
            "category_id": self.kp_category,
            "keypoints": values,
            "num_keypoints": len(visible),
            "bbox": bbox,
            "iscrowd": 0,
        }


def _merge_keypoint_categories(categories: Categories, kp_names: list[str]) -> int:
    """Keypoint labels become one category named "default" that lists them, as Label Studio's converter does."""
    for name in kp_names:
        categories.ids.pop(name, None)
    merged = max(categories.ids.values(), default=-1) + 1
    categories.ids["default"] = merged
    categories.extra["default"] = {"supercategory": "default", "keypoints": kp_names, "skeleton": []}
    # The keypoint names map to the merged id but are not listed as categories of their own.
    for name in kp_names:
        categories.ids[name] = merged
    categories.hidden = set(kp_names)
    return merged
