"""The image dataset formats of the registry: COCO, Pascal VOC, YOLO and YOLO OBB, each also with the images.

Each function is a registry converter (`convert(source, out, context)`) writing a zip archive to `out`. The
formats themselves live in `coco.py`, `voc.py` and `yolo.py`; what they share is in `vision_common.py`. The
*_WITH_IMAGES variants pack each task's image beside the annotations when the service may read it (see
`images.py`), using `context.fetch_image` or, when the job gives none, a fetcher built from the settings that reads
no upload (it knows no organization).
"""

from typing import BinaryIO

from exports.converters.coco import write_coco
from exports.converters.images import ImageFetcher, image_fetcher
from exports.converters.registry import ConversionContext
from exports.converters.source import TaskSource
from exports.converters.voc import write_voc
from exports.converters.yolo import write_yolo

__all__ = [
    "convert_coco",
    "convert_coco_with_images",
    "convert_voc",
    "convert_yolo",
    "convert_yolo_obb",
    "convert_yolo_obb_with_images",
    "convert_yolo_with_images",
]


def _fetcher(context: ConversionContext) -> ImageFetcher:
    if context.fetch_image is not None:
        return context.fetch_image
    from django.conf import settings

    # No organization is known here, so no upload is read (`exports.converting` passes one that knows it).
    return image_fetcher(settings, project_ids=())


def convert_coco(source: TaskSource, out: BinaryIO, context: ConversionContext) -> None:
    """COCO `result.json` with an empty `images/` folder."""
    write_coco(source, out, context)


def convert_coco_with_images(source: TaskSource, out: BinaryIO, context: ConversionContext) -> None:
    """COCO with the task images under `images/`; `file_name` points at them."""
    write_coco(source, out, context, fetch_images=_fetcher(context))


def convert_voc(source: TaskSource, out: BinaryIO, context: ConversionContext) -> None:
    """Pascal VOC XML files under `Annotations/`."""
    write_voc(source, out, context)


def convert_yolo(source: TaskSource, out: BinaryIO, context: ConversionContext) -> None:
    """YOLO label files under `labels/`, with `classes.txt` and `notes.json`."""
    write_yolo(source, out, context, obb=False, fetch_images=None)


def convert_yolo_with_images(source: TaskSource, out: BinaryIO, context: ConversionContext) -> None:
    """YOLO with the task images under `images/`, each named like its label file."""
    write_yolo(source, out, context, obb=False, fetch_images=_fetcher(context))


def convert_yolo_obb(source: TaskSource, out: BinaryIO, context: ConversionContext) -> None:
    """YOLO OBB label files: every box as its four corners."""
    write_yolo(source, out, context, obb=True, fetch_images=None)


def convert_yolo_obb_with_images(source: TaskSource, out: BinaryIO, context: ConversionContext) -> None:
    """YOLO OBB with the task images under `images/`."""
    write_yolo(source, out, context, obb=True, fetch_images=_fetcher(context))
