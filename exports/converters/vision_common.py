"""What the image dataset formats (COCO, YOLO, YOLO OBB, Pascal VOC) share: reading tasks, classes, geometry, names.

The output follows label-studio-sdk 2.1.2's converter (`label_studio_sdk/converter/converter.py`), which Label
Studio 1.23.2 runs for these formats. Tasks are turned into *items* the same way: a task without annotations is
one item with no regions, every annotation that is not cancelled is an item of its own (newest first), and a task
whose annotations are all cancelled gives none. A region counts when its `from_name` names a control of the label
config. Where that converter loses data or computes a wrong value, the differences are listed on the converter
functions that make them.
"""

from __future__ import annotations

import hashlib
import math
import posixpath
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from exports.converters.json_min import NO_ANNOTATION, JsonMinConverter, annotator
from exports.converters.registry import ConversionError

__all__ = [
    "Categories",
    "Item",
    "Region",
    "UniqueNames",
    "VisionTasks",
    "coordinates",
    "cut_stem",
    "file_name_of",
    "iter_file",
    "keypoint_order",
    "labels_for_yolo",
    "points",
    "polygon_area",
    "rectangle",
    "rectangle_box",
    "rectangle_corners",
    "sdk_image_path",
    "winning_item",
    "xml_text",
]

# Result value keys that carry a region's class names, in the order the first class name is looked for.
_CLASS_KEYS = ("rectanglelabels", "polygonlabels", "keypointlabels", "labels")
_YOLO_CLASS_KEYS = ("rectanglelabels", "polygonlabels", "labels")
_CLOUD_PREFIXES = ("s3:", "gs:", "azure-blob:")
# Characters XML 1.0 cannot hold at all; they are dropped from text written to XML files.
_NOT_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# Label file names are cut to this many bytes, leaving room for ".txt" in a 255-byte file name.
MAX_STEM_BYTES = 251


@dataclass(slots=True)
class Region:
    """One region of an annotation whose control is in the label config."""

    value: Mapping[str, Any]
    width: float | None  # the image size the annotator saw (`original_width`), when the result has it
    height: float | None
    region_id: Any = None
    parent_id: Any = None
    first_class: str | None = None  # the class a one-class format uses: the first name of the first non-empty list

    @property
    def is_polygon(self) -> bool:
        return "points" in self.value and ("polygonlabels" in self.value or "labels" in self.value)

    @property
    def is_keypoint(self) -> bool:
        return "keypointlabels" in self.value

    @property
    def is_rectangle(self) -> bool:
        value = self.value
        return (
            ("rectanglelabels" in value or "labels" in value)
            and "points" not in value
            and "x" in value
            and "y" in value
            and "width" in value
            and "height" in value
        )


@dataclass(slots=True)
class Item:
    """One image entry: a task with one of its annotations (or with none, for a task not annotated yet)."""

    task_id: Any
    url: str
    annotation: Mapping[str, Any] | None
    regions: list[Region]
    matched: bool  # the annotation has at least one result of a known control (regions may still be empty)

    def size(self) -> tuple[float, float] | None:
        """The image size from the first region with a class that carries it."""
        for region in self.regions:
            if region.width and region.height and region.first_class is not None:
                return region.width, region.height
        return None

    def annotator(self) -> str:
        """The annotator as Pascal VOC files name them: the email of an expanded user, else the id as text."""
        return str(annotator((self.annotation or {}).get("completed_by", {})) or "")


class VisionTasks:
    """Reads tasks as image items for one project's parsed label config."""

    def __init__(self, label_config: Mapping[str, Mapping[str, Any]]):
        self.label_config = label_config
        self.data_key = _image_data_key(label_config)
        self._matcher = JsonMinConverter(label_config)
        self._known: dict[str, bool] = {}  # from_name → whether it belongs to a control of the config

    def has_control(self, control_type: str) -> bool:
        return any(info.get("type") == control_type for info in self.label_config.values())

    def image_url(self, task: Mapping[str, Any]) -> str:
        data = task.get("data")
        url = data.get(self.data_key) if isinstance(data, Mapping) else None
        if not isinstance(url, str) or not url:
            raise ConversionError(
                f"Task {task.get('id')}: the data has no image URL under {self.data_key!r}, "
                "so it cannot be written to an image dataset."
            )
        return url

    def items(self, task: Mapping[str, Any]) -> list[Item]:
        """The task's items: none when it has no annotation list or only cancelled annotations."""
        annotations = JsonMinConverter.exported_annotations(task)
        if not annotations:
            return []
        task_id, url = task.get("id"), self.image_url(task)
        if annotations[0] is NO_ANNOTATION:
            return [Item(task_id, url, None, [], False)]
        return [self._item(task_id, url, annotation) for annotation in annotations]

    def _item(self, task_id: Any, url: str, annotation: Mapping[str, Any]) -> Item:
        # The hot loop of every image format: plain dicts are checked by type first, control names are cached.
        grouped: dict[str, list[Region]] = {}
        known = self._known
        for result in annotation.get("result") or ():
            if type(result) is not dict and not isinstance(result, Mapping):
                continue
            from_name = result.get("from_name")
            if type(from_name) is not str:
                continue
            matched = known.get(from_name)
            if matched is None:
                matched = known[from_name] = bool(from_name) and self._matcher.tag_for(from_name) is not None
            if not matched:
                continue
            value = result.get("value")
            if type(value) is not dict and not isinstance(value, Mapping):
                raise ConversionError(
                    f"Task {task_id}, annotation {annotation.get('id')}: "
                    f"the region of {from_name!r} has no value object."
                )
            first = None
            for key in _CLASS_KEYS:
                names = value.get(key)
                if names is None:
                    continue
                if type(names) is not list:
                    raise ConversionError(
                        f"Task {task_id}, annotation {annotation.get('id')}: {key!r} of the region of "
                        f"{from_name!r} is not a list of class names."
                    )
                if first is None and names:
                    first = names[0] if type(names[0]) is str else str(names[0])
            width, height = result.get("original_width"), result.get("original_height")
            region = Region(
                value,
                width if _is_number(width) else None,
                height if _is_number(height) else None,
                result.get("id"),
                result.get("parentID"),
                first,
            )
            # Regions are grouped by control, in the order each control first appears, as Label Studio's converter does.
            group = grouped.get(from_name)
            if group is None:
                grouped[from_name] = [region]
            else:
                group.append(region)
        if len(grouped) == 1:
            [regions] = grouped.values()
        else:
            regions = [region for group in grouped.values() for region in group]
        return Item(task_id, url, annotation, regions, bool(grouped))


def winning_item(items: Sequence[Item]) -> Item | None:
    """The one annotation a one-file-per-image format writes for a task.

    Label Studio's converter writes every annotation of a task to the same file, newest first, and an annotation
    with no known results does not replace a file already written; so the oldest annotation with results wins.
    The same annotation is chosen here, without the overwriting.
    """
    with_results = [item for item in items if item.matched]
    return with_results[-1] if with_results else (items[-1] if items else None)


def _image_data_key(label_config: Mapping[str, Mapping[str, Any]]) -> str:
    """The task data field that holds the image: the first Image object a control points at."""
    fallback = None
    for info in label_config.values():
        for source in info.get("inputs") or []:
            key = source.get("value")
            if not key:
                continue
            if source.get("type") == "Image":
                return key
            fallback = fallback or key
    return fallback or "image"


_NUMBER_TYPES = frozenset({int, float})


def _is_number(value: Any) -> bool:
    kind = type(value)
    return kind is int or (kind is float and math.isfinite(value))


def rectangle(region: Region, task_id: Any, annotation: Mapping[str, Any] | None) -> tuple[float, ...]:
    """A rectangle's x, y, width, height (percent) and rotation (degrees, 0 when missing)."""
    value = region.value
    # Any JSON value, checked below (mypy does not narrow on `type(...) in numbers`).
    x: Any = value.get("x")
    y: Any = value.get("y")
    w: Any = value.get("width")
    h: Any = value.get("height")
    rotation = value.get("rotation", 0)
    numbers = _NUMBER_TYPES
    if (
        type(x) in numbers
        and type(y) in numbers
        and type(w) in numbers
        and type(h) in numbers
        and type(rotation) in numbers
        and math.isfinite(x + y + w + h + rotation)
    ):
        return x, y, w, h, rotation
    coordinates(region, ("x", "y", "width", "height", "rotation"), task_id, annotation)  # raises, naming the value
    raise ConversionError(f"Task {task_id}: a rectangle is too large to convert.")


def coordinates(region: Region, keys: Sequence[str], task_id: Any, annotation: Mapping[str, Any] | None) -> list:
    """The region's numeric values under `keys` (`rotation` defaults to 0), or a ConversionError naming the task
    and annotation."""
    value = region.value
    out = [value.get(key, 0 if key == "rotation" else None) for key in keys]
    for key, number in zip(keys, out, strict=True):
        if not _is_number(number):
            raise ConversionError(
                f"Task {task_id}, annotation {(annotation or {}).get('id')}: the region's {key!r} is "
                f"{number!r}, not a number."
            )
    return out


def points(region: Region, task_id: Any, annotation: Mapping[str, Any] | None) -> list[tuple[float, float]]:
    """A polygon's points (percent), or a ConversionError when they are not pairs of numbers."""
    raw: Any = region.value.get("points")  # any JSON value; one that is not pairs raises below
    try:
        pairs = [(float(x), float(y)) for x, y in raw]
    except (TypeError, ValueError):
        pairs = None
    if not pairs or not all(math.isfinite(x) and math.isfinite(y) for x, y in pairs):
        raise ConversionError(
            f"Task {task_id}, annotation {(annotation or {}).get('id')}: the polygon's points are not a list "
            "of [x, y] number pairs."
        )
    return pairs


def rectangle_corners(x: float, y: float, w: float, h: float, rotation: float) -> list[tuple[float, float]]:
    """The four corners of a rectangle turned `rotation` degrees clockwise about its top-left corner (x, y).

    Label Studio keeps a rotated rectangle as its top-left corner, size and angle, all in the image's own
    pixel space; the corners go top-left, top-right, bottom-right, bottom-left before rotation.
    """
    angle = math.radians(rotation)
    cos, sin = math.cos(angle), math.sin(angle)
    return [
        (x, y),
        (x + w * cos, y + w * sin),
        (x + w * cos - h * sin, y + w * sin + h * cos),
        (x - h * sin, y + h * cos),
    ]


def rectangle_box(
    x: float, y: float, w: float, h: float, rotation: float, width: float, height: float
) -> tuple[float, float, float, float]:
    """The pixel box (left, top, width, height) holding a rectangle given in percent of a width × height image.

    A rotated rectangle is turned in pixels, so its box is right for images that are not square too.
    """
    left, top = x * width / 100, y * height / 100
    box_w, box_h = w * width / 100, h * height / 100
    if not rotation % 360:
        return left, top, box_w, box_h
    corners = rectangle_corners(left, top, box_w, box_h, rotation)
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def polygon_area(xs: Sequence[float], ys: Sequence[float]) -> float:
    """The area inside a simple polygon (the shoelace formula)."""
    count = len(xs)
    twice = sum(xs[i] * ys[i - 1] - ys[i] * xs[i - 1] for i in range(count))
    return abs(twice) / 2


def labels_for_yolo(region: Region) -> list[str]:
    """Every class name of a region: YOLO writes one line per name (multi-label regions)."""
    value = region.value
    names: list[str] = []
    for key in _YOLO_CLASS_KEYS:
        if key in value:
            names.extend(map(str, value[key] or ()))
    return names


def keypoint_order(label_config: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The keypoint names in the order their coordinates are listed.

    The order is the labels' `model_index`; labels without one follow in config order. (Label Studio's converter
    leaves those out of the coordinates, and fails the COCO export when no label has a `model_index`.)
    """
    indexed: dict[int, str] = {}
    rest: list[str] = []
    for info in label_config.values():
        if info.get("type") != "KeyPointLabels":
            continue
        for name in info.get("labels") or []:
            attrs = (info.get("labels_attrs") or {}).get(name) or {}
            model_index: Any = attrs.get("model_index")  # any JSON value; `int` rejects the ones that are not
            try:
                index = int(model_index)
            except (TypeError, ValueError):
                index = None
            if index is not None and index not in indexed and name not in indexed.values():
                indexed[index] = name
            elif name not in rest:
                rest.append(name)
    ordered = [indexed[index] for index in sorted(indexed)]
    return ordered + [name for name in rest if name not in ordered]


class Categories:
    """Class names and their ids, as Label Studio's converter numbers them.

    Every label of every control counts (Choices too). Labels with a `category` attribute take that id; the
    rest take the lowest free ids in name order. A class seen only in the results gets the next id after the
    highest one (Label Studio's converter takes the number of classes, which can repeat an explicit id). A
    negative `category` is ignored, since no format can use it as a class id.
    """

    def __init__(self, label_config: Mapping[str, Mapping[str, Any]]):
        self.ids: dict[str, int] = {}
        names: set[str] = set()
        for info in label_config.values():
            names.update(info.get("labels") or [])
            attrs = info.get("labels_attrs") or {}
            for name in info.get("labels") or []:
                raw: Any = (attrs.get(name) or {}).get("category")  # any JSON value; `int` rejects what is not one
                try:
                    category = int(raw)
                except (TypeError, ValueError):
                    continue
                if category >= 0 and name not in self.ids:
                    self.ids[name] = category
        used = set(self.ids.values())
        free = (number for number in range(len(names) + len(used) + 1) if number not in used)
        for name in sorted(names - set(self.ids)):
            self.ids[name] = next(free)
        self.extra: dict[str, dict[str, Any]] = {}  # more keys of a listed category
        self.hidden: set[str] = set()  # names that map to an id but are not listed (merged keypoint labels)

    def id_for(self, name: str) -> int:
        if name not in self.ids:
            self.ids[name] = max(self.ids.values(), default=-1) + 1
        return self.ids[name]

    def listing(self) -> list[dict[str, Any]]:
        """`{"id", "name"}` for every class, by id (a name that shares an id is listed under it too)."""
        return [
            {"id": number, "name": name, **self.extra.get(name, {})}
            for name, number in sorted(self.ids.items(), key=lambda pair: (pair[1], pair[0]))
            if name not in self.hidden
        ]


def sdk_image_path(url: str) -> str:
    """Where Label Studio's converter says a task's image is when it does not download images.

    A URL it would fetch itself (any http(s) or other plain URL) becomes `images/<first 8 hex of md5(url)>__<file
    name>`; an uploaded file, Local Storage or cloud storage URL stays as written, because the converter cannot
    resolve those without a Label Studio host.
    """
    if url.startswith(("upload", "/upload", "/data/upload")) or url.startswith(_CLOUD_PREFIXES):
        return url
    if url.startswith("/data/") and "?d=" in url:
        return url
    path = _url_path(url)
    if path is None or path.startswith(("/storage-data/uploaded", "storage-data/uploaded")):
        return url
    digest = hashlib.md5(url.encode("utf-8", "surrogatepass"), usedforsecurity=False).hexdigest()[:8]
    return f"images/{digest}__{posixpath.basename(path)}"


def _url_path(url: str) -> str | None:
    """The path part of a URL as `urllib.parse.urlparse` gives it (None when it cannot parse the URL).

    Plain http(s) URLs, nearly all image URLs, are cut up directly, several times faster; anything with
    characters that `urlparse` cleans up or checks first goes through `urlparse` itself.
    """
    if url.startswith(("https://", "http://")) and not any(char in url for char in "\t\r\n[]"):
        rest = url[url.index("//") + 2 :]
        end = len(rest)
        for mark in "?#":
            found = rest.find(mark)
            if found != -1 and found < end:
                end = found
        slash = rest.find("/", 0, end)
        path = rest[slash:end] if slash != -1 else ""
        # `urlparse` moves `;params` of the last path segment out of the path.
        semicolon = path.find(";", path.rfind("/") + 1) if ";" in path else -1
        return path[:semicolon] if semicolon != -1 else path
    try:
        return urlparse(url).path
    except ValueError:  # an unbalanced IPv6 bracket: Label Studio's converter keeps such a URL as written
        return None


def file_name_of(url: str) -> str:
    """The image's file name in an archive: the last part of the path Label Studio's converter gives it."""
    return posixpath.basename(sdk_image_path(url)).replace("\\", "_")


def cut_stem(stem: str) -> str:
    """A file name stem short enough for ".txt" to follow within 255 bytes, cut on a character boundary."""
    stem = stem[:MAX_STEM_BYTES]
    encoded = stem.encode("utf-8")
    if len(encoded) <= MAX_STEM_BYTES:
        return stem
    return encoded[:MAX_STEM_BYTES].decode("utf-8", errors="ignore")


class UniqueNames:
    """Hands out archive file stems so that no two images share one (Label Studio's converter overwrites).

    A stem already taken, compared without case because many file systems ignore it, gets `__task<id>` added.
    Only 8-byte digests are kept, so memory stays small for any number of tasks.
    """

    def __init__(self) -> None:
        self._taken: dict[int, int] = {}

    def claim(self, stem: str, suffix: str, task_id: Any, url: str | None = None) -> tuple[str, bool]:
        """A free stem for `stem + suffix`, and whether it is new; with `url`, the same URL gets its earlier stem."""
        owner = _digest(url) if url is not None else None
        candidate, attempt = stem, 0
        while True:
            key = _digest((candidate + suffix).casefold())
            taken = self._taken.get(key)
            if taken is None:
                self._taken[key] = owner if owner is not None else -1
                return candidate, True
            if owner is not None and taken == owner:
                return candidate, False
            attempt += 1
            candidate = f"{stem}__task{task_id}" if attempt == 1 else f"{stem}__task{task_id}_{attempt}"


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


def xml_text(text: str) -> str:
    """Text escaped for an XML element, without the characters XML cannot hold."""
    text = _NOT_XML_CHARS.sub("", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def iter_file(path: Any, chunk: int = 1 << 20) -> Iterator[bytes]:
    with open(path, "rb") as file:
        while block := file.read(chunk):
            yield block
