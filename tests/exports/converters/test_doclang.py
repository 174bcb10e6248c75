"""DOCLANG archives, checked against label-studio-sdk 2.1.2's DocLang exporter.

Each snapshot is converted by the SDK (what Label Studio 1.23.2 serves: one `.dclx` per document, zipped)
and by this project; archive names, their members and the packed documents must match.
"""

import base64
import io
import zipfile
from xml.etree import ElementTree

import pytest
from label_studio_sdk.converter.exports.doclang import convert_to_doclang

from exports.converters.doclang import convert, doclang_document, document_sources, image_data_keys
from exports.converters.registry import ConversionContext, ConversionError
from exports.converters.source import ListSource
from projects.label_config import parse_label_config
from tests.exports.converters.oracle import convert_ours, run_sdk, unzip, write_snapshot

CONFIG = """<View>
  <Image name="page" valueList="$pages"/>
  <TextArea name="doclang" toName="page"/>
  <Choices name="quality" toName="page"><Choice value="good"/></Choices>
</View>"""
SINGLE_PAGE_CONFIG = '<View><Image name="page" value="$scan"/><TextArea name="doclang" toName="page"/></View>'

DOC_V1 = '<doclang xmlns="https://www.doclang.ai/ns/v1"><page n="1"><text>Grüße, 世界</text></page></doclang>'
DOC_PLAIN = "<doclang><page><text>plain</text></page></doclang>"
DOC_V23 = '<?xml version="1.0" encoding="UTF-8"?>\n<d:doclang xmlns:d="https://www.doclang.ai/ns/v23"/>'
NOT_DOCLANG = [
    '<doclang xmlns="https://www.doclang.ai/ns/vX"/>',  # not a numbered version
    '<doclang xmlns="https://example.com/ns/v1"/>',  # another namespace
    "<!DOCTYPE doclang><doclang/>",  # a DOCTYPE
    "<document>doclang</document>",  # another root
    "<doclang><unclosed></doclang>",  # not well-formed
    "doclang is a format",  # not XML
]

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
JPEG = b"\xff\xd8\xff\xe0" + b"\x01" * 20


def textarea(*texts):
    return {"from_name": "doclang", "to_name": "page", "type": "textarea", "value": {"text": list(texts)}}


def varied_tasks():
    return [
        {
            "id": 1,
            "data": {"pages": ["https://example.com/p1.png"]},
            "annotations": [
                {"id": 10, "result": [textarea("just text", DOC_V1)]},
                {"id": 11, "was_cancelled": True, "result": [textarea(DOC_PLAIN)]},
                {"id": 12, "result": [textarea(*NOT_DOCLANG)]},
                {"id": 13, "result": [textarea(DOC_PLAIN, DOC_V1)]},  # the first document found wins
            ],
            "drafts": [
                {"id": 5, "annotation": 10, "result": [textarea(DOC_PLAIN)]},  # its annotation gave a document
                {"id": 6, "annotation": 12, "result": [textarea(DOC_PLAIN)]},
                {"id": 7, "annotation": None, "result": [textarea(DOC_V23)]},
            ],
            "predictions": [
                {"id": 70, "result": [{"from_name": "x", "type": "custom", "value": {"a": [{"b": DOC_V1}]}}]},
                {"id": 71, "result": [{"from_name": "quality", "type": "choices", "value": {"choices": [DOC_V1]}}]},
                {"id": 72, "result": [{"from_name": "r", "type": "reactcode", "value": {"reactcode": DOC_PLAIN}}]},
            ],
        },
        {  # documents in task data only: distinct ones, in order
            "id": 2,
            "data": {"pages": [], "meta": {"document": [DOC_V1, DOC_PLAIN, DOC_V1]}, "doclang": DOC_V23},
            "annotations": [],
        },
        {"id": 3, "data": {"doclang": DOC_PLAIN}, "annotations": [{"id": 30, "result": []}]},
        {"id": 4, "data": {"other": DOC_PLAIN}, "annotations": []},  # not under a known key
        {  # a result document hides the data one
            "id": 5,
            "data": {"doclang": DOC_PLAIN},
            "annotations": [{"id": 50, "result": [textarea(DOC_V1)]}],
        },
    ]


def _archive(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_archives_equal_sdk(tmp_path):
    snapshot = write_snapshot(varied_tasks(), tmp_path / "snapshot.json")
    sdk = run_sdk(CONFIG, snapshot, "DOCLANG", tmp_path / "sdk")
    ours = unzip(convert_ours(CONFIG, snapshot, "DOCLANG", tmp_path / "ours"))
    assert sorted(ours.files) == sorted(sdk.files)
    assert sorted(ours.files) == [
        "task-1-annotation-10.dclx",
        "task-1-annotation-13.dclx",
        "task-1-draft-6.dclx",
        "task-1-draft-7.dclx",
        "task-1-prediction-70.dclx",
        "task-1-prediction-72.dclx",
        "task-2-data-1.dclx",
        "task-2-data-2.dclx",
        "task-2-data-3.dclx",
        "task-3-data.dclx",
        "task-5-annotation-50.dclx",
    ]
    for name, content in sdk.files.items():
        expected, actual = _archive(content), _archive(ours.files[name])
        assert list(actual) == list(expected), name
        assert actual["document.xml"] == expected["document.xml"], name
    assert _archive(ours.files["task-1-annotation-13.dclx"])["document.xml"] == DOC_PLAIN.encode()
    assert _archive(ours.files["task-2-data-3.dclx"])["document.xml"] == DOC_V23.encode()


def test_archive_is_an_opc_package_pointing_at_the_document(tmp_path):
    snapshot = write_snapshot(varied_tasks()[:1], tmp_path / "snapshot.json")
    members = _archive(unzip(convert_ours(CONFIG, snapshot, "DOCLANG", tmp_path / "ours")).files["task-1-draft-7.dclx"])
    types = ElementTree.fromstring(members["[Content_Types].xml"])
    namespace = "{http://schemas.openxmlformats.org/package/2006/content-types}"
    overrides = {o.get("PartName"): o.get("ContentType") for o in types.iter(namespace + "Override")}
    assert overrides == {"/document.xml": "application/vnd.doclang.document+xml"}
    defaults = {d.get("Extension") for d in types.iter(namespace + "Default")}
    assert {"rels", "png", "jpg"} <= defaults
    relationship = ElementTree.fromstring(members["_rels/.rels"])[0]
    assert relationship.get("Target") == "document.xml"
    assert relationship.get("Type") == "http://doclang.ai/ns/package/2026/relationships/document"


def _data_url(content: bytes, media_type: str) -> str:
    return f"data:{media_type};base64," + base64.b64encode(content).decode()


def test_page_images_from_data_urls_equal_sdk(tmp_path):
    """With resources downloaded, page rasters are packed as pages/<n>.<ext>; `data:` URLs need no network."""
    tasks = [
        {
            "id": 8,
            "data": {
                "pages": [_data_url(PNG, "image/png"), "data:image/png,not-base64", _data_url(JPEG, "image/jpeg")]
            },
            "annotations": [{"id": 80, "result": [textarea(DOC_V1)]}],
        }
    ]
    snapshot = write_snapshot(tasks, tmp_path / "snapshot.json")
    sdk_dir = tmp_path / "sdk"
    convert_to_doclang(str(snapshot), str(sdk_dir), is_dir=False, image_key="image", image_list_key="pages")
    expected = _archive((sdk_dir / "task-8-annotation-80.dclx").read_bytes())
    ours = unzip(convert_ours(CONFIG, snapshot, "DOCLANG", tmp_path / "ours", download_resources=True))
    actual = _archive(ours.files["task-8-annotation-80.dclx"])
    assert list(actual) == list(expected)
    assert actual["pages/1.png"] == expected["pages/1.png"] == PNG
    assert actual["pages/3.jpg"] == expected["pages/3.jpg"] == JPEG
    assert "pages/2.png" not in actual


def test_page_images_are_fetched_through_the_context(tmp_path):
    requested = []

    def fetch_image(url):
        requested.append(url)
        if "missing" in url:
            return None, "404 Not Found"
        return (JPEG if "photo" in url else PNG), ""

    tasks = [
        {
            "id": 9,
            "data": {"scan": "https://example.com/scans/photo?size=large"},
            "annotations": [{"id": 90, "result": [textarea(DOC_V1)]}, {"id": 91, "result": [textarea(DOC_PLAIN)]}],
        },
        {"id": 10, "data": {"scan": "https://example.com/missing.png"}, "annotations": [{"id": 100, "result": []}]},
        {
            "id": 11,
            "data": {"scan": "https://example.com/missing.png"},
            "annotations": [{"id": 110, "result": [textarea(DOC_V1)]}],
        },
    ]
    context = ConversionContext(
        label_config=parse_label_config(SINGLE_PAGE_CONFIG), project_id=1, scratch_dir=tmp_path, fetch_image=fetch_image
    )
    out = io.BytesIO()
    convert(ListSource(tasks), out, context)
    archives = _archive(out.getvalue())
    # One fetch per task with documents, shared by its archives; none for a task without documents.
    assert requested == ["https://example.com/scans/photo?size=large", "https://example.com/missing.png"]
    assert sorted(_archive(archives["task-9-annotation-90.dclx"])) == [
        "[Content_Types].xml",
        "_rels/.rels",
        "document.xml",
        "pages/1.jpg",  # no extension in the URL: told by the bytes
    ]
    assert _archive(archives["task-9-annotation-91.dclx"])["pages/1.jpg"] == JPEG
    assert "pages/1.png" not in _archive(archives["task-11-annotation-110.dclx"])


def test_no_pages_without_download_resources(tmp_path):
    def fetch_image(url):
        raise AssertionError("must not fetch")

    tasks = [
        {
            "id": 1,
            "data": {"scan": _data_url(PNG, "image/png")},
            "annotations": [{"id": 1, "result": [textarea(DOC_V1)]}],
        }
    ]
    context = ConversionContext(
        label_config=parse_label_config(SINGLE_PAGE_CONFIG),
        project_id=1,
        scratch_dir=tmp_path,
        download_resources=False,
        fetch_image=fetch_image,
    )
    out = io.BytesIO()
    convert(ListSource(tasks), out, context)
    assert sorted(_archive(_archive(out.getvalue())["task-1-annotation-1.dclx"])) == [
        "[Content_Types].xml",
        "_rels/.rels",
        "document.xml",
    ]


def test_no_documents_fails_as_label_studio_does(tmp_path):
    tasks = [{"id": 1, "data": {"other": DOC_PLAIN}, "annotations": [{"id": 1, "result": [textarea("no")]}]}]
    snapshot = write_snapshot(tasks, tmp_path / "snapshot.json")
    assert not run_sdk(CONFIG, snapshot, "DOCLANG", tmp_path / "sdk").files
    with pytest.raises(ConversionError, match="No converted file found"):
        convert_ours(CONFIG, snapshot, "DOCLANG", tmp_path / "ours")


@pytest.mark.parametrize("text", NOT_DOCLANG)
def test_only_doclang_roots_count(text):
    assert doclang_document(text) is None


@pytest.mark.parametrize("text", [DOC_V1, DOC_PLAIN, DOC_V23])
def test_doclang_documents_are_kept_byte_for_byte(text):
    assert doclang_document(text) == text.encode("utf-8")


def test_entity_expansion_is_refused():
    bomb = '<!DOCTYPE doclang [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><doclang>&b;</doclang>'
    assert doclang_document(bomb) is None


def test_deep_values_are_walked_within_bounds():
    deep = DOC_PLAIN
    for _ in range(40):
        deep = [deep]
    task = {"id": 1, "data": {}, "annotations": [{"id": 1, "result": [{"type": "custom", "value": {"v": deep}}]}]}
    assert list(document_sources(task)) == []  # deeper than 32 levels: not searched, as the SDK


def test_image_keys_from_config():
    assert image_data_keys(parse_label_config(CONFIG)) == ("image", "pages")
    assert image_data_keys(parse_label_config(SINGLE_PAGE_CONFIG)) == ("scan", None)
    unattached = (
        '<View><Image name="p" value="$photo"/><TextArea name="t" toName="p"/><Image name="q" value="$x"/></View>'
    )
    assert image_data_keys(parse_label_config(unattached), unattached) == ("x", None)
