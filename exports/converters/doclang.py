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
_DATA_KEYS = ("doclang", "document")
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


def _strings(value: Any) -> Iterator[str]:
    """The strings in a JSON value, depth first in document order, within the walking bounds."""
    stack: list[Iterator[tuple[Any, int]]] = [iter(((value, 0),))]
    visited = 0
    while stack and visited < _MAX_NODES:
        try:
            current, depth = next(stack[-1])
        except StopIteration:
            stack.pop()
            continue
        visited += 1
        if isinstance(current, str):
            yield current
        elif depth < _MAX_DEPTH:
            if isinstance(current, Mapping):
                stack.append((child, depth + 1) for child in current.values())
            elif isinstance(current, list):
                stack.append((child, depth + 1) for child in current)


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
    stack: list[tuple[Any, int, bool]] = [(data, 0, False)]
    visited = 0
    while stack and visited < _MAX_NODES:
        current, depth, under_key = stack.pop()
        visited += 1
        if isinstance(current, str):
            if under_key and (document := doclang_document(current)) is not None and document not in documents:
                documents.append(document)
        elif depth < _MAX_DEPTH:
            if isinstance(current, Mapping):
                children = [(child, depth + 1, under_key or key in _DATA_KEYS) for key, child in current.items()]
                stack.extend(reversed(children))
            elif isinstance(current, list):
                stack.extend(reversed([(child, depth + 1, under_key) for child in current]))
    return documents


def _entries(task: Mapping[str, Any], key: str) -> list[Any]:
    entries = task.get(key)
    return entries if isinstance(entries, list) else []


def document_sources(task: Mapping[str, Any]) -> Iterator[DocumentSource]:
    """The task's DocLang documents in export order (see the module docstring)."""
    exported: set[Any] = set()
    found = False
    annotations = _entries(task, "annotations") or _entries(task, "completions")
    kept = (a for a in annotations if isinstance(a, Mapping) and not (a.get("was_cancelled") or a.get("skipped")))
    for index, annotation in enumerate(kept):
        document = _result_document(annotation)
        if document is not None:
            source_id = annotation.get("id", index)
            _remember(exported, source_id)
            found = True
            yield DocumentSource("annotation", source_id, document)
    for kind, key, linked in (("draft", "drafts", True), ("prediction", "predictions", False)):
        for index, entry in enumerate(_entries(task, key)):
            if not isinstance(entry, Mapping):
                continue
            if linked and _is_exported(exported, entry.get("annotation")):
                continue  # the draft of an annotation that already gave its document
            document = _result_document(entry)
            if document is not None:
                found = True
                yield DocumentSource(kind, entry.get("id", index), document)
    if found:
        return
    documents = _data_documents(task.get("data"))
    if len(documents) == 1:
        yield DocumentSource("data", "", documents[0])
    else:
        for number, document in enumerate(documents, start=1):
            yield DocumentSource("data", number, document)


def _remember(ids: set[Any], value: Any) -> None:
    if value is not None and not isinstance(value, list | dict):
        ids.add(value)


def _is_exported(ids: set[Any], value: Any) -> bool:
    return value is not None and not isinstance(value, list | dict) and value in ids


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
    """The page file's extension: from a data URL's media type, else the URL's path, else the bytes."""
    if url.startswith("data:"):
        media_type = url[5:].split(";", 1)[0].strip()
        guess = _normal_suffix(mimetypes.guess_extension(media_type) or "")
        return guess if guess in _PAGE_SUFFIXES else ".png"
    path_suffix = _normal_suffix(posixpath.splitext(urlparse(url).path)[1])
    if path_suffix in _PAGE_SUFFIXES:
        return path_suffix
    sniffed = _sniffed_suffix(content)
    if sniffed:
        return sniffed
    guess = _normal_suffix(mimetypes.guess_extension(mimetypes.guess_type(urlparse(url).path)[0] or "") or "")
    return guess if guess in _PAGE_SUFFIXES else ".png"


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
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as export:
        for task in source.tasks():
            if not isinstance(task, Mapping):
                continue
            # Archives by name; a later one with the same name (ids missing) replaces the earlier, as files do.
            sources = {found.archive_name(task.get("id")): found for found in document_sources(task)}
            if not sources:
                continue
            pages = _task_pages(task, single_key, list_key, context)
            for name, found in sources.items():
                with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES, dir=scratch) as dclx:
                    _write_dclx(dclx, found.document, pages)
                    dclx.seek(0)
                    with export.open(name, "w", force_zip64=True) as entry:
                        while chunk := dclx.read(1024 * 1024):
                            entry.write(chunk)
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
