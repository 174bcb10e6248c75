"""COCO, YOLO, YOLO OBB and Pascal VOC archives, checked against label-studio-sdk 2.1.2's converter.

Each case is written as a snapshot file, converted by the SDK (as Label Studio 1.23.2 does) and by this project,
and the parsed contents are compared: COCO's JSON (the `info` block holds the time, so it is left out), YOLO's
lines with a float tolerance, VOC's XML trees. Where this project deliberately differs (the SDK loses VOC files,
overwrites images that share a name, ignores a rectangle's angle in YOLO and VOC), the test says so and checks
the values worked out by hand instead.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from PIL import Image

from exports.converters.images import FOREIGN_FILE
from exports.converters.registry import ConversionContext, ConversionError, get_format
from exports.converters.source import ListSource
from exports.converters.ziparchive import Archive
from projects.label_config import parse_label_config
from tests.exports.converters.oracle import SdkOutput, convert_ours, run_sdk, unzip, write_snapshot

RECT_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Car"/>
    <Label value="Person"/>
  </RectangleLabels>
</View>"""

MULTI_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="vehicles" toName="image">
    <Label value="Car"/>
    <Label value="Truck"/>
  </RectangleLabels>
  <RectangleLabels name="people" toName="image">
    <Label value="Person"/>
  </RectangleLabels>
  <PolygonLabels name="areas" toName="image">
    <Label value="Road"/>
  </PolygonLabels>
  <Choices name="weather" toName="image">
    <Choice value="Sunny"/>
    <Choice value="Rain"/>
  </Choices>
</View>"""

POLYGON_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <PolygonLabels name="shape" toName="image">
    <Label value="Road"/>
    <Label value="Field"/>
  </PolygonLabels>
  <RectangleLabels name="label" toName="image">
    <Label value="Car"/>
  </RectangleLabels>
</View>"""

KEYPOINT_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image">
    <Label value="Face"/>
  </RectangleLabels>
  <KeyPointLabels name="kp" toName="image">
    <Label value="left_eye" model_index="0"/>
    <Label value="right_eye" model_index="1"/>
    <Label value="nose" model_index="2"/>
  </KeyPointLabels>
</View>"""

UNICODE_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Автомобиль"/>
    <Label value="歩行者 🚶"/>
    <Label value="R&amp;D &lt;x&gt;"/>
  </RectangleLabels>
</View>"""

CATEGORY_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="safe_b" category="2"/>
    <Label value="safe_h" category="0"/>
    <Label value="n_safe_b" category="3"/>
    <Label value="n_safe_h" category="1"/>
  </RectangleLabels>
</View>"""


def rect(
    label: str | list[str] = "Car",
    x: float = 10.0,
    y: float = 20.0,
    w: float = 30.0,
    h: float = 40.0,
    *,
    rotation: float = 0,
    from_name: str = "label",
    size: tuple[int, int] = (1920, 1080),
    region_id: str | None = None,
    key: str = "rectanglelabels",
) -> dict[str, Any]:
    labels = label if isinstance(label, list) else [label]
    return {
        "id": region_id or f"r{x}-{y}",
        "from_name": from_name,
        "to_name": "image",
        "type": key,
        "original_width": size[0],
        "original_height": size[1],
        "image_rotation": 0,
        "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation, key: labels},
    }


def polygon(label: str = "Road", pts=None, *, from_name: str = "shape", size=(800, 600)) -> dict[str, Any]:
    return {
        "id": "p1",
        "from_name": from_name,
        "to_name": "image",
        "type": "polygonlabels",
        "original_width": size[0],
        "original_height": size[1],
        "value": {"points": pts or [[10, 10], [50, 12.5], [45.5, 60], [12, 40]], "polygonlabels": [label]},
    }


def keypoint(label: str, x: float, y: float, parent: str, size=(640, 480)) -> dict[str, Any]:
    return {
        "id": f"k-{label}-{parent}",
        "from_name": "kp",
        "to_name": "image",
        "type": "keypointlabels",
        "original_width": size[0],
        "original_height": size[1],
        "parentID": parent,
        "value": {"x": x, "y": y, "width": 0.5, "keypointlabels": [label]},
    }


def choice(value: str, from_name: str = "weather") -> dict[str, Any]:
    return {"id": "c1", "from_name": from_name, "to_name": "image", "type": "choices", "value": {"choices": [value]}}


def annotation(annotation_id: int, result: list, *, created_at: str = "2024-01-15T09:30:00.000000Z", **extra) -> dict:
    return {
        "id": annotation_id,
        "completed_by": extra.pop("completed_by", 1),
        "result": result,
        "was_cancelled": extra.pop("was_cancelled", False),
        "ground_truth": False,
        "created_at": created_at,
        "updated_at": created_at,
        "lead_time": 3.5,
        **extra,
    }


def task(task_id: int, image: str, annotations: list | None = None, **extra) -> dict[str, Any]:
    return {"id": task_id, "data": {"image": image}, "annotations": annotations or [], "predictions": [], **extra}


URL = "https://example.com/images/{}.jpg"

CASES: dict[str, tuple[str, list[dict]]] = {
    "rectangles": (
        RECT_CONFIG,
        [
            task(1, URL.format(1), [annotation(11, [rect("Car"), rect("Person", 55.5, 12.25, 20.1, 33.3)])]),
            task(2, URL.format(2), [annotation(12, [rect("Person", 0, 0, 100, 100, size=(640, 480))])]),
        ],
    ),
    "rotated rectangles": (
        RECT_CONFIG,
        [
            task(1, URL.format(1), [annotation(11, [rect("Car", rotation=30, size=(1000, 1000))])]),
            task(2, URL.format(2), [annotation(12, [rect("Person", 40, 40, 10, 20, rotation=-45.5, size=(500, 500))])]),
        ],
    ),
    "polygons": (
        POLYGON_CONFIG,
        [
            task(1, URL.format(1), [annotation(11, [polygon("Road"), rect("Car", size=(800, 600))])]),
            task(2, URL.format(2), [annotation(12, [polygon("Field", [[0, 0], [100, 0], [100, 100]])])]),
        ],
    ),
    "keypoints": (
        KEYPOINT_CONFIG,
        [
            task(
                1,
                URL.format(1),
                [
                    annotation(
                        11,
                        [
                            rect("Face", 20, 20, 40, 50, from_name="box", size=(640, 480), region_id="f1"),
                            keypoint("left_eye", 30, 35, "f1"),
                            keypoint("nose", 40.3, 45.9, "f1"),
                            keypoint("right_eye", 50, 35.1, "f1"),
                        ],
                    )
                ],
            ),
            task(
                2,
                URL.format(2),
                [
                    annotation(
                        12,
                        [
                            rect("Face", 5, 5, 10, 10, from_name="box", size=(640, 480), region_id="f2"),
                            keypoint("nose", 10, 10, "f2"),
                        ],
                    )
                ],
            ),
        ],
    ),
    "several labels and controls": (
        MULTI_CONFIG,
        [
            task(
                1,
                URL.format(1),
                [
                    annotation(
                        11,
                        [
                            rect("Car", from_name="vehicles"),
                            rect("Person", 60, 10, 10, 30, from_name="people"),
                            rect(["Car", "Truck"], 5, 5, 5, 5, from_name="vehicles"),
                            polygon("Road", from_name="areas", size=(1920, 1080)),
                            choice("Sunny"),
                        ],
                    )
                ],
            ),
        ],
    ),
    "empty annotations": (
        RECT_CONFIG,
        [
            task(1, URL.format(1), [annotation(11, [rect("Car")])]),
            task(2, URL.format(2), [annotation(12, [])]),
            task(3, URL.format(3), [annotation(13, [])]),
        ],
    ),
    "cancelled annotations": (
        RECT_CONFIG,
        [
            task(1, URL.format(1), [annotation(11, [rect("Car")], was_cancelled=True)]),
            task(
                2,
                URL.format(2),
                [annotation(12, [rect("Person")], was_cancelled=True), annotation(13, [rect("Car", 1, 1, 2, 2)])],
            ),
        ],
    ),
    "tasks without annotations": (
        RECT_CONFIG,
        [
            task(1, URL.format(1)),
            task(2, URL.format(2), [annotation(12, [rect("Car")])]),
            task(3, URL.format(3)),
        ],
    ),
    "unicode labels and file names": (
        UNICODE_CONFIG,
        [
            task(1, "https://example.com/fotos/Ünïcödé 图像.jpg", [annotation(11, [rect("Автомобиль")])]),
            task(2, "https://example.com/%E5%9B%BE.png", [annotation(12, [rect("歩行者 🚶"), rect("R&D <x>", 1, 1)])]),
        ],
    ),
    "several annotators": (
        RECT_CONFIG,
        [
            task(
                1,
                URL.format(1),
                [
                    annotation(11, [rect("Car")], created_at="2024-01-01T00:00:00Z", completed_by=1),
                    annotation(12, [rect("Person", 50)], created_at="2024-02-01T00:00:00Z", completed_by=2),
                    annotation(13, [], created_at="2023-12-01T00:00:00Z", completed_by=3),
                ],
            ),
            task(
                2,
                URL.format(2),
                [
                    annotation(14, [rect("Person", 1)], created_at="2024-03-01T00:00:00Z", completed_by=2),
                    annotation(15, [rect("Car", 2)], created_at="2024-03-02T00:00:00Z", completed_by=1),
                ],
            ),
        ],
    ),
    "uploaded and local storage paths": (
        RECT_CONFIG,
        [
            task(1, "/data/upload/3/5a1b2c3d-photo.jpg", [annotation(11, [rect("Car")])]),
            task(2, "/data/local-files/?d=folder/sub/img.png", [annotation(12, [rect("Person")])]),
            task(3, "s3://bucket/dir/cloud.jpg", [annotation(13, [rect("Car", 3)])]),
            task(4, "https://example.com/a.jpg?token=1", [annotation(14, [rect("Car", 4)])]),
        ],
    ),
}

FORMATS = ("COCO", "YOLO", "YOLO_OBB", "VOC")

# Case and format pairs where the SDK's output is wrong on purpose-built data; each has a test of its own below.
DIFFERENT = {
    ("rotated rectangles", "YOLO"),  # the SDK ignores the angle
    ("rotated rectangles", "VOC"),  # the SDK ignores the angle
    ("empty annotations", "VOC"),  # the SDK writes no file for an annotation without boxes
}


def both(config: str, tasks: list[dict], fmt: str, tmp_path: Path) -> tuple[SdkOutput, SdkOutput]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    snapshot = write_snapshot(tasks, tmp_path / "snapshot.json")
    sdk = run_sdk(config, snapshot, fmt, tmp_path / "sdk")
    ours = unzip(convert_ours(config, snapshot, fmt, tmp_path / "scratch"))
    return sdk, ours


def close(a: Any, b: Any, tolerance: float = 1e-6) -> bool:
    """Equal JSON-like values, numbers within a relative/absolute tolerance."""
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y, tolerance) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], tolerance) for k in a)
    return a == b


def yolo_lines(text: bytes) -> list[list[float]]:
    return [[float(v) for v in line.split()] for line in text.decode().splitlines() if line.strip()]


def assert_same_coco(sdk: SdkOutput, ours: SdkOutput) -> None:
    theirs, mine = json.loads(sdk.files["result.json"]), json.loads(ours.files["result.json"])
    assert set(mine) == set(theirs) == {"images", "categories", "annotations", "info"}
    assert sorted(mine["categories"], key=lambda c: c["id"]) == sorted(theirs["categories"], key=lambda c: c["id"])
    assert mine["images"] == theirs["images"]
    assert close(mine["annotations"], theirs["annotations"]), (mine["annotations"], theirs["annotations"])
    assert mine["info"]["contributor"] == "Label Studio"


def assert_same_yolo(sdk: SdkOutput, ours: SdkOutput) -> None:
    assert set(ours.files) == set(sdk.files)
    assert ours.dirs == sdk.dirs == {"images", "labels"}
    assert ours.files["classes.txt"] == sdk.files["classes.txt"]
    notes_theirs, notes_mine = json.loads(sdk.files["notes.json"]), json.loads(ours.files["notes.json"])
    assert sorted(notes_mine["categories"], key=lambda c: c["id"]) == sorted(
        notes_theirs["categories"], key=lambda c: c["id"]
    )
    for name in sdk.files:
        if name.startswith("labels/"):
            assert close(yolo_lines(ours.files[name]), yolo_lines(sdk.files[name])), name


def xml_tree(data: bytes) -> Any:
    def walk(element):
        return (element.tag, (element.text or "").strip(), [walk(child) for child in element])

    return walk(ElementTree.fromstring(data))


def assert_same_voc(sdk: SdkOutput, ours: SdkOutput) -> None:
    assert set(ours.files) == set(sdk.files)
    assert ours.dirs == sdk.dirs
    for name, data in sdk.files.items():
        assert xml_tree(ours.files[name]) == xml_tree(data), name


COMPARE = {"COCO": assert_same_coco, "YOLO": assert_same_yolo, "YOLO_OBB": assert_same_yolo, "VOC": assert_same_voc}


@pytest.mark.parametrize(
    ("case", "fmt"), [(case, fmt) for case in sorted(CASES) for fmt in FORMATS if (case, fmt) not in DIFFERENT]
)
def test_same_content_as_label_studio_converter(case, fmt, tmp_path):
    """Each case converts to the same files and parsed content as the SDK's converter gives."""
    config, tasks = CASES[case]
    sdk, ours = both(config, tasks, fmt, tmp_path)
    COMPARE[fmt](sdk, ours)


def test_every_format_is_registered_to_these_converters():
    for name in ("COCO", "COCO_WITH_IMAGES", "VOC", "YOLO", "YOLO_WITH_IMAGES", "YOLO_OBB", "YOLO_OBB_WITH_IMAGES"):
        fmt = get_format(name)
        assert fmt is not None
        assert fmt.extension == "zip"
        assert callable(fmt.load())


def test_layout_of_the_recorded_label_studio_archives(tmp_path):
    """The archives hold the entries Label Studio's recorded downloads show (spec 94-96)."""
    config, tasks = CASES["rectangles"]
    snapshot = write_snapshot(tasks, tmp_path / "s.json")
    names = {}
    for fmt in ("COCO", "YOLO", "VOC"):
        with zipfile.ZipFile(io.BytesIO(convert_ours(config, snapshot, fmt, tmp_path / fmt))) as archive:
            names[fmt] = set(archive.namelist())
    digest = hashlib.md5(URL.format(1).encode()).hexdigest()[:8]
    assert names["COCO"] == {"images/", "result.json"}
    assert {"images/", "labels/", "notes.json", "classes.txt", f"labels/{digest}__1.txt"} <= names["YOLO"]
    assert {"Annotations/", "images/", f"Annotations/{digest}__1.xml"} <= names["VOC"]


# --- where this project deliberately differs -------------------------------------------------------------------


def test_rotated_rectangle_in_yolo_and_voc_is_the_box_holding_it(tmp_path):
    """A rectangle turned 90° about its top-left corner spans x -30..10 %, y 20..50 % (the SDK ignores the angle)."""
    tasks = [task(1, URL.format(1), [annotation(11, [rect("Car", 10, 20, 30, 40, rotation=90, size=(200, 100))])])]
    snapshot = write_snapshot(tasks, tmp_path / "s.json")
    name = f"{hashlib.md5(URL.format(1).encode()).hexdigest()[:8]}__1"
    yolo = unzip(convert_ours(RECT_CONFIG, snapshot, "YOLO", tmp_path / "y"))
    # In pixels (200 × 100): corner (20, 20); width 60 px turns to point down, height 40 px to point left.
    # Box: x -20..20 px, y 20..80 px.
    assert close(yolo_lines(yolo.files[f"labels/{name}.txt"]), [[0, 0.0, 0.5, 0.2, 0.6]])
    voc = unzip(convert_ours(RECT_CONFIG, snapshot, "VOC", tmp_path / "v"))
    box = ElementTree.fromstring(voc.files[f"Annotations/{name}.xml"]).find("object/bndbox")
    assert [int(box.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")] == [-20, 20, 20, 80]
    obb = unzip(convert_ours(RECT_CONFIG, snapshot, "YOLO_OBB", tmp_path / "o"))
    expected_corners = [0.1, 0.2, 0.1, 0.8, -0.1, 0.8, -0.1, 0.2]
    assert close(yolo_lines(obb.files[f"labels/{name}.txt"]), [[0, *expected_corners]])
    coco = json.loads(unzip(convert_ours(RECT_CONFIG, snapshot, "COCO", tmp_path / "c")).files["result.json"])
    assert close(coco["annotations"][0]["bbox"], [-20.0, 20.0, 40.0, 60.0])


def test_coco_rotated_box_is_computed_in_pixels_on_a_non_square_image(tmp_path):
    """The SDK turns the box in percent units, which is wrong unless the image is square; this one is 200 × 100."""
    tasks = [task(1, URL.format(1), [annotation(11, [rect("Car", 10, 20, 30, 40, rotation=90, size=(200, 100))])])]
    sdk, ours = both(RECT_CONFIG, tasks, "COCO", tmp_path)
    theirs = json.loads(sdk.files["result.json"])["annotations"][0]["bbox"]
    mine = json.loads(ours.files["result.json"])["annotations"][0]["bbox"]
    assert close(mine, [-20.0, 20.0, 40.0, 60.0])
    assert not close(theirs, mine)


@pytest.mark.parametrize("fmt", ["YOLO", "VOC"])
def test_images_sharing_a_file_name_are_all_kept(fmt, tmp_path):
    """Two Local Storage files named 1.jpg in different folders, and one URL used by two tasks: no file is lost
    (the SDK writes one label file per file name, the later task overwriting the earlier)."""
    tasks = [
        task(1, "/data/local-files/?d=a/1.jpg", [annotation(11, [rect("Car")])]),
        task(2, "/data/local-files/?d=b/1.jpg", [annotation(12, [rect("Person")])]),
        task(3, URL.format(7), [annotation(13, [rect("Car", 5)])]),
        task(4, URL.format(7), [annotation(14, [rect("Car", 6)])]),
    ]
    sdk, ours = both(RECT_CONFIG, tasks, fmt, tmp_path)
    folder, suffix = ("labels", ".txt") if fmt == "YOLO" else ("Annotations", ".xml")
    digest = hashlib.md5(URL.format(7).encode()).hexdigest()[:8]
    expected = {f"{folder}/1{suffix}", f"{folder}/1__task2{suffix}", f"{folder}/{digest}__7{suffix}"}
    expected.add(f"{folder}/{digest}__7__task4{suffix}")
    assert {name for name in ours.files if name.startswith(folder)} == expected
    assert len([name for name in sdk.files if name.startswith(folder)]) == 2
    if fmt == "YOLO":
        assert yolo_lines(ours.files["labels/1.txt"])[0][0] == 0  # Car, task 1
        assert yolo_lines(ours.files["labels/1__task2.txt"])[0][0] == 1  # Person, task 2
    else:
        renamed = ElementTree.fromstring(ours.files["Annotations/1__task2.xml"])
        assert renamed.findtext("filename") == "1__task2.jpg"
        assert renamed.findtext("object/name") == "Person"


def test_voc_keeps_images_the_label_studio_converter_drops(tmp_path):
    """Label Studio issue #3738 (494 annotated images, 275 VOC files): the SDK skips an annotation without boxes
    and a task whose first result is a Choices answer (no image size); both get a file here."""
    tasks = [
        task(1, URL.format(1), [annotation(11, [rect("Car")])]),
        task(2, URL.format(2), [annotation(12, [])]),  # annotated: no object in the image
        task(3, URL.format(3), [annotation(13, [choice("Rain"), rect("Person", from_name="people")])]),
        task(4, URL.format(4)),  # not annotated: no file, as in the SDK
    ]
    sdk, ours = both(MULTI_CONFIG.replace('name="vehicles"', 'name="label"'), tasks, "VOC", tmp_path)
    stems = [f"{hashlib.md5(URL.format(i).encode()).hexdigest()[:8]}__{i}" for i in (1, 2, 3)]
    assert set(sdk.files) == {f"Annotations/{stems[0]}.xml"}
    assert set(ours.files) == {f"Annotations/{stem}.xml" for stem in stems}
    assert xml_tree(ours.files[f"Annotations/{stems[0]}.xml"]) == xml_tree(sdk.files[f"Annotations/{stems[0]}.xml"])
    empty = ElementTree.fromstring(ours.files[f"Annotations/{stems[1]}.xml"])
    assert empty.findall("object") == []
    assert empty.findtext("filename") == f"{stems[1]}.jpg"
    with_choice = ElementTree.fromstring(ours.files[f"Annotations/{stems[2]}.xml"])
    assert with_choice.findtext("size/width") == "1920"
    assert [o.findtext("name") for o in with_choice.findall("object")] == ["Person"]
    bndbox = with_choice.find("object/bndbox")
    assert [bndbox.findtext(k) for k in ("xmin", "ymin", "xmax", "ymax")] == ["192", "216", "768", "648"]


def test_regions_are_grouped_by_control_in_first_appearance_order(tmp_path):
    """Objects come control by control (vehicles, then people), as in the SDK; polygon and choice give none."""
    config, tasks = CASES["several labels and controls"]
    sdk, ours = both(config, tasks, "VOC", tmp_path)
    [name] = sdk.files
    assert [o.findtext("name") for o in ElementTree.fromstring(ours.files[name]).findall("object")] == [
        "Car",
        "Car",
        "Person",
    ]


def test_coco_keeps_an_image_whose_annotation_is_only_a_classification(tmp_path):
    """The SDK leaves out an image whose annotation has only a Choices answer; it is listed here, unsized."""
    tasks = [
        task(1, URL.format(1), [annotation(11, [choice("Rain")])]),
        task(2, URL.format(2), [annotation(12, [rect("Car", from_name="vehicles")])]),
    ]
    sdk, ours = both(MULTI_CONFIG, tasks, "COCO", tmp_path)
    theirs, mine = json.loads(sdk.files["result.json"]), json.loads(ours.files["result.json"])
    assert [i["file_name"] for i in theirs["images"]] == [
        f"images/{hashlib.md5(URL.format(2).encode()).hexdigest()[:8]}__2.jpg"
    ]
    assert [i["file_name"] for i in mine["images"]] == [
        f"images/{hashlib.md5(URL.format(i).encode()).hexdigest()[:8]}__{i}.jpg" for i in (1, 2)
    ]
    assert mine["images"][0]["width"] is None
    assert [a["image_id"] for a in mine["annotations"]] == [1]


def test_classes_txt_line_is_the_class_id(tmp_path):
    """Labels with `category` keep their ids and classes.txt lists class i on line i (Label Studio issue #6416)."""
    tasks = [task(1, URL.format(1), [annotation(11, [rect("safe_b"), rect("n_safe_h", 1)])])]
    sdk, ours = both(CATEGORY_CONFIG, tasks, "YOLO", tmp_path)
    assert sdk.files["classes.txt"].decode().split() == ["safe_b", "safe_h", "n_safe_b", "n_safe_h"]  # wrong order
    assert ours.files["classes.txt"].decode().split() == ["safe_h", "n_safe_h", "safe_b", "n_safe_b"]
    label = next(name for name in ours.files if name.startswith("labels/"))
    assert [line[0] for line in yolo_lines(ours.files[label])] == [2, 1]
    assert close(yolo_lines(ours.files[label]), yolo_lines(sdk.files[label]))


def test_classes_txt_fills_gaps_in_explicit_ids(tmp_path):
    config = RECT_CONFIG.replace('<Label value="Car"/>', '<Label value="Car" category="3"/>')
    tasks = [task(1, URL.format(1), [annotation(11, [rect("Car"), rect("Person")])])]
    ours = unzip(convert_ours(config, write_snapshot(tasks, tmp_path / "s.json"), "YOLO", tmp_path / "o"))
    assert ours.files["classes.txt"].decode().splitlines() == ["Person", "unused_class_1", "unused_class_2", "Car"]


def test_yolo_obb_keeps_rectangles_without_rotation_key(tmp_path):
    """The SDK drops OBB boxes whose value has no `rotation`; they are written unrotated here."""
    region = rect("Car", 10, 20, 30, 40, size=(100, 100))
    del region["value"]["rotation"]
    tasks = [task(1, URL.format(1), [annotation(11, [region])])]
    sdk, ours = both(RECT_CONFIG, tasks, "YOLO_OBB", tmp_path)
    name = next(name for name in ours.files if name.startswith("labels/"))
    assert sdk.files[name] == b""
    assert close(yolo_lines(ours.files[name]), [[0, 0.1, 0.2, 0.4, 0.2, 0.4, 0.6, 0.1, 0.6]])


def test_unknown_label_gets_the_next_class_id(tmp_path):
    tasks = [task(1, URL.format(1), [annotation(11, [rect("Bicycle"), rect("Car")])])]
    sdk, ours = both(RECT_CONFIG, tasks, "YOLO", tmp_path)
    assert_same_yolo(sdk, ours)
    assert ours.files["classes.txt"].decode().splitlines() == ["Car", "Person", "Bicycle"]


def test_keypoints_without_model_index_follow_config_order(tmp_path):
    """The SDK fails COCO when no keypoint label has a `model_index`; here config order is used."""
    config = KEYPOINT_CONFIG.replace(' model_index="0"', "").replace(' model_index="1"', "")
    config = config.replace(' model_index="2"', "")
    tasks = CASES["keypoints"][1]
    snapshot = write_snapshot(tasks, tmp_path / "s.json")
    with pytest.raises(ValueError, match="No keypoint order"):
        run_sdk(config, snapshot, "COCO", tmp_path / "sdk")
    coco = json.loads(unzip(convert_ours(config, snapshot, "COCO", tmp_path / "o")).files["result.json"])
    merged = next(c for c in coco["categories"] if c["name"] == "default")
    assert merged["keypoints"] == ["left_eye", "right_eye", "nose"]
    first = next(a for a in coco["annotations"] if "keypoints" in a and a["image_id"] == 0)
    # 640 × 480: left eye (30 %, 35 %) → (192, 168); right eye (50 %, 35.1 %) → (320, 168); nose → (258, 220).
    assert first["keypoints"] == [192, 168, 2, 320, 168, 2, 258, 220, 2]
    assert first["num_keypoints"] == 3
    assert first["bbox"] == [192, 168, 128, 52]


# --- bad data ---------------------------------------------------------------------------------------------------


def convert_list(config: str, tasks: list[dict], fmt: str, tmp_path: Path, **context: Any) -> bytes:
    tmp_path.mkdir(parents=True, exist_ok=True)
    ctx = ConversionContext(label_config=parse_label_config(config), project_id=1, scratch_dir=tmp_path, **context)
    out = io.BytesIO()
    get_format(fmt).load()(ListSource(tasks), out, ctx)
    return out.getvalue()


@pytest.mark.parametrize("fmt", FORMATS)
def test_task_without_image_url_names_the_task(fmt, tmp_path):
    tasks = [{"id": 42, "data": {"text": "no image"}, "annotations": [annotation(1, [rect()])]}]
    with pytest.raises(ConversionError, match=r"Task 42: the data has no image URL under 'image'"):
        convert_list(RECT_CONFIG, tasks, fmt, tmp_path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_task_with_only_cancelled_annotations_needs_no_image_url(fmt, tmp_path):
    tasks = [
        {"id": 42, "data": {}, "annotations": [annotation(1, [rect()], was_cancelled=True)]},
        task(2, URL.format(2), [annotation(2, [rect()])]),
    ]
    output = unzip(convert_list(RECT_CONFIG, tasks, fmt, tmp_path))
    if fmt == "COCO":
        assert [image["id"] for image in json.loads(output.files["result.json"])["images"]] == [0]
    else:
        assert len([name for name in output.files if name.startswith(("labels/", "Annotations/"))]) == 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_non_numeric_coordinate_names_task_and_annotation(fmt, tmp_path):
    region = rect()
    region["value"]["x"] = "ten"
    tasks = [task(7, URL.format(1), [annotation(70, [region])])]
    with pytest.raises(ConversionError, match=r"Task 7, annotation 70: the region's 'x' is 'ten', not a number"):
        convert_list(RECT_CONFIG, tasks, fmt, tmp_path)


def test_malformed_polygon_points_are_a_conversion_error(tmp_path):
    region = polygon()
    region["value"]["points"] = [[1, 2], [3]]
    with pytest.raises(ConversionError, match=r"Task 5, annotation 50: the polygon's points"):
        convert_list(POLYGON_CONFIG, [task(5, URL.format(1), [annotation(50, [region])])], "COCO", tmp_path)


def test_results_of_unknown_controls_are_ignored(tmp_path):
    tasks = [task(1, URL.format(1), [annotation(11, [rect("Car", from_name="not_in_config"), rect("Person")])])]
    for fmt in ("COCO", "YOLO"):
        sdk, ours = both(RECT_CONFIG, tasks, fmt, tmp_path / fmt)
        COMPARE[fmt](sdk, ours)


# --- with images ------------------------------------------------------------------------------------------------


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


class StubFetcher:
    """Serves PNG bytes for URLs it knows and refuses the others, recording every call."""

    def __init__(self, images: dict[str, bytes]):
        self.images = images
        self.calls: list[str] = []

    def __call__(self, url: str) -> tuple[bytes | None, str]:
        self.calls.append(url)
        if url in self.images:
            return self.images[url], ""
        return None, "the host is not listed in EXPORT_IMAGE_HOSTS"


WITH_IMAGES_TASKS = [
    task(1, URL.format(1), [annotation(11, [rect("Car", size=(1920, 1080))]), annotation(12, [rect("Person")])]),
    task(2, "/data/upload/3/photo.png", [annotation(13, [rect("Car", 1, 1, 2, 2, size=(64, 48))])]),
    task(3, "https://elsewhere.example/x.jpg", [annotation(14, [rect("Person", size=(300, 200))])]),
    task(4, URL.format(4)),
]


def test_coco_with_images_packs_images_and_lists_the_missing(tmp_path):
    fetch = StubFetcher({URL.format(1): png(64, 32), "/data/upload/3/photo.png": png(64, 48), URL.format(4): png(5, 5)})
    data = convert_list(RECT_CONFIG, WITH_IMAGES_TASKS, "COCO_WITH_IMAGES", tmp_path, fetch_image=fetch)
    output = unzip(data)
    coco = json.loads(output.files["result.json"])
    first = f"images/{hashlib.md5(URL.format(1).encode()).hexdigest()[:8]}__1.jpg"
    missing = f"images/{hashlib.md5(b'https://elsewhere.example/x.jpg').hexdigest()[:8]}__x.jpg"
    fourth = f"images/{hashlib.md5(URL.format(4).encode()).hexdigest()[:8]}__4.jpg"
    assert [(i["file_name"], i["width"], i["height"]) for i in coco["images"]] == [
        (first, 64, 32),  # two annotations of task 1: two entries, one image file, fetched once
        (first, 64, 32),
        ("images/photo.png", 64, 48),
        (missing, 300, 200),  # not included: the size comes from the region
        (fourth, 5, 5),
    ]
    assert fetch.calls.count(URL.format(1)) == 1
    assert output.files[first] == png(64, 32)
    assert output.files["images/photo.png"] == png(64, 48)
    assert missing not in output.files
    assert json.loads(output.files["images_not_included.json"]) == [
        {
            "task_id": 3,
            "url": "https://elsewhere.example/x.jpg",
            "file": missing,
            "reason": "the host is not listed in EXPORT_IMAGE_HOSTS",
        }
    ]
    # Boxes keep the annotator's size (1920 × 1080), not the packed image's.
    assert close(coco["annotations"][0]["bbox"], [192.0, 216.0, 576.0, 432.0])


@pytest.mark.parametrize("fmt", ["YOLO_WITH_IMAGES", "YOLO_OBB_WITH_IMAGES"])
def test_yolo_with_images_pairs_each_image_with_its_label_file(fmt, tmp_path):
    fetch = StubFetcher({URL.format(1): png(8, 8), "/data/upload/3/photo.png": png(4, 4)})
    output = unzip(convert_list(RECT_CONFIG, WITH_IMAGES_TASKS, fmt, tmp_path, fetch_image=fetch))
    labels = {name[len("labels/") : -len(".txt")] for name in output.files if name.startswith("labels/")}
    images = {name[len("images/") :].rsplit(".", 1)[0] for name in output.files if name.startswith("images/")}
    digest = hashlib.md5(URL.format(1).encode()).hexdigest()[:8]
    assert images == {f"{digest}__1", "photo"}
    assert images <= labels
    assert len(labels) == 4
    assert [r["task_id"] for r in json.loads(output.files["images_not_included.json"])] == [3, 4]
    # The label lines equal the plain format's.
    plain = unzip(convert_list(RECT_CONFIG, WITH_IMAGES_TASKS, fmt.replace("_WITH_IMAGES", ""), tmp_path / "p"))
    for name, text in plain.files.items():
        if name.startswith("labels/"):
            assert output.files[name] == text


def test_with_images_uses_the_settings_fetcher_by_default(settings, tmp_path):
    """Without `context.fetch_image` the settings' hosts apply, and no upload is read: no organization is known."""
    settings.DATA_DIR = tmp_path / "data"
    settings.EXPORT_IMAGE_HOSTS = []
    stored = tmp_path / "data" / "media" / "upload" / "3"
    stored.mkdir(parents=True)
    (stored / "photo.png").write_bytes(png(3, 2))
    output = unzip(convert_list(RECT_CONFIG, WITH_IMAGES_TASKS, "COCO_WITH_IMAGES", tmp_path))
    assert "images/photo.png" not in output.files
    reasons = {r["task_id"]: r["reason"] for r in json.loads(output.files["images_not_included.json"])}
    assert set(reasons) == {1, 2, 3, 4}
    assert reasons[2] == FOREIGN_FILE
    assert reasons[3] == "the host elsewhere.example is not listed in EXPORT_IMAGE_HOSTS"


def test_with_images_label_files_match_the_sdk_for_urls(tmp_path):
    """For http(s) images the names are the SDK's (`<md5[:8]>__<name>`), with images or without."""
    config, tasks = CASES["rectangles"]
    sdk, _ = both(config, tasks, "YOLO", tmp_path)
    fetch = StubFetcher({t["data"]["image"]: png(4, 4) for t in tasks})
    ours = unzip(convert_list(config, tasks, "YOLO_WITH_IMAGES", tmp_path / "o", fetch_image=fetch))
    sdk_labels = {name for name in sdk.files if name.startswith("labels/")}
    assert {name for name in ours.files if name.startswith("labels/")} == sdk_labels
    assert {n.replace("images/", "labels/").replace(".jpg", ".txt") for n in ours.files if n.startswith("images/")} == (
        sdk_labels
    )


def test_coco_with_images_gives_images_sharing_a_name_their_own_files(tmp_path):
    tasks = [
        task(1, "/data/upload/1/a.png", [annotation(11, [rect("Car")])]),
        task(2, "/data/upload/2/a.png", [annotation(12, [rect("Car")])]),
        task(3, "/data/upload/1/a.png", [annotation(13, [rect("Person")])]),  # the same image again
    ]
    fetch = StubFetcher({"/data/upload/1/a.png": png(2, 2), "/data/upload/2/a.png": png(3, 3)})
    output = unzip(convert_list(RECT_CONFIG, tasks, "COCO_WITH_IMAGES", tmp_path, fetch_image=fetch))
    coco = json.loads(output.files["result.json"])
    assert [(i["file_name"], i["width"]) for i in coco["images"]] == [
        ("images/a.png", 2),
        ("images/a__task2.png", 3),
        ("images/a.png", 2),
    ]
    assert output.files["images/a.png"] == png(2, 2)
    assert output.files["images/a__task2.png"] == png(3, 3)
    assert fetch.calls == ["/data/upload/1/a.png", "/data/upload/2/a.png"]


# --- the archive writer -----------------------------------------------------------------------------------------


class WriteOnly(io.RawIOBase):
    """An output that can be neither read nor sought, like a pipe."""

    def __init__(self):
        self.buffer = bytearray()

    def writable(self):
        return True

    def write(self, data):
        self.buffer += data
        return len(data)


@pytest.mark.parametrize("seekable", [True, False])
def test_archive_with_more_entries_than_a_plain_zip_holds(seekable, tmp_path):
    """70,000 entries need the ZIP64 end records; every entry, mode and Unicode name reads back."""
    out = io.BytesIO() if seekable else WriteOnly()
    with Archive(out, tmp_path) as archive:
        archive.folder("labels")
        for number in range(70_000):
            archive.write(f"labels/{number}.txt", f"{number} 0.5\n")
        archive.write("images/Ünï 图.png", b"\x89PNG", stored=True)
        with archive.stream("result.json") as member:
            member.write(b"{}")
    data = out.getvalue() if seekable else bytes(out.buffer)
    with zipfile.ZipFile(io.BytesIO(data)) as reader:
        infos = reader.infolist()
        assert len(infos) == 70_003
        assert reader.testzip() is None
        assert reader.read("labels/69999.txt") == b"69999 0.5\n"
        assert reader.read("images/Ünï 图.png") == b"\x89PNG"
        assert reader.getinfo("images/Ünï 图.png").compress_type == zipfile.ZIP_STORED
        assert reader.read("result.json") == b"{}"
        assert infos[0].is_dir()
        assert infos[0].external_attr >> 16 == 0o40755
        assert infos[1].external_attr >> 16 == 0o100644


def test_archive_copies_a_scratch_file_stored(tmp_path):
    """A member copied from a file is stored as it is, larger than one read block, and reads back."""
    content = bytes(range(256)) * 5000  # 1.28 MB, more than one 1 MiB block
    out = WriteOnly()
    with Archive(out, tmp_path) as archive, (tmp_path / "inner.zip").open("w+b") as scratch:
        scratch.write(content)
        archive.copy("task-1.dclx", scratch)
    with zipfile.ZipFile(io.BytesIO(bytes(out.buffer))) as reader:
        assert reader.testzip() is None
        assert reader.getinfo("task-1.dclx").compress_type == zipfile.ZIP_STORED
        assert reader.read("task-1.dclx") == content


def test_fast_url_path_agrees_with_urlparse():
    """Image names use a quicker cut of http(s) URLs; it must give `urlparse`'s path for any such URL."""
    import random
    from urllib.parse import urlparse

    from exports.converters.vision_common import _url_path

    samples = [
        "https://a.com",
        "https://a.com/x;p/y.jpg;q=1?z=/a.jpg#f/b",
        "https://a.com?x=/y.jpg",
        "https://u:p@a.com:80/x%20y.jpg",
        "http://a.com/a;b/c;d",
        "https://a.com/Ünï 图.png",
        "http://[::1]/x.png",
        "http://a.com/x\ty.png",
    ]
    generator = random.Random(7)
    for _ in range(5000):
        tail = "".join(generator.choice("/?#;:@ab.%=&") for _ in range(generator.randint(0, 15)))
        samples.append(generator.choice(["http://", "https://"]) + tail)
    assert [url for url in samples if _url_path(url) != urlparse(url).path] == []
    assert _url_path("http://[bad/x.png") is None  # urlparse refuses it; the SDK keeps such a URL as written
