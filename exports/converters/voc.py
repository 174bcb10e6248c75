"""Pascal VOC: one XML file of bounding boxes per annotated image under `Annotations/`, zipped.

The file names and XML elements follow label-studio-sdk 2.1.2's converter (`convert_to_voc`), which Label Studio
1.23.2 serves for this format; pixel values are cut to whole numbers as there (`xmax` = `xmin` + the cut width).
Tasks without annotations get no file, as there.

Deliberate differences: that converter loses images (Label Studio issue #3738, 494 annotated images gave 275
files), for three reasons that are fixed here:

- an annotation with no boxes (an image marked as holding no object) gets no file there; here it gets a file
  without `object` elements;
- a task whose first result is not a region with an image size (a Choices answer listed before the boxes) is
  skipped there; here the size comes from the first region that has one;
- images whose files share a name (`a/1.jpg` and `b/1.jpg`, the same URL in two tasks) overwrite each other
  there; here the later one gets `__task<id>` added to its name.

A rotated rectangle is written as the box that holds it (that converter ignores the angle).
"""

from __future__ import annotations

import posixpath
from typing import BinaryIO

from exports.converters.registry import ConversionContext
from exports.converters.source import TaskSource
from exports.converters.vision_common import (
    Item,
    UniqueNames,
    VisionTasks,
    cut_stem,
    file_name_of,
    rectangle,
    rectangle_corners,
    winning_item,
    xml_text,
)
from exports.converters.ziparchive import Archive

__all__ = ["write_voc"]


def write_voc(source: TaskSource, out: BinaryIO, context: ConversionContext) -> None:
    """Write the Pascal VOC archive: `Annotations/<image name>.xml` per annotated task and an empty `images/`."""
    tasks = VisionTasks(context.label_config)
    names = UniqueNames()
    with Archive(out, context.scratch_dir) as archive:
        archive.folder("images")
        folder_made = False
        for task in source.tasks():
            items = tasks.items(task)
            if not items:
                continue
            if not folder_made:
                archive.folder("Annotations")
                folder_made = True
            item = winning_item(items)
            if item is None or item.annotation is None:
                continue
            image_name = file_name_of(item.url)
            stem, extension = posixpath.splitext(image_name)
            stem, _ = names.claim(cut_stem(stem) or f"task-{item.task_id}", ".xml", item.task_id)
            archive.write(f"Annotations/{stem}.xml", _document(item, stem + extension))


def _document(item: Item, image_name: str) -> str:
    width, height = next(((r.width, r.height) for r in item.regions if r.width and r.height), (0, 0))
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<annotation>\n<folder>images</folder>\n',
        f"<filename>{xml_text(image_name)}</filename>\n",
        "<source>\n<database>MyDatabase</database>\n<annotation>COCO2017</annotation>\n<image>flickr</image>\n",
        f"<flickrid>NULL</flickrid>\n<annotator>{xml_text(item.annotator())}</annotator>\n</source>\n",
        "<owner>\n<flickrid>NULL</flickrid>\n<name>Label Studio</name>\n</owner>\n",
        f"<size>\n<width>{width}</width>\n<height>{height}</height>\n<depth>3</depth>\n</size>\n",
        "<segmented>0</segmented>\n",
    ]
    if width and height:
        parts.extend(_objects(item, width, height))
    parts.append("</annotation>")
    return "".join(parts)


def _objects(item: Item, width: float, height: float) -> list[str]:
    objects = []
    for region in item.regions:
        key = "rectanglelabels" if "rectanglelabels" in region.value else "labels"
        names = region.value.get(key)
        if not names or not region.is_rectangle:
            continue
        x, y, w, h, rotation = rectangle(region, item.task_id, item.annotation)
        left, top, box_w, box_h = x / 100 * width, y / 100 * height, w / 100 * width, h / 100 * height
        if rotation % 360:
            corners = rectangle_corners(left, top, box_w, box_h, rotation)
            xs, ys = [c[0] for c in corners], [c[1] for c in corners]
            left, top, box_w, box_h = min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)
        xmin, ymin = int(left), int(top)
        objects.append(
            f"<object>\n<name>{xml_text(str(names[0]))}</name>\n<pose>Unspecified</pose>\n<truncated>0</truncated>\n"
            f"<difficult>0</difficult>\n<bndbox>\n<xmin>{xmin}</xmin>\n<ymin>{ymin}</ymin>\n"
            f"<xmax>{xmin + int(box_w)}</xmax>\n<ymax>{ymin + int(box_h)}</ymax>\n</bndbox>\n</object>\n"
        )
    return objects
