"""Every format of the registry converts through the API: snapshot → convert → completed → download.

Each format is tried on a project whose labeling config enables it, with tasks of the kind the format
exports (boxes and brush masks on images, NER spans on text, transcriptions of audio, DocLang documents).
The downloaded file must be the converter's own output for the downloaded snapshot, served with the
registry's content type and extension; what is inside each format is checked against label-studio-sdk in
`tests/exports/converters/`.
"""

import csv
import io
import json
import re
import zipfile

import numpy as np
import pytest
from label_studio_sdk.converter.brush import mask2rle

from exports.converters.availability import enabled_format_names
from exports.converters.registry import FORMATS, get_format
from projects.label_config import parse_label_config
from projects.services import tasks_import
from tests.exports.converters.oracle import convert_ours
from tests.exports.helpers import create_export, detail_url, download_url
from tests.factories import make_project

pytestmark = pytest.mark.django_db

IMAGE = """<View><Image name="image" value="$image"/>
<RectangleLabels name="box" toName="image"><Label value="Cat"/><Label value="Dog"/></RectangleLabels>
<BrushLabels name="brush" toName="image"><Label value="Cat"/></BrushLabels>
<Choices name="scene" toName="image"><Choice value="Indoor"/><Choice value="Outdoor"/></Choices></View>"""
TEXT = """<View><Text name="text" value="$text"/>
<Labels name="ner" toName="text"><Label value="PER"/><Label value="LOC"/></Labels></View>"""
AUDIO = """<View><Audio name="audio" value="$audio"/><TextArea name="transcription" toName="audio"/></View>"""
DOCLANG = """<View><Image name="page" value="$scan"/><TextArea name="doclang" toName="page"/></View>"""


def _image_tasks() -> list[dict]:
    mask = np.zeros((48, 64), dtype=np.uint8)
    mask[10:30, 20:40] = 255
    box = {
        "from_name": "box",
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": 64,
        "original_height": 48,
        "value": {"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 0, "rectanglelabels": ["Cat"]},
    }
    brush = {
        "from_name": "brush",
        "to_name": "image",
        "type": "brushlabels",
        "original_width": 64,
        "original_height": 48,
        "value": {"format": "rle", "rle": mask2rle(mask), "brushlabels": ["Cat"]},
    }
    scene = {"from_name": "scene", "to_name": "image", "type": "choices", "value": {"choices": ["Indoor"]}}
    return [
        {"data": {"image": f"https://example.com/{n}.jpg"}, "annotations": [{"result": [box, brush, scene]}]}
        for n in range(3)
    ] + [{"data": {"image": "https://example.com/empty.jpg"}}]


def _text_tasks() -> list[dict]:
    text = "Ana lives in Lisboa ."
    spans = [(0, 3, "PER"), (13, 19, "LOC")]
    result = [
        {
            "from_name": "ner",
            "to_name": "text",
            "type": "labels",
            "value": {"start": start, "end": end, "text": text[start:end], "labels": [label]},
        }
        for start, end, label in spans
    ]
    return [{"data": {"text": text}, "annotations": [{"result": result}]}, {"data": {"text": "No spans here ."}}]


def _audio_tasks() -> list[dict]:
    said = {"from_name": "transcription", "to_name": "audio", "type": "textarea", "value": {"text": ["hello there"]}}
    return [{"data": {"audio": "https://example.com/a.wav"}, "annotations": [{"result": [said]}]}]


def _doclang_tasks() -> list[dict]:
    document = "<doclang><page><text>Grüße</text></page></doclang>"
    result = [{"from_name": "doclang", "to_name": "page", "type": "textarea", "value": {"text": [document]}}]
    return [{"data": {"scan": "https://example.com/page.png"}, "annotations": [{"result": result}]}]


GROUPS = {"image": (IMAGE, _image_tasks), "text": (TEXT, _text_tasks), "audio": (AUDIO, _audio_tasks)}
GROUPS["doclang"] = (DOCLANG, _doclang_tasks)
PREFERRED = {"DOCLANG": "doclang"}  # a TextArea on audio enables it too, but has no documents to pack
DATE_CREATED = re.compile(rb'"date_created": ?"[^"]*"')


def _group_for(name: str) -> str:
    if name in PREFERRED:
        return PREFERRED[name]
    for group, (config, _tasks) in GROUPS.items():
        if name in enabled_format_names(parse_label_config(config)):
            return group
    raise AssertionError(f"no test config enables {name}")


CASES = [(fmt.name, _group_for(fmt.name)) for fmt in FORMATS]


def test_the_cases_cover_every_format():
    assert {name for name, _group in CASES} == {fmt.name for fmt in FORMATS}


def _entries(archive: zipfile.ZipFile) -> dict[str, bytes]:
    """Entry name → bytes, with COCO's `date_created` (the time of writing) blanked."""
    return {name: DATE_CREATED.sub(b'"date_created":""', archive.read(name)) for name in archive.namelist()}


def _check_content(name: str, content: bytes) -> None:
    fmt = get_format(name)
    if fmt.extension == "zip":
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            assert archive.testzip() is None
            assert archive.namelist(), f"{name}: empty archive"
    elif fmt.extension == "json":
        assert isinstance(json.loads(content), list)
    elif fmt.extension == "jsonl":
        assert content.endswith(b"\n")
        assert all(isinstance(json.loads(line), dict) for line in content.splitlines())
    elif fmt.extension in ("csv", "tsv"):
        rows = list(csv.reader(io.StringIO(content.decode()), delimiter="\t" if fmt.extension == "tsv" else ","))
        assert len(rows) >= 2, f"{name}: no rows"
    else:
        assert content.strip(), f"{name}: empty file"


@pytest.mark.parametrize(("name", "group"), CASES)
def test_format_converts_through_the_api(name, group, api_client, user, tmp_path, django_capture_on_commit_callbacks):
    config, make_tasks = GROUPS[group]
    project = make_project(user=user, title=f"Every format {group}", label_config=config)
    tasks_import(project=project, user=user, payload=make_tasks())
    export = create_export(api_client, project, django_capture_on_commit_callbacks)
    assert export["status"] in ("created", "completed")
    url = f"/api/projects/{project.pk}/exports/{export['id']}/convert"
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(url, {"export_type": name}, format="json")
    assert response.status_code == 200, response.content

    detail = api_client.get(detail_url(project, export["id"])).json()
    [converted] = [item for item in detail["converted_formats"] if item["export_type"] == name]
    assert (converted["status"], converted["traceback"]) == ("completed", None)

    response = api_client.get(download_url(project, export["id"]), {"exportType": name})
    assert response.status_code == 200
    fmt = get_format(name)
    assert response["Content-Type"].split(";")[0] == fmt.content_type
    assert response["Content-Disposition"].endswith(f'.{fmt.extension}"')
    content = b"".join(response.streaming_content) if response.streaming else response.content
    _check_content(name, content)

    snapshot = api_client.get(download_url(project, export["id"]))
    path = tmp_path / "snapshot.json"
    path.write_bytes(b"".join(snapshot.streaming_content) if snapshot.streaming else snapshot.content)
    (tmp_path / "scratch").mkdir()
    # JSON is the snapshot itself (its download serves the snapshot file); the others are their converter's output.
    expected = path.read_bytes() if name == "JSON" else convert_ours(config, path, name, tmp_path / "scratch")
    if fmt.extension == "zip":  # entries compared by content: archive metadata holds write times
        with zipfile.ZipFile(io.BytesIO(content)) as got, zipfile.ZipFile(io.BytesIO(expected)) as want:
            assert _entries(got) == _entries(want)
    else:
        assert content == expected
