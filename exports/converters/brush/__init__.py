"""BRUSH_TO_NUMPY, BRUSH_TO_PNG and BRUSH_TO_COCO: brush masks decoded from Label Studio's RLE.

The output matches what label-studio-sdk 2.1.2's converter writes for these formats
(`label_studio_sdk/converter/brush.py` and `converter/exports/brush_to_coco.py`), which Label Studio
1.23.2 serves as a zip of the converter's folder:

- NUMPY / PNG (`mask_files`): one file per brush region of every annotation that is not cancelled, named
  `task-<task id>-annotation-<annotation id>-by-<annotator>-<from_name>-<labels joined by ->-<n>`
  (`n` counts regions with the same name within one control of one annotation), holding the mask's alpha
  channel as a `uint8` array of shape (height, width): an `.npy` file, or a greyscale (mode `L`) PNG.
- COCO (`coco`): `result_coco.json` (and the empty `images/` folder the SDK creates), with one COCO image per
  annotation, brush masks traced into polygons, and polygon and rectangle regions converted as well.

`items` reads the annotations both writers convert, `masks` decodes the RLE and writes PNGs, `contours` traces
a mask's outlines. Masks are decoded and written one at a time, so memory holds one task and one mask, never
the export; a mask of more than `context.max_mask_pixels` pixels (EXPORT_MAX_MASK_PIXELS) fails the conversion,
naming its task and annotation, before it is decoded.
"""

from exports.converters.brush.coco import convert_coco
from exports.converters.brush.contours import polygon_area, trace_outer_contours
from exports.converters.brush.mask_files import convert_numpy, convert_png
from exports.converters.brush.masks import MaskTooLarge, RleError, decode_mask, decode_rle, greyscale_png

__all__ = [
    "MaskTooLarge",
    "RleError",
    "convert_coco",
    "convert_numpy",
    "convert_png",
    "decode_mask",
    "decode_rle",
    "greyscale_png",
    "polygon_area",
    "trace_outer_contours",
]
