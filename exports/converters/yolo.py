"""YOLO and YOLO OBB: a label file per image under `labels/`, with `classes.txt` and `notes.json`, zipped.

The file names, class ids and line format follow label-studio-sdk 2.1.2's converter (`convert_to_yolo` and
`converter/exports/yolo.py`), which Label Studio 1.23.2 serves for these formats: a line per class name of a
region, `class x_center y_center width height` for boxes (OBB: `class x1 y1 x2 y2 x3 y3 x4 y4`, the corners
turned about the top-left one), `class x1 y1 x2 y2 ...` for polygons, all divided by the image size. With
KeyPointLabels in the config, a line is a box of a RectangleLabels class followed by `x y visibility` for each
keypoint whose `parentID` is that box.

Deliberate differences from that converter:

- No label file is lost: two images whose files share a name (the same URL in two tasks, or `a/1.jpg` and
  `b/1.jpg`) get `__task<id>` added to the later name instead of overwriting the earlier file.
- `classes.txt` lists class `i` on line `i`, so labels with a `category` attribute keep their ids (the converter
  lists classes in another order, Label Studio issue #6416); a gap in the ids is filled with `unused_class_<i>`.
- A rotated rectangle in plain YOLO is written as the box that holds it; the converter ignores the angle.
- In YOLO OBB a rectangle without a `rotation` key is written unrotated; the converter leaves it out.
- With images, a task whose image cannot be included keeps its label file (listed in `images_not_included.json`).
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from datetime import datetime
from typing import Any, BinaryIO

import orjson

from exports.converters.images import ArchiveImages, ImageFetcher
from exports.converters.registry import ConversionContext
from exports.converters.source import TaskSource
from exports.converters.vision_common import (
    Categories,
    Item,
    Region,
    UniqueNames,
    VisionTasks,
    coordinates,
    cut_stem,
    file_name_of,
    keypoint_order,
    labels_for_yolo,
    points,
    rectangle,
    rectangle_box,
    rectangle_corners,
    winning_item,
)
from exports.converters.ziparchive import Archive

__all__ = ["write_yolo"]


def write_yolo(
    source: TaskSource, out: BinaryIO, context: ConversionContext, *, obb: bool, fetch_images: ImageFetcher | None
) -> None:
    """Write the YOLO (or YOLO OBB) archive; with `fetch_images` the images are packed under `images/`."""
    tasks = VisionTasks(context.label_config)
    kp_names = keypoint_order(context.label_config) if tasks.has_control("KeyPointLabels") else []
    categories = _keypoint_categories(context.label_config, kp_names) if kp_names else Categories(context.label_config)
    names = UniqueNames()
    with Archive(out, context.scratch_dir) as archive:
        archive.folder("images")
        archive.folder("labels")
        packer = ArchiveImages(archive, fetch_images, context.scratch_dir) if fetch_images else None
        try:
            for task in source.tasks():
                items = tasks.items(task)
                if not items:
                    continue
                url, task_id = items[0].url, items[0].task_id
                stem, extension = posixpath.splitext(file_name_of(url))
                stem, _ = names.claim(cut_stem(stem) or f"task-{task_id}", ".txt", task_id)
                size = None
                if packer is not None:
                    size = packer.add(f"images/{stem}{extension}", url, task_id)
                item = winning_item(items)
                assert item is not None  # `items` is not empty
                if kp_names:
                    text = _keypoint_lines(item, categories, kp_names)
                else:
                    text = "".join(_lines(item, categories, obb, size))
                archive.write(f"labels/{stem}.txt", text)
        finally:
            if packer is not None:
                packer.close()
        if packer is not None:
            packer.finish()
        archive.write("classes.txt", _classes_text(categories))
        notes = {
            "categories": categories.listing(),
            "info": {"year": datetime.now().year, "version": "1.0", "contributor": "Label Studio"},
        }
        archive.write("notes.json", orjson.dumps(notes, option=orjson.OPT_INDENT_2))


def _keypoint_categories(label_config: Mapping[str, Mapping[str, Any]], kp_names: list[str]) -> Categories:
    """With keypoints, the classes are the RectangleLabels labels in config order, each listing the keypoints."""
    categories = Categories({})
    for info in label_config.values():
        if info.get("type") == "RectangleLabels":
            for name in info.get("labels") or []:
                if name not in categories.ids:
                    categories.ids[name] = len(categories.ids)
                    categories.extra[name] = {"keypoints": kp_names}
    return categories


def _lines(item: Item, categories: Categories, obb: bool, size: tuple[int, int] | None) -> list[str]:
    lines: list[str] = []
    for region in item.regions:
        class_names = labels_for_yolo(region)
        if not class_names:
            continue
        class_ids = [categories.id_for(name) for name in class_names]
        if region.is_rectangle:
            values = _rectangle(region, item, obb, size)
        elif region.is_polygon:
            polygon = points(region, item.task_id, item.annotation)
            values = [coordinate / 100 for point in polygon for coordinate in point]
        else:
            continue
        tail = " ".join(map(str, values))
        lines.extend(f"{class_id} {tail}\n" for class_id in class_ids)
    return lines


def _rectangle(region: Region, item: Item, obb: bool, size: tuple[int, int] | None) -> list[float]:
    x, y, w, h, rotation = rectangle(region, item.task_id, item.annotation)
    width = region.width or (size[0] if size else None) or 100
    height = region.height or (size[1] if size else None) or 100
    if obb:
        corners = rectangle_corners(x / 100 * width, y / 100 * height, w / 100 * width, h / 100 * height, rotation)
        return [value for cx, cy in corners for value in (cx / width, cy / height)]
    if not rotation % 360:
        return [(x + w / 2) / 100, (y + h / 2) / 100, w / 100, h / 100]
    left, top, box_w, box_h = rectangle_box(x, y, w, h, rotation, width, height)
    return [(left + box_w / 2) / width, (top + box_h / 2) / height, box_w / width, box_h / height]


def _keypoint_lines(item: Item, categories: Categories, kp_names: list[str]) -> str:
    """Boxes with their keypoints: `class xc yc w h` then `x y v` per keypoint name (0 0 0 when absent)."""
    boxes: dict[Any, tuple[int, list[float], dict[str, tuple[float, float, int]]]] = {}
    for region in item.regions:
        names = region.value.get("rectanglelabels")
        if not names or not region.is_rectangle or names[0] not in categories.ids:
            continue
        x, y, w, h, rotation = rectangle(region, item.task_id, item.annotation)
        if rotation % 360:
            width, height = region.width or 100, region.height or 100
            left, top, box_w, box_h = rectangle_box(x, y, w, h, rotation, width, height)
            geometry = [(left + box_w / 2) / width, (top + box_h / 2) / height, box_w / width, box_h / height]
        else:
            geometry = [x / 100 + w / 100 / 2, y / 100 + h / 100 / 2, w / 100, h / 100]
        boxes[region.region_id] = (categories.ids[names[0]], geometry, {})
    for region in item.regions:
        names = region.value.get("keypointlabels")
        if not names or region.parent_id not in boxes:
            continue
        x, y = coordinates(region, ("x", "y"), item.task_id, item.annotation)
        boxes[region.parent_id][2][names[0]] = (x / 100, y / 100, 2)
    lines = []
    for class_id, geometry, keypoints in boxes.values():
        values: list[Any] = [class_id, *geometry]
        for name in kp_names:
            values.extend(keypoints.get(name, (0.0, 0.0, 0)))
        lines.append(" ".join(str(value) for value in values))
    return "\n".join(lines)


def _classes_text(categories: Categories) -> str:
    by_id: dict[int, str] = {}
    for entry in categories.listing():
        by_id.setdefault(entry["id"], entry["name"])
    if not by_id:
        return ""
    return "".join(f"{by_id.get(number, f'unused_class_{number}')}\n" for number in range(max(by_id) + 1))
