"""DOCLANG: every DocLang document in the snapshot packed as a `.dclx` archive, all of them in one zip.

Matches label-studio-sdk 2.1.2's DocLang exporter (`label_studio_sdk/converter/exports/doclang.py`),
which Label Studio 1.23.2 serves for this format:

- Documents are looked for, per task, in each annotation that is neither cancelled nor skipped, then in
  each draft (unless it belongs to an annotation that already gave a document), then in each prediction;
  only when none of them holds one, in task data under `doclang` / `document` keys (at any depth).
  The first DocLang document found in a result list is the one taken.
- A document is XML text whose root element is `doclang`, without a namespace or in
  `https://www.doclang.ai/ns/v<N>`, and without a DOCTYPE. Text areas are searched in their `text`,
  ReactCode results in their `reactcode`; other built-in region types never hold one, and the whole
  value of any other result type (custom interfaces) is searched.
- Archive names: `task-<id>-annotation-<id>.dclx`, `task-<id>-draft-<id>.dclx`,
  `task-<id>-prediction-<id>.dclx`, and `task-<id>-data.dclx` (or `task-<id>-data-<n>.dclx` for several).
- A `.dclx` is an OPC zip: `[Content_Types].xml`, `_rels/.rels`, the document as `document.xml` and,
  when resources are downloaded, the task's page images as `pages/<n>.<ext>` (n counts the task's
  image URLs from 1; an image that cannot be fetched is left out).

Differences from the SDK, because this service does not fetch arbitrary URLs itself: page images come
from `context.fetch_image` (and `data:` URLs, decoded here), and images that a document references in its
own `src` elements are not packed; their URIs are kept as written.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import posixpath
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, Any, BinaryIO
from urllib.parse import unquote_to_bytes, urlparse
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as safe_etree
from defusedxml import DefusedXmlException

from exports.converters.registry import ConversionContext, ConversionError
from exports.converters.source import TaskSource
from exports.converters.ziparchive import Archive

__all__ = ["convert", "doclang_document", "document_sources", "image_data_keys"]

_NAMESPACE_PREFIX = "https://www.doclang.ai/ns/"
# Built-in result types whose values are never a document; any other type is searched whole.
_NON_DOCUMENT_TYPES = frozenset(
    {
        "bitmask",
        "bitmasklabels",
        "brush",
        "brushlabels",
        "chatmessage",
        "choices",
        "datetime",
        "ellipse",
        "ellipselabels",
        "hypertextlabels",
        "keypoint",
        "keypointlabels",
        "labels",
        "magicwand",
        "number",
        "ocrlabels",
        "pairwise",
        "paragraphlabels",
        "polygon",
        "polygonlabels",
        "ranker",
        "rating",
        "rectangle",
        "rectanglelabels",
        "relation",
        "taxonomy",
        "timelinelabels",
        "timeserieslabels",
        "vector",
        "vectorlabels",
        "videorectangle",
        "videovector",
        "videovectorlabels",
    }
)
_DATA_KEYS = frozenset({"doclang", "document"})
# Bounds on walking nested JSON values, so a deep or huge value cannot stall the export.
_MAX_DEPTH = 32
_MAX_NODES = 10_000
_PAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
_SPOOL_BYTES = 16 * 1024 * 1024

_RELATIONSHIPS = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" Type="http://doclang.ai/ns/package/2026/relationships/document" Target="document.xml"/>'
    b"</Relationships>\n"
)
_CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    b'<Default Extension="png" ContentType="image/png"/>'
    b'<Default Extension="jpg" ContentType="image/jpeg"/>'
    b'<Default Extension="jpeg" ContentType="image/jpeg"/>'
    b'<Default Extension="webp" ContentType="image/webp"/>'
    b'<Override PartName="/document.xml" ContentType="application/vnd.doclang.document+xml"/>'
    b"</Types>\n"
)


@dataclass(frozen=True)
class DocumentSource:
    """One DocLang document of a task and where it came from (`annotation`, `draft`, `prediction`, `data`)."""

    kind: str
    source_id: Any
    document: bytes

    def archive_name(self, task_id: Any) -> str:
        if self.kind == "data":
            return f"task-{task_id}-data.dclx" if self.source_id == "" else f"task-{task_id}-data-{self.source_id}.dclx"
        return f"task-{task_id}-{self.kind}-{self.source_id}.dclx"


# --- Finding documents --------------------------------------------------------------------------------------------


def doclang_document(text: str) -> bytes | None:
    """The UTF-8 bytes of `text` when it is a DocLang XML document, else None."""
    if "doclang" not in text:  # the root element's name; skips parsing ordinary text
        return None
    try:
        encoded = text.encode("utf-8")
        root = safe_etree.fromstring(encoded, forbid_dtd=True)
    except (UnicodeEncodeError, ParseError, DefusedXmlException, ValueError):
        return None
    tag = root.tag if isinstance(root.tag, str) else ""
    namespace, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    if local != "doclang":
        return None
    if namespace:
        version = namespace.removeprefix(_NAMESPACE_PREFIX)
        if version == namespace or not (version.startswith("v") and version[1:].isdigit()):
            return None
    return encoded


def _strings(value: Any, *, under: frozenset[str] | None = None) -> Iterator[str]:
    """The strings in a JSON value in document order; with `under`, only those below one of these object keys.

    At most `_MAX_NODES` values are looked at, none deeper than `_MAX_DEPTH` levels (which also bounds the
    recursion), so a deep or huge value cannot stall the export.
    """
    budget = _MAX_NODES
    keys = under if under is not None else frozenset()  # without `under` every string is wanted anyway

    def walk(node: Any, depth: int, wanted: bool) -> Iterator[str]:
        nonlocal budget
        budget -= 1
        if isinstance(node, str):
            if wanted:
                yield node
            return
        if depth >= _MAX_DEPTH:
            return
        if isinstance(node, Mapping):
            children: Iterator[tuple[Any, bool]] = ((child, wanted or key in keys) for key, child in node.items())
        elif isinstance(node, list):
            children = ((child, wanted) for child in node)
        else:
            return
        for child, child_wanted in children:
            if budget <= 0:
                return
            yield from walk(child, depth + 1, child_wanted)

    yield from walk(value, 0, under is None)


def _searched_value(result: Mapping[str, Any]) -> Any:
    kind, value = result.get("type"), result.get("value")
    if kind == "textarea":
        return value.get("text") if isinstance(value, Mapping) else None
    if kind == "reactcode":
        return value.get("reactcode") if isinstance(value, Mapping) else None
    if kind in _NON_DOCUMENT_TYPES:
        return None
    return value


def _result_document(entry: Mapping[str, Any]) -> bytes | None:
    """The first DocLang document in an annotation's, draft's or prediction's result list."""
    result = entry.get("result")
    if not isinstance(result, list):
        return None
    for region in result:
        if not isinstance(region, Mapping):
            continue
        for text in _strings(_searched_value(region)):
            document = doclang_document(text)
            if document is not None:
                return document
    return None


def _data_documents(data: Any) -> list[bytes]:
    """Distinct DocLang documents in task data, in document order, under `doclang` / `document` keys."""
    if not isinstance(data, Mapping):
        return []
    documents: list[bytes] = []
    for text in _strings(data, under=_DATA_KEYS):
        document = doclang_document(text)
        if document is not None and document not in documents:
            documents.append(document)
    return documents


def _entries(task: Mapping[str, Any], key: str) -> list[Any]:
    entries = task.get(key)
    return entries if isinstance(entries, list) else []


def document_sources(task: Mapping[str, Any]) -> Iterator[DocumentSource]:
    """The task's DocLang documents in export order (see the module docstring)."""
    annotations = _entries(task, "annotations") or _entries(task, "completions")
    kept = [a for a in annotations if isinstance(a, Mapping) and not (a.get("was_cancelled") or a.get("skipped"))]
    groups = (("annotation", kept), ("draft", _entries(task, "drafts")), ("prediction", _entries(task, "predictions")))
    annotations_with_document: set[Any] = set()  # the drafts of these annotations are passed over
    found = False
    for kind, entries in groups:
        for position, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                continue
            if kind == "draft" and _id_key(entry.get("annotation")) in annotations_with_document:
                continue
            document = _result_document(entry)
            if document is None:
                continue
            source_id = entry.get("id", position)  # an entry without an id is named by its position
            if kind == "annotation" and (key := _id_key(source_id)) is not None:
                annotations_with_document.add(key)
            found = True
            yield DocumentSource(kind, source_id, document)
    if found:
        return
    documents = _data_documents(task.get("data"))
    if len(documents) == 1:
        yield DocumentSource("data", "", documents[0])
    else:
        for number, document in enumerate(documents, start=1):
            yield DocumentSource("data", number, document)


def _id_key(value: Any) -> Any:
    """An id usable as a set member; None for a missing id or one that is a JSON list or object."""
    return None if isinstance(value, list | dict) else value


# --- Page images --------------------------------------------------------------------------------------------------


def image_data_keys(
    label_config: Mapping[str, Mapping[str, Any]], label_config_xml: str | None = None
) -> tuple[str, str | None]:
    """(data key of a single page image, data key of a page list) from the config's Image tags.

    Without an Image tag the single page is read from `image`. With the raw XML, Image tags that no
    control points at count too.
    """
    single: str | None = None
    listed: str | None = None
    for info in label_config.values():
        for tag in info.get("inputs") or []:
            if tag.get("type") != "Image":
                continue
            if tag.get("valueList"):
                listed = str(tag["valueList"]).lstrip("$")
            elif tag.get("value"):
                single = str(tag["value"]).lstrip("$")
    if label_config_xml:
        try:
            root = safe_etree.fromstring(label_config_xml.encode("utf-8"), forbid_dtd=True)
        except (ParseError, DefusedXmlException, ValueError):
            root = None
        for element in root.iter() if root is not None else ():
            if not isinstance(element.tag, str) or element.tag.rpartition("}")[2] != "Image":
                continue
            if element.get("valueList"):
                listed = element.get("valueList", "").lstrip("$")
            elif element.get("value"):
                single = element.get("value", "").lstrip("$")
    return single or "image", listed


def _page_url(raw: Any) -> str | None:
    if isinstance(raw, Mapping):
        raw = raw.get("url")
    return raw if isinstance(raw, str) and raw else None


def _page_urls(task: Mapping[str, Any], single_key: str, list_key: str | None) -> list[str]:
    data = task.get("data")
    if not isinstance(data, Mapping):
        return []
    if list_key and isinstance(data.get(list_key), list):
        return [url for url in map(_page_url, data[list_key]) if url]
    url = _page_url(data.get(single_key))
    return [url] if url else []


def _normal_suffix(suffix: str) -> str:
    suffix = suffix.lower()
    return ".jpg" if suffix == ".jpe" else suffix


def _sniffed_suffix(content: bytes) -> str | None:
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if content.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return ".webp"
    return None


def _page_suffix(url: str, content: bytes) -> str:
    """The page file's extension: the first of these that is a page image type, else `.png`.

    For a data URL, its media type. Otherwise the extension of the URL's path, then the type the bytes start
    with, then the type guessed from the path.
    """
    if url.startswith("data:"):
        candidates = [mimetypes.guess_extension(url[5:].split(";", 1)[0].strip())]
    else:
        path = urlparse(url).path
        candidates = [
            posixpath.splitext(path)[1],
            _sniffed_suffix(content),
            mimetypes.guess_extension(mimetypes.guess_type(path)[0] or ""),
        ]
    for candidate in candidates:
        suffix = _normal_suffix(candidate or "")
        if suffix in _PAGE_SUFFIXES:
            return suffix
    return ".png"


def _data_url_bytes(url: str) -> bytes | None:
    header, _, payload = url.partition(",")
    if ";base64" not in header.lower() or not payload:
        return None
    try:
        return base64.b64decode(unquote_to_bytes(payload))
    except (binascii.Error, ValueError):
        return None


def _fetch_page(url: str, context: ConversionContext) -> bytes | None:
    if url.startswith("data:"):
        return _data_url_bytes(url)
    if context.fetch_image is None:
        return None
    content, _reason = context.fetch_image(url)
    return content


# --- Writing ------------------------------------------------------------------------------------------------------


def _member_order(name: str) -> tuple[str, ...]:
    return PurePosixPath(name).parts


def _write_dclx(target: IO[bytes], document: bytes, pages: list[tuple[str, bytes]]) -> None:
    """One `.dclx` OPC archive: package metadata, `document.xml` and the page images."""
    members: list[tuple[str, bytes]] = [
        ("[Content_Types].xml", _CONTENT_TYPES),
        ("_rels/.rels", _RELATIONSHIPS),
        ("document.xml", document),
        *pages,
    ]
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in sorted(members, key=lambda member: _member_order(member[0])):
            archive.writestr(name, content)


def convert(source: TaskSource, out: BinaryIO, context: ConversionContext) -> None:
    """DOCLANG: a zip of one `.dclx` archive per DocLang document found (see the module docstring)."""
    single_key, list_key = image_data_keys(context.label_config, context.extra.get("label_config_xml"))
    scratch = context.scratch_dir if context.scratch_dir and context.scratch_dir.is_dir() else None
    written = 0
    with Archive(out, scratch) as export:
        for task in source.tasks():
            if not isinstance(task, Mapping):
                continue
            # Archives by name; a later one with the same name (ids missing) replaces the earlier, as files do.
            sources = {found.archive_name(task.get("id")): found for found in document_sources(task)}
            if not sources:
                continue
            pages = _task_pages(task, single_key, list_key, context)
            for name, found in sources.items():
                with tempfile.SpooledTemporaryFile(
                    max_size=_SPOOL_BYTES, dir=str(scratch) if scratch else None
                ) as dclx:
                    _write_dclx(dclx, found.document, pages)
                    export.copy(name, dclx)  # stored: a `.dclx` is a zip already
                written += 1
    if not written:
        raise ConversionError(
            "No converted file found, probably there are no annotations in the export snapshot: "
            "no annotation, draft, prediction or task data holds a DocLang document."
        )


def _task_pages(
    task: Mapping[str, Any], single_key: str, list_key: str | None, context: ConversionContext
) -> list[tuple[str, bytes]]:
    """The task's page images as (`pages/<n>.<ext>`, bytes), when resources are downloaded."""
    if not context.download_resources:
        return []
    pages: list[tuple[str, bytes]] = []
    for number, url in enumerate(_page_urls(task, single_key, list_key), start=1):
        content = _fetch_page(url, context)
        if content is None:
            continue
        pages.append((f"pages/{number}{_page_suffix(url, content)}", content))
    return pages
