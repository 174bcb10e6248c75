"""JSON_MIN: one flat record per annotation, built from tasks in Label Studio's export shape (no ORM).

The records are the ones label-studio-sdk 2.1.2's converter writes for `JSON_MIN`
(`label_studio_sdk/converter/converter.py`, `convert_to_json_min`), which Label Studio serves for this
format. A malformed result that would stop that converter with an exception (a region whose `value` is
not an object, a `from_name` that is not a string, `choices` that is not a list) is kept or skipped here
instead, so one bad region never fails a whole export; so is anything in a task's annotation list that
is not an annotation object.
"""

import enum
import re
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, BinaryIO, Final

import orjson

from exports.jsonarray import LINES, JsonArray

if TYPE_CHECKING:
    from exports.converters.registry import ConversionContext
    from exports.converters.source import TaskSource

__all__ = ["NO_ANNOTATION", "JsonMinConverter", "annotator", "convert", "to_json_min"]


class _Unseen(enum.Enum):
    """The type of `_UNSEEN`, so that checking for it narrows the type."""

    UNSEEN = enum.auto()


# Control types whose single value is unwrapped: one choice becomes the bare string, one text the bare text.
_SINGLE_VALUE_KEYS = {"Choices": "choices", "TextArea": "text"}
_CHAT_TYPES = ("Chat", "chatmessage")
_UNSEEN: Final = _Unseen.UNSEEN  # a `from_name` whose control has not been looked up yet
_BATCH = 256  # records encoded before they are written out
_EMPTY_ARRAY_END = b"\n\n]"  # what the SDK writes after `[` when there is no record (`LINES` writes `]`)
# Checked in this order, a plain dict (all parsed JSON) skips the slower abstract-class check.
_MAPPING = (dict, Mapping)
# Stands for the missing annotation of a task whose annotation list is empty (compared by identity).
NO_ANNOTATION: Mapping[str, Any] = MappingProxyType({})


class JsonMinConverter:
    """Turns parsed tasks into JSON_MIN records for one project's parsed label config."""

    def __init__(self, label_config: Mapping[str, Mapping[str, Any]]):
        self.schema = label_config
        self._patterns = [
            (name, pattern) for name, info in label_config.items() if (pattern := _name_pattern(name, info)) is not None
        ]
        self._tags: dict[str, str | None] = {}
        self._types: dict[str, str | None] = {}

    def records(self, task: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The task's records: one per annotation that is not cancelled, newest first.

        A task with no annotations at all gives one record of its data; a task whose annotations are all
        cancelled gives none (both as Label Studio).
        """
        records = []
        for annotation in self.exported_annotations(task):
            if annotation is NO_ANNOTATION:
                records.append(self._record(task, {}, annotation))
                continue
            record = self._record(task, self._outputs(annotation.get("result") or ()), annotation)
            if "agreement" in task:
                record["agreement"] = task["agreement"]
            records.append(record)
        return records

    def annotation_outputs(
        self, task: Mapping[str, Any]
    ) -> Iterator[tuple[Mapping[str, Any], dict[str, list[tuple[str, Mapping[str, Any]]]]]]:
        """Each exported annotation of the task (see `exported_annotations`) with its regions grouped by
        control name, each as (type, value) (see `_outputs`)."""
        for annotation in self.exported_annotations(task):
            yield annotation, self._outputs(annotation.get("result") or ()) if annotation is not NO_ANNOTATION else {}

    @staticmethod
    def exported_annotations(task: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """The annotations of `records`, in its order: not cancelled nor skipped, newest first.

        A task with an empty annotation list gives `NO_ANNOTATION` (an empty mapping), so the task's
        data still makes a record; a task without the key gives nothing.
        """
        if "annotations" in task:
            annotations = task["annotations"]
        elif "completions" in task:  # the pre-1.0 name, still read by Label Studio's converter
            annotations = task["completions"]
        else:
            return []
        if not annotations:
            return [NO_ANNOTATION]
        if not isinstance(annotations, list):
            return []  # not annotations at all; Label Studio's converter would stop here
        # Anything but an object in the list is not an annotation and is passed over.
        kept: list[Mapping[str, Any]] = [
            a for a in annotations if isinstance(a, dict) and not (a.get("skipped") or a.get("was_cancelled"))
        ]
        if len(kept) > 1:
            kept.sort(key=_created_at_order, reverse=True)  # newest first; ties keep their order (a stable sort)
        return kept

    def tag_for(self, from_name: str) -> str | None:
        """The control a result's `from_name` belongs to: the same name, else the longest matching
        Repeater pattern (`labels_{{idx}}` for `labels_0`), else None."""
        if from_name not in self._tags:
            self._tags[from_name] = self._match(from_name)
        return self._tags[from_name]

    def _match(self, from_name: str) -> str | None:
        if from_name in self.schema:
            return from_name
        best, best_length = None, 0
        for name, pattern in self._patterns:
            # `match` anchors at the start only, as Label Studio's converter does.
            if pattern.match(from_name) and len(pattern.pattern) > best_length:
                best, best_length = name, len(pattern.pattern)
        return best

    def control_type(self, from_name: str) -> str | None:
        """The type of the control a `from_name` belongs to (see `tag_for`), None when it has none."""
        kind = self._types.get(from_name, _UNSEEN)
        if kind is _UNSEEN:
            tag = self.tag_for(from_name)
            kind = self._types[from_name] = self.schema[tag]["type"] if tag is not None else None
        return kind

    def region_type(self, region: Any) -> str | None:
        """The type a result region is exported under (its control's type), None when it is left out.

        Regions of unknown controls are left out, except chat messages and, in a config without control
        tags (custom interfaces), every region, typed by itself.
        """
        if not isinstance(region, _MAPPING):
            return None
        from_name = region.get("from_name")
        if not from_name or not isinstance(from_name, str):
            return None
        kind = self.control_type(from_name)
        if kind is not None:
            return kind
        if region.get("type") == "chatmessage":
            return "chatmessage"
        if not self.schema:
            return region.get("type") or "unknown"
        return None

    def _outputs(self, result: Iterable[Any]) -> dict[str, list[tuple[str, Mapping[str, Any]]]]:
        """Regions grouped by `from_name`, each as (its control's type, its value).

        The value is the region's own `value` object, not a copy (only read, and only while its task
        is), with any `type` key left out and the image size of the region added, as Label Studio's
        converter writes it.
        """
        outputs: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
        types = self._types
        for region in result:
            # `region_type`, inlined: this runs for every region of every exported annotation.
            if not isinstance(region, _MAPPING):
                continue
            from_name = region.get("from_name")
            if not from_name or not isinstance(from_name, str):
                continue
            kind = types.get(from_name, _UNSEEN)
            if kind is _UNSEEN:
                kind = self.control_type(from_name)
            sized = True
            if kind is None:
                if region.get("type") == "chatmessage":
                    kind, sized = "chatmessage", False  # outside the config: no image size, as Label Studio
                elif not self.schema:
                    kind = region.get("type") or "unknown"
                else:
                    continue
            value = region.get("value")
            if not isinstance(value, _MAPPING):
                value = {}
            elif "type" in value:
                value = {key: item for key, item in value.items() if key != "type"}
            if sized and ("original_width" in region or "original_height" in region):
                value = dict(value)
                if "original_width" in region:
                    value["original_width"] = region["original_width"]
                if "original_height" in region:
                    value["original_height"] = region["original_height"]
            group = outputs.get(from_name)
            if group is None:
                outputs[from_name] = [(kind, value)]
            else:
                group.append((kind, value))
        return outputs

    @staticmethod
    def _record(task: Mapping[str, Any], outputs: dict[str, list], annotation: Mapping[str, Any]) -> dict[str, Any]:
        data = task.get("data")
        record = dict(data) if isinstance(data, _MAPPING) else {}
        if task.get("id") is not None:
            record["id"] = task["id"]
        for name, values in outputs.items():
            if len(values) == 1 and values[0][0] in _SINGLE_VALUE_KEYS:
                # `_prettify` of one Choices/TextArea region, inlined (the commonest control by far).
                kind, value = values[0]
                single = value.get(_SINGLE_VALUE_KEYS[kind])
                record[name] = single[0] if isinstance(single, (list, str)) and len(single) == 1 else value
            else:
                record[name] = _prettify(values)
        record["annotator"] = annotator(annotation.get("completed_by", {}), keep_int_id=True)
        record["annotation_id"] = annotation.get("id")
        record["created_at"] = annotation.get("created_at")
        record["updated_at"] = annotation.get("updated_at")
        record["lead_time"] = annotation.get("lead_time")
        return record


def to_json_min(tasks: Iterable[Mapping[str, Any]], label_config: Mapping[str, Mapping[str, Any]]) -> Iterator[dict]:
    """JSON_MIN records of the tasks, in task order."""
    converter = JsonMinConverter(label_config)
    for task in tasks:
        yield from converter.records(task)


def convert(source: "TaskSource", out: BinaryIO, context: "ConversionContext") -> None:
    """Write the JSON_MIN file: a JSON array of records, each indented by two spaces, one task at a time.

    The layout is the SDK converter's `result.json` (written with `ujson`) byte for byte: the records in the
    `LINES` array layout (with no record, `[`, two line breaks, `]`), non-ASCII characters as UTF-8 and `/` as
    `\\/`. The one known difference is a float below 1e-4 with few digits, written `0.00001` where the SDK writes
    `1e-5`; both read back as the same number.
    """
    converter = JsonMinConverter(context.label_config)
    array = JsonArray(LINES)
    out.write(array.start())
    batch: list[bytes] = []  # encoded records, written a few hundred at a time
    for task in source.tasks():
        for record in converter.records(task):
            # A `/` occurs only inside JSON strings, where `\/` is the same character.
            batch.append(orjson.dumps(record, option=orjson.OPT_INDENT_2).replace(b"/", b"\\/"))
            if len(batch) >= _BATCH:
                out.write(array.add(batch))
                batch = []
    out.write(array.add(batch))
    out.write(array.end() if array.count else _EMPTY_ARRAY_END)


def _created_at_order(annotation: Mapping[str, Any]) -> tuple[int, Any]:
    """The sort key that puts annotations newest first (with `reverse=True`): `created_at` as written.

    For ISO times (or numbers) alone this is Label Studio's order. Mixed values, which make its converter stop
    with a TypeError, still sort: text after numbers, and a missing or null time counts as 0.
    """
    created = annotation.get("created_at")
    if isinstance(created, str):
        return (1, created)
    if isinstance(created, int | float) and not isinstance(created, bool):
        return (0, created)
    return (0, 0)


def _name_pattern(name: str, info: Mapping[str, Any]) -> re.Pattern | None:
    """A Repeater control's name as a regex (`labels_{{idx}}` → `labels_.*`), None for plain controls."""
    variables = info.get("regex")
    if not variables:
        return None
    pattern = name
    for variable, regex in variables.items():
        pattern = pattern.replace(variable, regex)
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _prettify(values: list[tuple[str, Mapping[str, Any]]]) -> Any:
    """A control's region values; one Choices/TextArea region with one value becomes that value."""
    out: list[Any] = []
    kind = None
    for kind, value in values:
        key = _SINGLE_VALUE_KEYS.get(kind)
        if key is not None:
            single = value.get(key)
            if isinstance(single, (list, str)) and len(single) == 1:
                out.append(single[0])
                continue
        out.append(value.get("chatmessage", value) if kind in _CHAT_TYPES else value)
    # The last region's type decides, as in Label Studio's converter.
    return out[0] if kind in _SINGLE_VALUE_KEYS and len(out) == 1 else out


def annotator(completed_by: Any, default: Any = None, *, keep_int_id: bool = False) -> Any:
    """The annotator as Label Studio's converters write it: an expanded user's email (`default` when it has
    none), else the user id as text (as a number with `keep_int_id`)."""
    if isinstance(completed_by, Mapping):
        return completed_by.get("email", default)
    if keep_int_id and isinstance(completed_by, int):
        return completed_by
    return str(completed_by)
