"""Safe, pure-Python parser and validator of Label Studio XML labeling configs, matching Label Studio 1.23.2."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as safe_etree
from defusedxml import DefusedXmlException

__all__ = [
    "EMPTY_CONFIG_MESSAGE",
    "MAX_LABEL_CONFIG_BYTES",
    "MAX_LABEL_CONFIG_DEPTH",
    "LabelConfigError",
    "LabelConfigSyntaxError",
    "UsedTags",
    "check_compatible",
    "config_has_control_tags",
    "config_suitable_for_bulk_annotation",
    "control_weights",
    "data_keys",
    "data_types",
    "essential_data_changed",
    "labels_by_control",
    "parse_label_config",
    "parse_label_config_or_empty",
    "validate_label_config",
]

MAX_LABEL_CONFIG_BYTES = 1024 * 1024
# Label Studio itself crashes (RecursionError) somewhere above ~110 levels, so nothing deeper is usable there.
MAX_LABEL_CONFIG_DEPTH = 100
EMPTY_CONFIG_MESSAGE = "Label config is not set or is empty"
NON_UNIQUE_NAMES_MESSAGE = "Label config contains non-unique names"
# Label Studio parses configs with lxml, which refuses str input that declares an encoding.
ENCODING_DECLARATION_MESSAGE = (
    "Unicode strings with encoding declaration are not supported. "
    "Please use bytes input or XML fragments without declaration."
)

LABEL_TAGS = frozenset({"Label", "Choice", "Relation"})
NOT_CONTROL_TAGS = frozenset({"Filter"})
WEIGHTLESS_CONTROL_TYPES = frozenset({"Filter"})

_DYNAMIC_LABELS_VALUE = re.compile(r"\$[A-Za-z_]+")
_DATA_VARIABLE = re.compile(r"\$\w+")
_ENCODING_DECLARATION = re.compile(r"<\?xml[^>]+\s+encoding\s*=\s*[\"'][^\"']*[\"']")
# Label Studio finds names and toNames with these patterns in the re-serialized config.
_NAME_ATTRIBUTE = re.compile(r'name="([^"]*)"')
_TO_NAME_ATTRIBUTE = re.compile(r'toName="([^"]*)"')

_MIN_PLAYBACK_SPEED = 0.05
_MAX_PLAYBACK_SPEED = 10

# Control tags (lower-cased) that make a project unsuitable for bulk annotation in Label Studio.
_REGION_CONTROL_TAGS = frozenset(
    {
        "labels",
        "brush",
        "brushlabels",
        "magicwand",
        "ellipse",
        "ellipselabels",
        "keypoint",
        "keypointlabels",
        "polygon",
        "polygonlabels",
        "rectangle",
        "rectanglelabels",
        "videorectangle",
        "hypertextlabels",
        "paragraphlabels",
        "timeserieslabels",
    }
)
_CLASSIFICATION_CONTROL_TAGS = frozenset({"choices", "taxonomy", "datetime", "number", "rating", "textarea"})


class LabelConfigError(ValueError):
    """Invalid labeling config; str(exc) is the human message shown to API users."""


class LabelConfigSyntaxError(LabelConfigError):
    """The config is not well-formed XML (as opposed to well-formed XML that breaks a rule)."""


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def _load(xml: str) -> Element:
    """Parse config text into an element tree, refusing DTDs, entities, oversize and overly deep documents."""
    if not isinstance(xml, str):
        raise LabelConfigError("Label config must be a string")
    if len(xml) > MAX_LABEL_CONFIG_BYTES or len(xml.encode("utf-8", "surrogatepass")) > MAX_LABEL_CONFIG_BYTES:
        raise LabelConfigError(f"Label config is too large: the limit is {MAX_LABEL_CONFIG_BYTES} bytes")
    try:
        root = safe_etree.fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except ParseError as exc:
        raise LabelConfigSyntaxError(str(exc)) from exc
    except (DefusedXmlException, ValueError) as exc:
        raise LabelConfigError(str(exc)) from exc
    if _depth(root) > MAX_LABEL_CONFIG_DEPTH:
        raise LabelConfigError(f"Label config is nested too deeply: the limit is {MAX_LABEL_CONFIG_DEPTH} levels")
    return root


def _depth(root: Element) -> int:
    """Return the nesting depth of the tree (the root alone is 1) without recursion."""
    deepest = 0
    stack = [(root, 1)]
    while stack:
        element, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in element)
    return deepest


def _check_encoding_declaration(xml: str) -> None:
    """Reject an XML declaration with an encoding, which Label Studio cannot parse from text."""
    if _ENCODING_DECLARATION.match(xml):
        raise LabelConfigError(ENCODING_DECLARATION_MESSAGE)


# ---------------------------------------------------------------------------
# parsed_label_config
# ---------------------------------------------------------------------------


def _is_control(element: Element) -> bool:
    """Tell whether an element is a control tag: it has a name and a toName and is not a Filter."""
    attrs = element.attrib
    return bool(attrs.get("name") and attrs.get("toName")) and element.tag not in NOT_CONTROL_TAGS


def _is_object(element: Element) -> bool:
    """Tell whether an element is an object tag: it has a name and a value or valueList."""
    attrs = element.attrib
    return bool(attrs.get("name") and (attrs.get("value") or attrs.get("valueList")))


def _describe_control(element: Element, index_flags: list[str]) -> dict[str, Any]:
    """Build the control entry (type, to_name and the optional regex, conditionals and dynamic_labels keys)."""
    attrs = element.attrib
    info: dict[str, Any] = {"type": element.tag, "to_name": attrs["toName"].split(",")}
    for flag in index_flags:
        for target in info["to_name"]:
            if flag in target:
                info.setdefault("regex", {})[flag] = ".*"
    if attrs.get("perRegion") == "true":
        for attribute, kind in (("whenTagName", "tag"), ("whenLabelValue", "label"), ("whenChoiceValue", "choice")):
            if attrs.get(attribute):
                info["conditionals"] = {"type": kind, "name": attrs[attribute]}
                break
    if _DYNAMIC_LABELS_VALUE.fullmatch(attrs.get("value", "")) or attrs.get("apiUrl"):
        info["dynamic_labels"] = True
    return info


def _describe_object(element: Element) -> dict[str, Any]:
    """Build the input entry of an object tag: type, valueType (None when absent), then value or valueList."""
    attrs = element.attrib
    info: dict[str, Any] = {"type": element.tag, "valueType": attrs.get("valueType")}
    if "value" in attrs:
        info["value"] = attrs["value"].lstrip("$")
    else:
        info["valueList"] = attrs["valueList"].lstrip("$")
    return info


def _owning_control(element: Element, parents: dict[Element, Element], controls: Mapping[str, Any]) -> str | None:
    """Return the name of the nearest ancestor whose name is a control seen so far, however deep it is nested."""
    ancestor = parents.get(element)
    while ancestor is not None:
        name = ancestor.attrib.get("name")
        if name in controls:
            return name
        ancestor = parents.get(ancestor)
    return None


def _parse_tree(root: Element) -> dict[str, dict[str, Any]]:
    """Collect controls, their inputs and their labels from a parsed tree in document order."""
    parents = {child: parent for parent in root.iter() for child in parent}
    controls: dict[str, dict[str, Any]] = {}
    objects: dict[str, dict[str, Any]] = {}
    labels: dict[str, dict[str, dict[str, str]]] = {}
    index_flags: list[str] = []
    for element in root.iter():
        attrs = element.attrib
        if "indexFlag" in attrs:
            index_flags.append(attrs["indexFlag"])
        if _is_control(element):
            controls[attrs["name"]] = _describe_control(element, index_flags)
        elif _is_object(element):
            objects[attrs["name"]] = _describe_object(element)
        if element.tag not in LABEL_TAGS:
            continue
        owner = _owning_control(element, parents, controls)
        label = attrs.get("alias") or attrs.get("value") or attrs.get("valueList")
        if owner is not None and label:
            labels.setdefault(owner, {})[label] = dict(attrs)
    for name, info in controls.items():
        info["inputs"] = [dict(objects[target]) for target in info["to_name"] if target in objects]
        own_labels = labels.get(name, {})
        info["labels"] = list(own_labels)
        info["labels_attrs"] = own_labels
    return controls


def parse_label_config_or_empty(xml: str | None) -> dict[str, dict[str, Any]]:
    """The parsed config, or `{}` (no controls) for one that cannot be read; only a config stored around the
    API's validation can be unreadable, and readers of stored configs treat it as having no controls."""
    try:
        return parse_label_config(xml)
    except LabelConfigError:
        return {}


def parse_label_config(xml: str | None) -> dict[str, dict[str, Any]]:
    """Return parsed_label_config as Label Studio shows it on a project; raise LabelConfigError for unreadable XML."""
    if not xml:
        return {}
    root = _load(xml)
    _check_encoding_declaration(xml)
    return _parse_tree(root)


# ---------------------------------------------------------------------------
# Schema check, reproducing Label Studio's JSON-schema pass over the BadgerFish form of the config
# ---------------------------------------------------------------------------


def _from_attribute_text(text: str) -> Any:
    """Convert attribute or text content the way BadgerFish does: booleans, then ints, then finite floats."""
    if text.lower() == "true":
        return True
    if text.lower() == "false":
        return False
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def _badgerfish(element: Element) -> dict[str, Any]:
    """Convert an element into BadgerFish data: @attributes, $ for text, one key per child tag (a list if repeated)."""
    body: dict[str, Any] = {}
    for key, value in element.attrib.items():
        body["@" + key] = _from_attribute_text(value)
    if element.text and element.text.strip():
        body["$"] = _from_attribute_text(element.text)
    counts = Counter(child.tag for child in element)
    for child in element:
        converted = _badgerfish(child)[child.tag]
        if counts[child.tag] == 1:
            body[child.tag] = converted
        else:
            body.setdefault(child.tag, []).append(converted)
    return {element.tag: body}


def _wrap_single_choices(config: dict[str, Any]) -> dict[str, Any]:
    """Turn a lone Choice under Choices into a one-item list, walking View chains, as Label Studio does first."""
    if "Choices" in config:
        choices = config["Choices"]
        if isinstance(choices, dict) and "Choice" in choices and not isinstance(choices["Choice"], list):
            choices["Choice"] = [choices["Choice"]]
        elif isinstance(choices, list) and all("Choice" in item for item in choices):
            for item in choices:
                if not isinstance(item["Choice"], list):
                    item["Choice"] = [item["Choice"]]
    if "View" in config:
        if isinstance(config["View"], dict):
            config["View"] = _wrap_single_choices(config["View"])
        else:
            config["View"] = [_wrap_single_choices(view) for view in config["View"]]
    return config


def _python_repr(value: Any) -> str:
    """Render a value as Python 3.11 shows an OrderedDict-based BadgerFish value in error messages."""
    if isinstance(value, dict):
        if not value:
            return "OrderedDict()"
        pairs = ", ".join(f"({key!r}, {_python_repr(item)})" for key, item in value.items())
        return f"OrderedDict([{pairs}])"
    if isinstance(value, list):
        return "[" + ", ".join(_python_repr(item) for item in value) + "]"
    return repr(value)


def _is_type(value: Any, kind: str) -> bool:
    """Tell whether a BadgerFish value has a JSON-schema type."""
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class _Violation:
    """One schema violation: how to word it, the failing keyword, the relative path and nested alternatives."""

    describe: Callable[[], str]
    keyword: str
    path: tuple[str | int, ...]
    matches_type: bool
    context: list[_Violation] = field(default_factory=list)

    @property
    def message(self) -> str:
        """Word the violation only when shown, since it may quote a large part of the config."""
        return self.describe()

    def relevance(self) -> tuple[Any, ...]:
        """Rank violations: shallower, later path, non-alternative keyword, instance not matching the rule's type."""
        path_key = tuple((isinstance(step, str), step) for step in self.path)
        return (-len(self.path), path_key, self.keyword not in ("anyOf", "oneOf"), False, not self.matches_type)


def _prefixed(violations: Iterator[_Violation], step: str | int) -> Iterator[_Violation]:
    """Yield violations with one more leading path step."""
    for violation in violations:
        violation.path = (step, *violation.path)
        yield violation


def _violations(value: Any, rule: Mapping[str, Any]) -> Iterator[_Violation]:
    """Yield the violations of one rule, applying its keywords in order as a draft-06 validator would."""
    declared = rule.get("type")
    matches_type = declared is not None and _is_type(value, declared)
    for keyword, argument in rule.items():
        if keyword == "type" and not _is_type(value, argument):
            yield _Violation(partial(_type_message, value, argument), "type", (), False)
        elif keyword == "required" and isinstance(value, dict):
            for key in argument:
                if key not in value:
                    yield _Violation(partial(_required_message, key), "required", (), matches_type)
        elif keyword == "properties" and isinstance(value, dict):
            for key, sub_rule in argument.items():
                if key in value:
                    yield from _prefixed(_violations(value[key], sub_rule()), key)
        elif keyword == "items" and isinstance(value, list):
            for index, item in enumerate(value):
                yield from _prefixed(_violations(item, argument()), index)
        elif keyword == "anyOf":
            collected: list[_Violation] = []
            for alternative in argument:
                found = list(_violations(value, alternative()))
                if not found:
                    break
                collected.extend(found)
            else:
                yield _Violation(lambda: _not_any_message(value), "anyOf", (), matches_type, collected)
        elif keyword == "oneOf":
            yield from _one_of_violations(value, argument, matches_type)


def _one_of_violations(value: Any, alternatives: list[dict[str, Any]], matches_type: bool) -> Iterator[_Violation]:
    """Yield the oneOf violation: no alternative holds, or more than one does."""
    passing = [alternative for alternative in alternatives if not list(_violations(value, alternative))]
    if not passing:
        collected = [found for alternative in alternatives for found in _violations(value, alternative)]
        yield _Violation(lambda: _not_any_message(value), "oneOf", (), matches_type, collected)
    elif len(passing) > 1:
        described = ", ".join(repr(alternative) for alternative in [*passing[1:], passing[0]])
        yield _Violation(lambda: f"{_python_repr(value)} is valid under each of {described}", "oneOf", (), matches_type)


def _type_message(value: Any, kind: Any) -> str:
    """Word a failed type."""
    return f"{_python_repr(value)} is not of type {kind!r}"


def _required_message(key: Any) -> str:
    """Word a missing required property."""
    return f"{key!r} is a required property"


def _not_any_message(value: Any) -> str:
    """Word a failed anyOf or oneOf."""
    return f"{_python_repr(value)} is not valid under any of the given schemas"


def _string() -> dict[str, Any]:
    """Rule: a string."""
    return {"type": "string"}


def _scalar_value() -> dict[str, Any]:
    """Rule: a value attribute, which may be text, a boolean or a number after conversion."""
    return {"anyOf": [lambda: {"type": "string"}, lambda: {"type": "boolean"}, lambda: {"type": "number"}]}


def _one_or_many(item_rule: Any) -> Any:
    """Rule factory: one item or a list of items following item_rule."""
    return lambda: {"anyOf": [lambda: {"type": "array", "items": item_rule}, item_rule]}


def _single_or_list(item_rule: Any) -> Any:
    """Rule factory like _one_or_many, trying the single item first (the order decides which errors are shown)."""
    return lambda: {"anyOf": [item_rule, lambda: {"type": "array", "items": item_rule}]}


def _valued_tag() -> dict[str, Any]:
    """Rule: a Label or Choice, which needs a value."""
    return {"type": "object", "required": ["@value"], "properties": {"@value": _scalar_value, "$": _string}}


def _named_object_tag() -> dict[str, Any]:
    """Rule: an Image, Text or HyperText object, which needs a name and exactly one of value and valueList."""
    return {
        "type": "object",
        "oneOf": [{"required": ["@name", "@value"]}, {"required": ["@name", "@valueList"]}],
        "properties": {"@value": _scalar_value, "$": _string},
    }


def _choices_tag() -> dict[str, Any]:
    """Rule: a Choices control, which needs name, toName and choices (children, a dynamic value, or a View)."""
    return _label_set_tag("Choice", lambda: {"type": "array", "items": _valued_tag})


def _labels_tag() -> dict[str, Any]:
    """Rule: a Labels control, which needs name, toName and labels (children, a dynamic value, or a View)."""
    return _label_set_tag("Label", _one_or_many(_valued_tag))


def _label_set_tag(child_tag: str, child_rule: Any) -> dict[str, Any]:
    """Rule shared by Choices and Labels, whose option children are child_tag elements following child_rule."""
    return {
        "type": "object",
        "anyOf": [_requires("@name", "@toName", alternative) for alternative in (child_tag, "@value", "View")],
        "properties": {
            "@name": _string,
            "@toName": _string,
            "@value": _scalar_value,
            "$": _string,
            child_tag: child_rule,
            "View": _one_or_many(_view),
        },
    }


def _text_area_tag() -> dict[str, Any]:
    """Rule: a TextArea control, which needs name and toName."""
    return {
        "type": "object",
        "anyOf": [_requires("@name", "@toName")],
        "properties": {"@name": _string, "@toName": _string, "$": _string},
    }


def _number_tag() -> dict[str, Any]:
    """Rule: a Number control, which needs name and toName."""
    return {
        "type": "object",
        "oneOf": [{"required": ["@name", "@toName"]}],
        "properties": {"@name": _string, "@toName": _string, "$": _string},
    }


def _requires(*keys: str) -> Any:
    """Rule factory: the listed keys must be present."""
    return lambda: {"required": list(keys)}


def _view() -> dict[str, Any]:
    """Rule: a nested View and the tags checked directly inside it."""
    return {
        "type": "object",
        "properties": {
            "Labels": _one_or_many(_labels_tag),
            "Choices": _one_or_many(_choices_tag),
            "Label": _one_or_many(_valued_tag),
            "Choice": _one_or_many(_valued_tag),
            "Image": _one_or_many(_named_object_tag),
            "Text": _one_or_many(_named_object_tag),
            "HyperText": _one_or_many(_named_object_tag),
            "View": _one_or_many(_view),
            "TextArea": _one_or_many(_text_area_tag),
            "Number": _single_or_list(_number_tag),
        },
    }


def _root_view() -> dict[str, Any]:
    """Rule: the root View, which checks fewer direct children than a nested View."""
    return {
        "type": "object",
        "properties": {
            "Choices": _one_or_many(_choices_tag),
            "Labels": _one_or_many(_labels_tag),
            "View": _one_or_many(_view),
            "Image": _one_or_many(_named_object_tag),
            "Text": _one_or_many(_named_object_tag),
            "HyperText": _one_or_many(_named_object_tag),
            "TextArea": _one_or_many(_text_area_tag),
            "Number": _single_or_list(_number_tag),
        },
    }


def _document() -> dict[str, Any]:
    """Rule: the whole BadgerFish document; only a View root is checked."""
    return {"type": "object", "properties": {"View": _root_view}}


def _schema_message(root: Element) -> str | None:
    """Return Label Studio's 'Validation failed on ...' message for the most relevant violation, or None."""
    document = _wrap_single_choices(_badgerfish(root))
    found = list(_violations(document, _document()))
    if not found:
        return None
    best = max(found, key=_Violation.relevance)
    while best.context:
        ranked = sorted(best.context, key=_Violation.relevance)
        if len(ranked) > 1 and ranked[0].relevance() == ranked[1].relevance():
            break
        best = ranked[0]
    message = best.context[0].message if best.context else best.message
    path = "/".join(str(step) for step in best.path)
    return f"Validation failed on {path}: {message.replace('@', '')}"


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def _check_names(root: Element) -> None:
    """Check that names are unique and every toName target exists, on the re-serialized config like Label Studio."""
    serialized = safe_etree.tostring(root, encoding="unicode")
    names = _NAME_ATTRIBUTE.findall(serialized)
    if len(set(names)) != len(names):
        raise LabelConfigError(NON_UNIQUE_NAMES_MESSAGE)
    known = set(names)
    for to_name in _TO_NAME_ATTRIBUTE.findall(serialized):
        for target in to_name.split(","):
            if target not in known:
                raise LabelConfigError(f'toName="{target}" not found in names: {sorted(known)}')


def _attribute(element: Element, name: str) -> str | None:
    """Read an attribute by exact or lower-cased name, treating a blank value as missing."""
    value = element.attrib.get(name)
    if value is None:
        value = element.attrib.get(name.lower())
    if value is None or not value.strip():
        return None
    return value


def _video_speed_problems(element: Element) -> list[str]:
    """List the playback-speed problems of one Video object tag."""
    name = element.attrib.get("name")
    problems: list[str] = []
    speeds: dict[str, float] = {}
    for attribute in ("defaultPlaybackSpeed", "minPlaybackSpeed"):
        raw = _attribute(element, attribute)
        if raw is None:
            continue
        try:
            speeds[attribute] = float(raw)
        except ValueError:
            problems.append(f'Video tag "{name}": {attribute} must be a number, got "{raw}"')
    for attribute, speed in speeds.items():
        if not _MIN_PLAYBACK_SPEED <= speed <= _MAX_PLAYBACK_SPEED:
            problems.append(
                f'Video tag "{name}": {attribute} must be between {_MIN_PLAYBACK_SPEED} and {_MAX_PLAYBACK_SPEED}, '
                f"got {speed}"
            )
    default_speed = speeds.get("defaultPlaybackSpeed")
    min_speed = speeds.get("minPlaybackSpeed")
    if default_speed is not None and min_speed is not None and min_speed > default_speed:
        problems.append(
            f'Video tag "{name}": minPlaybackSpeed ({min_speed}) must not exceed defaultPlaybackSpeed ({default_speed})'
        )
    return problems


def _check_video_speeds(root: Element) -> None:
    """Check Video playback-speed attributes, reporting every problem at once."""
    videos: dict[str, Element] = {}
    for element in root.iter():
        if not _is_control(element) and _is_object(element) and element.tag.lower() == "video":
            videos[element.attrib["name"]] = element
    problems = [problem for element in videos.values() for problem in _video_speed_problems(element)]
    if problems:
        raise LabelConfigError("\n".join(problems))


def validate_label_config(xml: str | None) -> dict[str, dict[str, Any]]:
    """Validate a config as Label Studio does on project create/update and return its parsed_label_config."""
    if xml is None or (isinstance(xml, str) and not xml.strip()):
        raise LabelConfigError(EMPTY_CONFIG_MESSAGE)
    root = _load(xml)
    problem = _schema_message(root)
    if problem is not None:
        raise LabelConfigError(problem)
    _check_names(root)
    _check_encoding_declaration(xml)
    _check_video_speeds(root)
    return _parse_tree(root)


# ---------------------------------------------------------------------------
# Helpers over parsed configs
# ---------------------------------------------------------------------------


def control_weights(
    parsed: Mapping[str, Mapping[str, Any]], previous: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Return control_weights for a parsed config, keeping weights from previous where they are set."""
    previous = previous or {}
    weights: dict[str, dict[str, Any]] = {}
    for name, info in parsed.items():
        if info["type"] in WEIGHTLESS_CONTROL_TYPES:
            continue
        old = previous.get(name)
        old = old if isinstance(old, Mapping) else {}
        old_labels = old.get("labels")
        old_labels = old_labels if isinstance(old_labels, Mapping) else {}
        overall = old.get("overall")
        weights[name] = {
            "overall": 1.0 if overall is None else overall,
            "type": info["type"],
            "labels": {
                label: 1.0 if old_labels.get(label) is None else old_labels[label] for label in info.get("labels", [])
            },
        }
    return weights


def config_has_control_tags(parsed: Mapping[str, Any]) -> bool:
    """Tell whether a parsed config has at least one control tag (the project is ready for labeling)."""
    return len(parsed) > 0


def labels_by_control(parsed: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """Return {control name: [label values in config order]} for every control, possibly with no labels."""
    return {name: list(info.get("labels", [])) for name, info in parsed.items()}


def essential_data_changed(new: Mapping[str, Mapping[str, Any]], old: Mapping[str, Mapping[str, Any]]) -> bool:
    """Tell whether a new parsed config adds a control, changes a type or inputs, or drops a label of the old one."""
    for name, info in new.items():
        before = old.get(name)
        if before is None or info["type"] != before["type"] or info["inputs"] != before["inputs"]:
            return True
        if not set(before["labels"]).issubset(info["labels"]):
            return True
    return False


def data_types(xml: str) -> dict[str, str]:
    """Return {task data key: object tag type} for a config, a Video tag winning over others on the same key."""
    root = _load(xml)
    found: dict[str, str] = {}
    for element in root.iter():
        if element is root or "value" not in element.attrib or not element.attrib.get("name"):
            continue
        value = element.attrib["value"]
        if len(value) > 1 and value[0] == "$":
            key = value[1:]
        else:
            variables = _DATA_VARIABLE.findall(value)
            key = variables[0][1:] if variables else ""
        if key and found.get(key) != "Video":
            found[key] = element.tag
    return found


def data_keys(parsed: Mapping[str, Mapping[str, Any]] | str) -> set[str]:
    """Return the task data keys a config reads ($image gives "image"), from a parsed config or the XML text."""
    if isinstance(parsed, str):
        keys = set(data_types(parsed))
    else:
        keys = set()
        for info in parsed.values():
            for source in info.get("inputs", []):
                value = source.get("value") or source.get("valueList") or ""
                variables = _DATA_VARIABLE.findall(value)
                key = variables[0][1:] if "$" in value and variables else value
                if key:
                    keys.add(key)
    # A Repeater reads "images[{{idx}}].url" from the list under "images".
    return {key.split("[", 1)[0] for key in keys}


def config_suitable_for_bulk_annotation(xml: str | None) -> bool:
    """Tell whether a config only has per-task classification controls, as Label Studio's bulk-annotation flag."""
    if not xml:
        return True
    root = _load(xml)
    _check_encoding_declaration(xml)
    controls: dict[str, Element] = {}
    for element in root.iter():
        if _is_control(element):
            controls[element.attrib["name"]] = element
    for element in controls.values():
        kind = element.tag.lower()
        attrs = element.attrib
        if kind in _REGION_CONTROL_TAGS:
            return False
        if kind not in _CLASSIFICATION_CONTROL_TAGS:
            continue
        if attrs.get("perRegion", "false").lower() == "true" or attrs.get("perItem", "false").lower() == "true":
            return False
        if kind in ("choices", "taxonomy") and "value" in attrs:
            return False
        if kind == "taxonomy" and (attrs.get("labeling", "false").lower() == "true" or "apiUrl" in attrs):
            return False
    return True


# ---------------------------------------------------------------------------
# Compatibility of a new config with the labels a project already holds
# ---------------------------------------------------------------------------

# Result types that hold no region of their own (links between regions), skipped as Label Studio skips them.
_LINK_RESULT_TYPES = frozenset({"relation", "pairwise"})


@dataclass
class UsedTags:
    """What a project's stored results use, counted per result item.

    `results`: (from_name, to_name, type) of annotation results; `labels` and `draft_labels`: for each control
    name, how often each label value occurs in annotations and in drafts.
    """

    results: dict[tuple[str, str, str], int] = field(default_factory=dict)
    labels: dict[str, dict[str, int]] = field(default_factory=dict)
    draft_labels: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, *, from_name: Any, to_name: Any, kind: Any, values: Any, count: int, draft: bool) -> None:
        """Count `count` result items of one shape; `values` is the list under `value[<type>]`, if any."""
        if not isinstance(from_name, str) or (not draft and not isinstance(to_name, str)):
            return
        kind = kind if isinstance(kind, str) else None
        if not draft:
            if kind is None or kind in _LINK_RESULT_TYPES:
                return
            key = (from_name, to_name, kind.lower())
            self.results[key] = self.results.get(key, 0) + count
        counts = (self.draft_labels if draft else self.labels).setdefault(from_name, {})
        for label in _result_labels(kind, values):
            counts[label] = counts.get(label, 0) + count


def _result_labels(kind: str | None, values: Any) -> list[str]:
    """Label values of one result item: its `value[<type>]` list as text, taxonomy paths flattened."""
    if kind is None or kind == "text" or not isinstance(values, list):
        return []
    labels: list[str] = []
    for value in values:
        if kind == "taxonomy" and isinstance(value, list):
            labels.extend(_label_text(item) for item in value)
        else:
            labels.append(_label_text(value))
    return labels


def _label_text(value: Any) -> str:
    """A label value as Label Studio writes it into its per-project counts (Python's str of the JSON value)."""
    return value if isinstance(value, str) else str(value)


def _name_pattern(name: str, info: Mapping[str, Any]) -> re.Pattern[str]:
    """A pattern matching the names a control produces: Repeater index flags in it match anything."""
    pattern = re.escape(name)
    for flag, replacement in info.get("regex", {}).items():
        pattern = pattern.replace(re.escape(flag), replacement)
    return re.compile(pattern)


def _matching_control(parsed: Mapping[str, Mapping[str, Any]], from_name: str) -> str | None:
    """The control of the config that produces results named `from_name`, if any."""
    if from_name in parsed:
        return from_name
    for name, info in parsed.items():
        if _name_pattern(name, info).fullmatch(from_name):
            return name
    return None


def _has_target(parsed: Mapping[str, Mapping[str, Any]], to_name: str) -> bool:
    """Tell whether some control of the config points at `to_name` (index flags matching anything)."""
    for info in parsed.values():
        for target in info["to_name"]:
            if _name_pattern(target, info).fullmatch(to_name):
                return True
    return False


def _times(count: int, noun: str) -> str | None:
    return f"{count} {noun}{'s' if count > 1 else ''}" if count else None


def check_compatible(parsed: Mapping[str, Mapping[str, Any]], used: UsedTags) -> None:
    """Refuse a parsed config that cannot show what the project already holds.

    Every annotation result needs a control of the same name and type pointing at its target, and every label
    value used in annotations or drafts must stay in its control (controls with dynamic labels take any value).
    Unlike Label Studio, a config without any control is refused too when annotations exist, and removed labels
    are refused on every change, not only by the validate endpoint. Raises LabelConfigError with the reason.
    """
    types = {info["type"].lower() for info in parsed.values()}
    incompatible = []
    for (from_name, to_name, kind), count in sorted(used.results.items()):
        if kind == "textarea" or (from_name == to_name and kind == "chatmessage"):
            continue  # free text is not tied to a target; a chat message is its own target
        control = _matching_control(parsed, from_name)
        if control is None or not _has_target(parsed, to_name) or kind not in types:
            incompatible.append(f"{count} with from_name={from_name}, to_name={to_name}, type={kind}")
    if incompatible:
        raise LabelConfigError(
            "Created annotations are incompatible with provided labeling schema, we found:\n" + "\n".join(incompatible)
        )

    video_labels = {label for info in parsed.values() for label in info.get("labels", [])}
    has_video = any(info["type"] == "VideoRectangle" for info in parsed.values())
    for from_name in sorted(set(used.labels) | set(used.draft_labels)):
        in_annotations = used.labels.get(from_name, {})
        in_drafts = used.draft_labels.get(from_name, {})
        if not in_annotations and not in_drafts:
            continue
        control = _matching_control(parsed, from_name)
        if control is None:
            total = sum(in_annotations.values()) + sum(in_drafts.values())
            raise LabelConfigError(
                f'There are {total} annotation(s) created with tag "{from_name}", you can\'t remove it'
            )
        if parsed[control].get("dynamic_labels"):
            continue
        allowed = set(parsed[control].get("labels", []))
        if has_video:  # a VideoRectangle result carries the labels of a sibling Labels control
            allowed |= video_labels
        missing = sorted((set(in_annotations) | set(in_drafts)) - allowed)
        if not missing:
            continue
        lines = []
        for label in missing:
            counts = [_times(in_annotations.get(label, 0), "annotation"), _times(in_drafts.get(label, 0), "draft")]
            lines.append(f"{label} ({', '.join(count for count in counts if count)})")
        raise LabelConfigError(
            "These labels still exist in annotations or drafts:\n"
            + "\n".join(lines)
            + f'\nPlease add labels to tag with name="{control}".'
        )
