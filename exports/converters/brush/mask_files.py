"""BRUSH_TO_NUMPY and BRUSH_TO_PNG: a zip of one file per brush region, its decoded mask as `.npy` or PNG."""

import io
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np

from exports.converters.brush.items import Item, Region, dimension, exported_items, region_labels, scratch_folder
from exports.converters.brush.masks import MaskTooLarge, RleError, decode_mask, greyscale_png
from exports.converters.json_min import annotator
from exports.converters.registry import ConversionContext, ConversionError
from exports.converters.source import TaskSource
from exports.converters.ziparchive import Archive

__all__ = ["convert_numpy", "convert_png"]

# Control types whose regions carry brush masks, with the value key that holds their labels.
_MASK_LABEL_KEYS = {"brushlabels": "brushlabels", "labels": "labels"}
_NO_LABEL = "no_label"


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


def _mask_files(item: Item, suffix: str) -> Iterator[tuple[str, Region]]:
    """(file name, region) for every brush region of the item, in result order."""
    by = _annotator_for_name(item.annotation.get("completed_by", {}))
    prefix = f"task-{item.task.get('id')}-annotation-{item.annotation.get('id')}-by-{by}-"
    for from_name, regions in item.outputs.items():
        counters: dict[str, int] = {}
        for region in regions:
            key = _MASK_LABEL_KEYS.get(region.control_type.lower())
            if key is None or "rle" not in region.value:
                continue
            name = f"{from_name}-{'-'.join(region_labels(region.value, key, [_NO_LABEL]))}"
            number = counters.get(name, 0)
            counters[name] = number + 1
            yield (prefix + f"{name}-{number}").replace("/", "-").replace("\\", "-") + suffix, region


def _decoded(item: Item, region: Region, max_pixels: int) -> np.ndarray:
    width, height = dimension(region.width), dimension(region.height)
    where = f"{item.label}, brush region {region.result_id!r} of '{region.from_name}'"
    if width is None or height is None:
        raise ConversionError(
            f"{where}: original_width and original_height must be positive integers "
            f"(got {region.width!r} and {region.height!r})."
        )
    try:
        return decode_mask(region.value["rle"], width, height, max_pixels=max_pixels)
    except MaskTooLarge as exc:
        raise ConversionError(f"{item.label}: {exc}") from None
    except RleError as exc:
        raise ConversionError(f"{where}: the brush mask cannot be decoded: {exc}.") from None


def _write_masks(source: TaskSource, out: BinaryIO, context: ConversionContext, suffix: str) -> None:
    written = 0
    # `Archive` deflates at level 1: masks are long runs, so that already shrinks them about 25 times.
    with Archive(out, scratch_folder(context)) as archive:
        task_files: dict[str, tuple[Item, Region]] = {}
        current_task: Any = None
        for item in exported_items(source, context.label_config):
            if item.task is not current_task:
                written += _flush_masks(archive, task_files, suffix, context.max_mask_pixels)
                current_task = item.task
            # Within a task a later region with the same file name replaces the earlier one, as files do.
            for file_name, region in _mask_files(item, suffix):
                task_files[file_name] = (item, region)
        written += _flush_masks(archive, task_files, suffix, context.max_mask_pixels)
    if not written:
        raise ConversionError(
            "No converted file found, probably there are no annotations in the export snapshot: "
            "no annotation has a brush region with an RLE mask."
        )


def _flush_masks(archive: Archive, task_files: dict[str, tuple[Item, Region]], suffix: str, max_pixels: int) -> int:
    for file_name, (item, region) in task_files.items():
        mask = _decoded(item, region, max_pixels)
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
