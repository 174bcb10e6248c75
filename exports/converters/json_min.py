"""JSON_MIN: one flat record per annotation, built from tasks in Label Studio's export shape (no ORM).

The records are the ones label-studio-sdk 2.1.2's converter writes for `JSON_MIN`
(`label_studio_sdk/converter/converter.py`, `convert_to_json_min`), which Label Studio serves for this
format. A malformed result that would stop that converter with an exception (a region whose `value` is
not an object, a `from_name` that is not a string, `choices` that is not a list) is kept or skipped here
instead, so one bad region never fails a whole export.
"""

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["JsonMinConverter", "to_json_min"]

# Control types whose single value is unwrapped: one choice becomes the bare string, one text the bare text.
_SINGLE_VALUE_KEYS = {"Choices": "choices", "TextArea": "text"}
_CHAT_TYPES = ("Chat", "chatmessage")


class JsonMinConverter:
    """Turns parsed tasks into JSON_MIN records for one project's parsed label config."""

    def __init__(self, label_config: Mapping[str, Mapping[str, Any]]):
        self.schema = label_config
        self._patterns = [
            (name, pattern) for name, info in label_config.items() if (pattern := _name_pattern(name, info)) is not None
        ]
        self._tags: dict[str, str | None] = {}

    def records(self, task: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """The task's records: one per annotation that is not cancelled, newest first.

        A task with no annotations at all gives one record of its data; a task whose annotations are all
        cancelled gives none (both as Label Studio).
        """
        if "annotations" in task:
            annotations = task["annotations"]
        elif "completions" in task:  # the pre-1.0 name, still read by Label Studio's converter
            annotations = task["completions"]
        else:
            return
        if not annotations:
            yield self._record(task, {}, {})
            return
        kept = [a for a in annotations if not (a.get("skipped", False) or a.get("was_cancelled", False))]
        # Newest first by the creation time as written (ISO text); ties keep their order (a stable sort).
        for annotation in sorted(kept, key=lambda a: a.get("created_at", 0), reverse=True):
            record = self._record(task, self._outputs(annotation.get("result") or []), annotation)
            if "agreement" in task:
                record["agreement"] = task["agreement"]
            yield record

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

    def _outputs(self, result: Iterable[Any]) -> dict[str, list[dict[str, Any]]]:
        """Region values grouped by `from_name`, each tagged with its control's type."""
        outputs: dict[str, list[dict[str, Any]]] = {}
        for region in result:
            if not isinstance(region, Mapping):
                continue
            from_name = region.get("from_name")
            if not from_name or not isinstance(from_name, str):
                continue
            tag = self.tag_for(from_name)
            value = region.get("value")
            value = dict(value) if isinstance(value, Mapping) else {}
            if tag is not None:
                value["type"] = self.schema[tag]["type"]
            elif region.get("type") == "chatmessage":
                value["type"] = "chatmessage"
                outputs.setdefault(from_name, []).append(value)
                continue
            elif not self.schema:
                # A config without control tags (custom interfaces) keeps every region, typed by itself.
                value["type"] = region.get("type") or "unknown"
            else:
                continue
            for key in ("original_width", "original_height"):
                if key in region:
                    value[key] = region[key]
            outputs.setdefault(from_name, []).append(value)
        return outputs

    @staticmethod
    def _record(task: Mapping[str, Any], outputs: dict[str, list], annotation: Mapping[str, Any]) -> dict[str, Any]:
        data = task.get("data")
        record = dict(data) if isinstance(data, Mapping) else {}
        if task.get("id") is not None:
            record["id"] = task["id"]
        for name, values in outputs.items():
            record[name] = _prettify(values)
        record["annotator"] = _annotator(annotation.get("completed_by", {}))
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


def _prettify(values: list[dict[str, Any]]) -> Any:
    """A control's regions without their type; one Choices/TextArea region with one value becomes that value."""
    out: list[Any] = []
    kind = None
    for value in values:
        item = dict(value)
        kind = item.pop("type")
        key = _SINGLE_VALUE_KEYS.get(kind)
        single = item.get(key) if key else None
        if isinstance(single, list | str) and len(single) == 1:
            out.append(single[0])
        elif kind in _CHAT_TYPES:
            out.append(item.get("chatmessage", item))
        else:
            out.append(item)
    # The last region's type decides, as in Label Studio's converter.
    return out[0] if kind in _SINGLE_VALUE_KEYS and len(out) == 1 else out


def _annotator(completed_by: Any) -> Any:
    """The annotator as Label Studio writes it: the user id, the email of an expanded user, else the text."""
    if isinstance(completed_by, Mapping):
        return completed_by.get("email")
    if isinstance(completed_by, int):
        return completed_by
    return str(completed_by)
