"""Which export formats a project's label config can produce.

The rules are those of label-studio-sdk 2.1.2's `Converter._get_supported_formats`
(`label_studio_sdk/converter/converter.py`), which Label Studio's formats list and convert check use, applied
to the parsed config that `projects.label_config.parse_label_config` returns (the project's
`parsed_label_config`, the same dict Label Studio hands the SDK). Two differences, both where the SDK
breaks rather than decides: a config it cannot handle (a KeyPointLabels without RectangleLabels on a
non-image object makes it remove COCO twice and raise) still gets an answer here, and an unreadable
config is treated as one without controls. JSONL, a format of the service's own, is enabled for every config, as
JSON is.
"""

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from exports.converters.registry import FORMATS, Format
from projects import label_config as label_config_module

if TYPE_CHECKING:
    from projects.models import Project

__all__ = ["enabled_format_names", "format_choices", "label_config_of"]

# Formats any config can produce (the SDK never removes them; JSONL is the service's own).
_ALWAYS = ("JSON", "JSON_MIN", "CSV", "TSV", "JSONL")
_DOCLANG_CONTROLS = frozenset({"TextArea", "ReactCode", "CustomInterface"})
_COCO_YOLO = ("COCO", "COCO_WITH_IMAGES", "YOLO", "YOLO_WITH_IMAGES")
_YOLO_OBB = ("YOLO_OBB", "YOLO_OBB_WITH_IMAGES")
_BRUSH = ("BRUSH_TO_NUMPY", "BRUSH_TO_PNG", "BRUSH_TO_COCO")


def label_config_of(project: "Project") -> dict[str, dict[str, Any]]:
    """The project's parsed label config (`{}` when it cannot be read)."""
    return label_config_module.parse_label_config_or_empty(project.label_config)


def _data_keys(schema: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """The SDK's own notion of data keys: every object's `value`/`valueList` as written (without its `$`).

    Not `projects.label_config.data_keys`, which reduces `Title: $text` and `$text` to one key `text`:
    the SDK counts them as two, and counting is what decides here.
    """
    keys = set()
    for info in schema.values():
        for source in info.get("inputs") or ():
            for attribute in ("value", "valueList"):
                if attribute in source:
                    keys.add(source[attribute])
    return keys


def enabled_format_names(schema: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """Names of the registry's formats this parsed config can produce."""
    schema = schema or {}
    known = {fmt.name for fmt in FORMATS}
    supports_doclang = any(info.get("type") in _DOCLANG_CONTROLS for info in schema.values())
    if len(_data_keys(schema)) > 1:
        names = set(_ALWAYS)
        if supports_doclang:
            names.add("DOCLANG")
        return names & known

    outputs: set[str | None] = set()  # a control without a type adds None
    inputs: set[str] = set()
    is_mig = False  # multi-image grid: an object with a valueList
    for info in schema.values():
        outputs.add(info.get("type"))
        for source in info.get("inputs") or ():
            if source.get("valueList"):
                is_mig = True
            if source.get("type") == "Text" and source.get("valueType") == "url":
                continue  # the SDK ignores text objects loaded from a URL
            inputs.add(source.get("type"))

    names = set(known)
    if not supports_doclang:
        names.discard("DOCLANG")

    image = "Image" in inputs
    labels = "Labels" in outputs
    rectangle_labels = "RectangleLabels" in outputs
    polygon_labels = "PolygonLabels" in outputs
    keypoint_labels = "KeyPointLabels" in outputs
    rectangle = "Rectangle" in outputs

    if keypoint_labels and not rectangle_labels:  # COCO and YOLO categories come from RectangleLabels
        names.difference_update(_COCO_YOLO)
    if not ("Text" in inputs and labels):
        names.discard("CONLL2003")
    if is_mig or not (image and (rectangle_labels or (rectangle and labels))):
        names.discard("VOC")
    if is_mig or not (
        (image and (rectangle_labels or polygon_labels or keypoint_labels))
        or (rectangle and labels)
        or (polygon_labels and labels)
        or (keypoint_labels and labels)
    ):
        names.difference_update(_COCO_YOLO + _YOLO_OBB)
    if not (image and ("BrushLabels" in outputs or "brushlabels" in outputs or ("Brush" in outputs and labels))):
        names.difference_update(_BRUSH)
    if not (("Audio" in inputs or "AudioPlus" in inputs) and "TextArea" in outputs):
        names.discard("ASR_MANIFEST")
    if is_mig or ("Video" in inputs and "TimelineLabels" in outputs):
        names.difference_update(_YOLO_OBB)
    return names


def format_choices(schema: Mapping[str, Mapping[str, Any]], formats: Iterable[Format] = FORMATS) -> list[dict]:
    """The formats list as Label Studio shows it: `{name, title, description, tags?, disabled?}`.

    Enabled formats first, each group in registry order; `tags` only where a format has some and
    `disabled: true` only on formats the config cannot produce (both as Label Studio).
    """
    enabled = enabled_format_names(schema)
    items = []
    for fmt in formats:
        item: dict[str, Any] = {"name": fmt.name, "title": fmt.title, "description": fmt.description}
        if fmt.tags:
            item["tags"] = list(fmt.tags)
        if fmt.name not in enabled:
            item["disabled"] = True
        items.append(item)
    return sorted(items, key=lambda item: item.get("disabled", False))
