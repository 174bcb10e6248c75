"""JSON_MIN records, checked against label-studio-sdk 2.1.2's converter run on the same JSON snapshot."""

import copy
import json

import orjson
import pytest
from label_studio_sdk.converter import Converter

from exports.converters.json_min import JsonMinConverter, to_json_min
from projects.label_config import parse_label_config
from tests.factories import IMAGE_CONFIG, choice, rectangle

UNICODE_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Автомобиль"/>
    <Label value="歩行者 🚶"/>
  </RectangleLabels>
  <Choices name="quality" toName="image" choice="multiple">
    <Choice value="Très bien"/>
    <Choice value="Schlecht"/>
  </Choices>
</View>"""

NER_CONFIG = """<View>
  <Labels name="ner" toName="text">
    <Label value="PER"/>
    <Label value="ORG"/>
  </Labels>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text">
    <Choice value="Positive"/>
    <Choice value="Negative"/>
  </Choices>
</View>"""

TEXTAREA_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <TextArea name="summary" toName="text"/>
  <TextArea name="notes" toName="text" perRegion="false"/>
</View>"""

NO_CONTROLS_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Header value="Read only"/>
</View>"""

REPEATER_CONFIG = """<View>
  <Repeater on="$pages" indexFlag="{{idx}}">
    <Image name="page_{{idx}}" value="$pages[{{idx}}].url"/>
    <RectangleLabels name="labels_{{idx}}" toName="page_{{idx}}">
      <Label value="Title"/>
    </RectangleLabels>
  </Repeater>
</View>"""


def annotation(
    annotation_id: int,
    result: list | None,
    *,
    created_at: str = "2024-01-15T09:30:00.000001Z",
    completed_by=1,
    was_cancelled: bool = False,
    ground_truth: bool = False,
    lead_time: float | None = 4.5,
    task_id: int = 1,
) -> dict:
    """An annotation as the JSON snapshot writes it."""
    return {
        "id": annotation_id,
        "completed_by": completed_by,
        "result": result,
        "was_cancelled": was_cancelled,
        "ground_truth": ground_truth,
        "created_at": created_at,
        "updated_at": created_at.replace("09:", "10:"),
        "draft_created_at": None,
        "lead_time": lead_time,
        "prediction": {},
        "result_count": 0,
        "unique_id": f"uuid-{annotation_id}",
        "import_id": None,
        "last_action": None,
        "bulk_created": False,
        "task": task_id,
        "project": 1,
        "updated_by": None,
        "parent_prediction": None,
        "parent_annotation": None,
        "last_created_by": None,
    }


def task(task_id: int, data: dict, annotations: list[dict], **extra) -> dict:
    """A task as the JSON snapshot writes it."""
    return {
        "id": task_id,
        "annotations": annotations,
        "drafts": [],
        "predictions": [],
        "data": data,
        "meta": {},
        "created_at": "2024-01-15T09:00:00.000000Z",
        "updated_at": "2024-01-15T09:00:00.000000Z",
        "allow_skip": True,
        "inner_id": task_id,
        "total_annotations": len(annotations),
        "cancelled_annotations": sum(a["was_cancelled"] for a in annotations),
        "total_predictions": 0,
        "comment_count": 0,
        "unresolved_comment_count": 0,
        "last_comment_updated_at": None,
        "project": 1,
        "updated_by": None,
        "file_upload": None,
        "comment_authors": [],
        **extra,
    }


def sdk_json_min(tasks: list[dict], parsed: dict, tmp_path) -> list[dict]:
    """What Label Studio serves: its converter, given the parsed config, run on the snapshot file."""
    snapshot = tmp_path / "snapshot.json"
    snapshot.write_bytes(orjson.dumps(tasks))
    out = tmp_path / "converted"
    converter = Converter(config=copy.deepcopy(parsed), project_dir=None, download_resources=False)
    converter.convert(str(snapshot), str(out), "JSON_MIN", is_dir=False)
    return json.loads((out / "result.json").read_text(encoding="utf-8"))


def ours(tasks: list[dict], parsed: dict) -> list[dict]:
    """Our records, through the bytes a client receives."""
    return orjson.loads(orjson.dumps(list(to_json_min(tasks, parsed))))


def image_tasks() -> list[dict]:
    ner_like = {"id": "x", "from_name": "unknown_control", "to_name": "image", "type": "labels", "value": {}}
    return [
        # Several annotations, created out of id order; one cancelled; one ground truth.
        task(
            1,
            {"image": "https://example.com/1.jpg"},
            [
                annotation(10, [rectangle(), choice("Good")], created_at="2024-01-15T09:30:00.000001Z"),
                annotation(11, [rectangle("Person", 50.0, "r2")], created_at="2024-01-15T09:45:00.000001Z"),
                annotation(12, [choice("Bad")], created_at="2024-01-15T09:50:00.000001Z", was_cancelled=True),
                annotation(
                    13,
                    [rectangle(), rectangle("Person", 60.0, "r2"), choice("Bad")],
                    created_at="2024-01-15T09:40:00.000001Z",
                    ground_truth=True,
                ),
            ],
        ),
        # No annotations: one record of the data alone.
        task(2, {"image": "https://example.com/2.jpg", "quality": "from data"}, []),
        # Only cancelled annotations: no record at all.
        task(3, {"image": "https://example.com/3.jpg"}, [annotation(30, [choice()], was_cancelled=True, task_id=3)]),
        # Equal creation times keep their order; empty and null results; unknown controls are dropped.
        task(
            4,
            {"image": "https://example.com/4.jpg", "id": "data id", "annotator": "from data"},
            [
                annotation(40, [], task_id=4, lead_time=None),
                annotation(41, None, task_id=4),
                annotation(42, [ner_like, choice("Good")], task_id=4),
            ],
        ),
        # Expanded and missing annotators, and a task carrying an agreement.
        task(
            5,
            {"image": "https://example.com/5.jpg"},
            [
                annotation(50, [rectangle()], completed_by={"id": 7, "email": "ann@example.com"}, task_id=5),
                annotation(51, [rectangle()], completed_by=None, task_id=5, created_at="2024-01-16T00:00:00Z"),
            ],
            agreement=87.5,
        ),
    ]


def unicode_tasks() -> list[dict]:
    multi = {
        "id": "c",
        "from_name": "quality",
        "to_name": "image",
        "type": "choices",
        "value": {"choices": ["Très bien", "Schlecht"]},
    }
    return [
        task(
            1,
            {"image": "https://example.com/ü.jpg", "légende": "日本語"},
            [annotation(1, [rectangle("Автомобиль"), rectangle("歩行者 🚶", 40.0, "r2"), multi])],
        ),
        task(2, {"image": "https://example.com/2.jpg"}, [annotation(2, [multi, multi], task_id=2)]),
    ]


def ner_tasks() -> list[dict]:
    def span(start: int, end: int, text: str, label: str) -> dict:
        return {
            "id": f"s{start}",
            "from_name": "ner",
            "to_name": "text",
            "type": "labels",
            "value": {"start": start, "end": end, "text": text, "labels": [label]},
        }

    sentiment = {
        "id": "s",
        "from_name": "sentiment",
        "to_name": "text",
        "type": "choices",
        "value": {"choices": ["Positive"]},
    }
    text = "Ada Lovelace worked with Charles Babbage at the Analytical Society."
    return [
        task(
            1,
            {"text": text},
            [
                annotation(1, [span(0, 12, "Ada Lovelace", "PER"), span(25, 40, "Charles Babbage", "PER"), sentiment]),
                annotation(2, [span(48, 67, "Analytical Society", "ORG")], created_at="2024-02-01T00:00:00.5Z"),
            ],
        ),
        task(2, {"text": "Nothing here."}, [annotation(3, [sentiment], task_id=2)]),
    ]


def textarea_tasks() -> list[dict]:
    def area(name: str, texts: list[str], region: str = "t") -> dict:
        return {"id": region, "from_name": name, "to_name": "text", "type": "textarea", "value": {"text": texts}}

    return [
        task(
            1,
            {"text": "A long article."},
            [
                annotation(1, [area("summary", ["Short."]), area("notes", ["one", "two"])]),
                annotation(2, [area("summary", ["First."], "a"), area("summary", ["Second."], "b")], task_id=1),
            ],
        ),
    ]


def no_controls_tasks() -> list[dict]:
    region = {
        "id": "r",
        "from_name": "custom",
        "to_name": "text",
        "type": "custom",
        "original_width": 10,
        "value": {"answer": 42},
    }
    untyped = {"id": "u", "from_name": "free", "value": {"text": ["x"]}}
    return [task(1, {"text": "Free form."}, [annotation(1, [region, untyped])]), task(2, {"text": "Empty."}, [])]


def repeater_tasks() -> list[dict]:
    def box(index: int) -> dict:
        return {
            "id": f"b{index}",
            "from_name": f"labels_{index}",
            "to_name": f"page_{index}",
            "type": "rectanglelabels",
            "original_width": 800,
            "original_height": 600,
            "value": {"x": 1.0, "y": 2.0, "width": 3.0, "height": 4.0, "rotation": 0, "rectanglelabels": ["Title"]},
        }

    return [task(1, {"pages": [{"url": "a.png"}, {"url": "b.png"}]}, [annotation(1, [box(0), box(1)])])]


def chat_tasks() -> list[dict]:
    message = {
        "id": "m",
        "from_name": "chat",
        "to_name": "chat",
        "type": "chatmessage",
        "value": {"chatmessage": {"role": "user", "content": "Hi"}},
    }
    return [task(1, {"image": "https://example.com/1.jpg"}, [annotation(1, [message, choice()])])]


@pytest.mark.parametrize(
    ("config", "tasks"),
    [
        pytest.param(IMAGE_CONFIG, image_tasks(), id="rectangles-choices"),
        pytest.param(UNICODE_CONFIG, unicode_tasks(), id="unicode-multichoice"),
        pytest.param(NER_CONFIG, ner_tasks(), id="ner-labels"),
        pytest.param(TEXTAREA_CONFIG, textarea_tasks(), id="textarea"),
        pytest.param(NO_CONTROLS_CONFIG, no_controls_tasks(), id="no-control-tags"),
        pytest.param(REPEATER_CONFIG, repeater_tasks(), id="repeater"),
        pytest.param(IMAGE_CONFIG, chat_tasks(), id="chat-message"),
    ],
)
def test_records_match_label_studio_converter(config, tasks, tmp_path):
    parsed = parse_label_config(config)
    expected = sdk_json_min(tasks, parsed, tmp_path)
    assert expected, "the oracle produced nothing"
    assert ours(tasks, parsed) == expected


def test_records_of_the_rectangle_project(tmp_path):
    """The rules the oracle comparison relies on, spelled out on the main fixture."""
    records = ours(image_tasks(), parse_label_config(IMAGE_CONFIG))
    assert [(r["id"], r["annotation_id"]) for r in records] == [
        (1, 11),  # newest first; the cancelled 12 is left out
        (1, 13),
        (1, 10),
        (2, None),  # no annotations: the data alone
        (4, 40),  # task 3 (only cancelled) gives nothing; equal times keep their order
        (4, 41),
        (4, 42),
        (5, 51),
        (5, 50),
    ]
    first = records[0]
    assert first["label"] == [
        {
            "x": 50.0,
            "y": 20.0,
            "width": 30.0,
            "height": 40.0,
            "rotation": 0,
            "rectanglelabels": ["Person"],
            "original_width": 1920,
            "original_height": 1080,
        }
    ]
    assert "quality" not in first
    assert records[2]["quality"] == "Good"
    assert records[3] == {
        "image": "https://example.com/2.jpg",
        "quality": "from data",
        "id": 2,
        "annotator": None,
        "annotation_id": None,
        "created_at": None,
        "updated_at": None,
        "lead_time": None,
    }
    assert list(records[4])[:3] == ["image", "id", "annotator"]  # data keys are overwritten in place
    assert records[4]["annotator"] == 1
    assert "unknown_control" not in records[6]
    assert records[6]["annotator"] == 1
    assert records[7]["annotator"] == "None"  # a deleted annotator, written as Label Studio writes it
    assert records[8]["annotator"] == "ann@example.com"
    assert records[8]["agreement"] == 87.5


def test_the_snapshot_of_many_tasks_converts_like_label_studio(tmp_path):
    tasks = [
        task(i, {"image": f"https://example.com/{i}.jpg"}, [annotation(i, [rectangle(), choice()], task_id=i)])
        for i in range(1, 201)
    ]
    parsed = parse_label_config(IMAGE_CONFIG)
    assert ours(tasks, parsed) == sdk_json_min(tasks, parsed, tmp_path)


def test_malformed_regions_are_skipped_or_kept_instead_of_failing():
    """Documented difference: Label Studio's converter raises on these; one bad region must not fail an export."""
    parsed = parse_label_config(IMAGE_CONFIG)
    result = [
        {"from_name": "label", "type": "rectanglelabels", "value": None},
        {"from_name": ["not", "a", "name"], "value": {}},
        "not a region",
        {"from_name": "quality", "type": "choices", "value": {"choices": {"Good": True}}},
    ]
    (record,) = JsonMinConverter(parsed).records(task(1, {"image": "i.jpg"}, [annotation(1, result)]))
    assert record["label"] == [{}]
    assert record["quality"] == {"choices": {"Good": True}}


def test_the_control_of_a_repeated_name_is_found_once_and_cached():
    converter = JsonMinConverter(parse_label_config(REPEATER_CONFIG))
    assert converter.tag_for("labels_3") == "labels_{{idx}}"
    assert converter.tag_for("page_3") is None
    assert converter.tag_for("other") is None
