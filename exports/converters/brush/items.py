"""What the brush formats read: each exported annotation of a task with its regions grouped by control."""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exports.converters.json_min import NO_ANNOTATION, JsonMinConverter
from exports.converters.registry import ConversionContext
from exports.converters.source import TaskSource

__all__ = ["Item", "Region", "dimension", "exported_items", "region_labels", "scratch_folder"]


@dataclass(frozen=True)
class Region:
    """One result of an annotation that belongs to a control of the label config."""

    from_name: str
    control_type: str
    value: Mapping[str, Any]
    result_id: Any
    width: Any
    height: Any


@dataclass(frozen=True)
class Item:
    """One annotation of a task (or the task itself when it has none), with its regions grouped by control."""

    task: Mapping[str, Any]
    annotation: Mapping[str, Any]
    outputs: dict[str, list[Region]]

    @property
    def label(self) -> str:
        return f"task {self.task.get('id')}, annotation {self.annotation.get('id')}"


def exported_items(source: TaskSource, label_config: Mapping[str, Mapping[str, Any]]) -> Iterator[Item]:
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
            yield Item(task, annotation, outputs)


def _outputs(
    annotation: Mapping[str, Any], matcher: JsonMinConverter, label_config: Mapping[str, Mapping[str, Any]]
) -> dict[str, list[Region]]:
    outputs: dict[str, list[Region]] = {}
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
            Region(
                from_name=from_name,
                control_type=str(label_config[tag].get("type") or ""),
                value=value,
                result_id=region.get("id"),
                width=region.get("original_width", value.get("original_width")),
                height=region.get("original_height", value.get("original_height")),
            )
        )
    return outputs


def region_labels(value: Mapping[str, Any], key: str, missing: list[str]) -> list[str]:
    """The labels under `key` of a region's value, as text; `missing` when the key is absent."""
    found = value.get(key)
    if found is None:
        return list(missing)
    if isinstance(found, list):
        return [str(label) for label in found]
    return [str(found)]


def dimension(number: Any) -> int | None:
    """An image width or height as a positive int (a whole float counts); None for anything else."""
    if isinstance(number, bool):
        return None
    if isinstance(number, int):
        return number if number > 0 else None
    if isinstance(number, float) and number.is_integer() and number > 0:
        return int(number)
    return None


def scratch_folder(context: ConversionContext) -> Path | None:
    """The folder for scratch files: the context's, when it exists (else the system's)."""
    return context.scratch_dir if context.scratch_dir and Path(context.scratch_dir).is_dir() else None
