"""Every export format the service offers, in the order the formats list shows them.

A format names its converter by dotted path (`module:function`) so this table is the one place that
lists formats, while each converter lives in a module of its own and is imported only when used.

A converter is `convert(source: TaskSource, out: BinaryIO, context: ConversionContext) -> None`: it reads
tasks from `source` (each `source.tasks()` call is a fresh pass, so two passes are allowed, never a
list of all tasks) and writes the whole output file to `out` (a zip archive for multi-file formats).
It raises `ConversionError` with a readable reason (which task or annotation, what was wrong) when the
data cannot be converted.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any, BinaryIO

from exports.converters.source import TaskSource

__all__ = ["DEFAULT_MAX_MASK_PIXELS", "FORMATS", "ConversionContext", "ConversionError", "Format", "get_format"]

# The brush formats' bound on one decoded mask (settings.EXPORT_MAX_MASK_PIXELS; see there why this size).
DEFAULT_MAX_MASK_PIXELS = 100_000_000


class ConversionError(Exception):
    """The data cannot be converted to the format; the message is shown to the user as is."""


@dataclass(frozen=True)
class ConversionContext:
    label_config: Mapping[str, Mapping[str, Any]]  # projects.label_config.parse_label_config(...) output
    project_id: int
    scratch_dir: Path  # a private folder for intermediate files, removed after the conversion
    download_resources: bool = True
    # A task file's bytes for its URL, or a reason why they are not included (the WITH_IMAGES formats' images,
    # ASR_MANIFEST's audio, DOCLANG's page images).
    fetch_image: Callable[[str], tuple[bytes | None, str]] | None = None
    # CSV and TSV: prefix a text cell starting with =, +, -, @, tab or CR with `'` so spreadsheets do not run it as
    # a formula (OWASP's CSV injection advice); off by default, as Label Studio (settings.EXPORT_CSV_ESCAPE_FORMULAS).
    escape_formulas: bool = False
    # The brush formats refuse a mask of more pixels than this before decoding it (settings.EXPORT_MAX_MASK_PIXELS).
    max_mask_pixels: int = DEFAULT_MAX_MASK_PIXELS
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Format:
    name: str
    title: str
    description: str
    converter: str  # "module:function"
    extension: str
    content_type: str
    tags: tuple[str, ...] = ()

    def load(self) -> Callable[[TaskSource, BinaryIO, ConversionContext], None]:
        module, _, function = self.converter.partition(":")
        return getattr(import_module(module), function)


_IMAGE_TAGS = ("image segmentation", "object detection", "keypoints")
ZIP = "application/zip"

FORMATS: tuple[Format, ...] = (
    Format(
        "JSON",
        "JSON",
        "Every task with its data, annotations and predictions, exactly as the snapshot holds them.",
        "exports.converters.passthrough:convert_json",
        "json",
        "application/json",
    ),
    Format(
        "JSON_MIN",
        "JSON-MIN",
        "One flat record per annotation: the task data plus each control's value under its name.",
        "exports.converters.json_min:convert",
        "json",
        "application/json",
    ),
    Format(
        "CSV",
        "CSV",
        "One row per annotation in a comma-separated table, a column for each data field and control.",
        "exports.converters.tabular:convert_csv",
        "csv",
        "text/csv",
    ),
    Format(
        "TSV",
        "TSV",
        "The CSV table with tabs between the columns.",
        "exports.converters.tabular:convert_tsv",
        "tsv",
        "text/tab-separated-values",
    ),
    Format(
        "CONLL2003",
        "CoNLL 2003",
        "Tokens with their named-entity tags in IOB form, one token per line, for sequence labelling.",
        "exports.converters.conll:convert",
        "conll",
        "text/plain",
        ("sequence labeling", "text tagging", "named entity recognition"),
    ),
    Format(
        "COCO",
        "COCO",
        "An object detection and segmentation dataset in COCO's JSON layout: boxes, polygons and keypoints.",
        "exports.converters.vision:convert_coco",
        "zip",
        ZIP,
        _IMAGE_TAGS,
    ),
    Format(
        "COCO_WITH_IMAGES",
        "COCO with images",
        "The COCO dataset with the task images packed beside the annotations.",
        "exports.converters.vision:convert_coco_with_images",
        "zip",
        ZIP,
        _IMAGE_TAGS,
    ),
    Format(
        "VOC",
        "Pascal VOC XML",
        "One Pascal VOC XML file of bounding boxes per image.",
        "exports.converters.vision:convert_voc",
        "zip",
        ZIP,
        ("image segmentation", "object detection"),
    ),
    Format(
        "YOLO",
        "YOLO",
        "A text file of class ids and normalised boxes (or polygons, keypoints) per image, with the class list.",
        "exports.converters.vision:convert_yolo",
        "zip",
        ZIP,
        _IMAGE_TAGS,
    ),
    Format(
        "YOLO_WITH_IMAGES",
        "YOLO with images",
        "The YOLO dataset with the task images packed beside the label files.",
        "exports.converters.vision:convert_yolo_with_images",
        "zip",
        ZIP,
        _IMAGE_TAGS,
    ),
    Format(
        "YOLO_OBB",
        "YOLO OBB",
        "YOLO oriented boxes: each box as its four corner points, normalised, so rotated boxes keep their angle.",
        "exports.converters.vision:convert_yolo_obb",
        "zip",
        ZIP,
        ("image segmentation", "object detection"),
    ),
    Format(
        "YOLO_OBB_WITH_IMAGES",
        "YOLO OBB with images",
        "The YOLO OBB dataset with the task images packed beside the label files.",
        "exports.converters.vision:convert_yolo_obb_with_images",
        "zip",
        ZIP,
        ("image segmentation", "object detection"),
    ),
    Format(
        "BRUSH_TO_NUMPY",
        "Brush masks as NumPy",
        "Each brush mask decoded to a 2-D NumPy array file, one per region.",
        "exports.converters.brush.mask_files:convert_numpy",
        "zip",
        ZIP,
        ("image segmentation",),
    ),
    Format(
        "BRUSH_TO_PNG",
        "Brush masks as PNG",
        "Each brush mask decoded to a greyscale PNG image, one per region.",
        "exports.converters.brush.mask_files:convert_png",
        "zip",
        ZIP,
        ("image segmentation",),
    ),
    Format(
        "ASR_MANIFEST",
        "ASR manifest",
        "Audio transcriptions as a JSON-lines manifest of audio path, duration and text, for speech models.",
        "exports.converters.asr:convert",
        "zip",
        ZIP,
        ("speech recognition",),
    ),
    Format(
        "BRUSH_TO_COCO",
        "Brush masks as COCO",
        "Brush masks traced into COCO polygons for segmentation training.",
        "exports.converters.brush.coco:convert_coco",
        "zip",
        ZIP,
        ("image segmentation", "brush annotations"),
    ),
    Format(
        "DOCLANG",
        "DocLang archive",
        "Document annotations packed as DocLang archives (document XML with its page image).",
        "exports.converters.doclang:convert",
        "zip",
        ZIP,
        ("document", "doclang"),
    ),
    # Beyond Label Studio: after its formats, so each of those keeps its place in the formats list.
    Format(
        "JSONL",
        "JSON Lines",
        "Every task exactly as the JSON format holds it, one task per line (JSON Lines), to read a task at a time.",
        "exports.converters.passthrough:convert_jsonl",
        "jsonl",
        # The JSON Lines convention (jsonlines.org) that names the format and its .jsonl extension.
        "application/jsonl",
    ),
)

_BY_NAME = {fmt.name: fmt for fmt in FORMATS}


def get_format(name: str) -> Format | None:
    return _BY_NAME.get(name)
