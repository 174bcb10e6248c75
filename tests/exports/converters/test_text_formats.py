"""JSON_MIN, CSV, TSV, CONLL2003 and ASR_MANIFEST files, checked against label-studio-sdk 2.1.2's converter.

Each case is a snapshot file converted both by the SDK (what Label Studio 1.23.2 serves) and by this
project's converter for the format; the files must match. Where the SDK stops with an exception on
ordinary data, the test pins what this project does instead.
"""

import csv
import io
import json
import wave
import zipfile
from pathlib import Path

import orjson
import pytest

from exports.converters.conll import iob_tags, token_spans
from exports.converters.registry import ConversionError, get_format
from tests.exports.converters.oracle import convert_ours, run_sdk, unzip, write_snapshot

NER_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Labels name="ner" toName="text">
    <Label value="PER"/>
    <Label value="ORG"/>
    <Label value="LOC"/>
    <Label value="Организация"/>
  </Labels>
  <Choices name="sentiment" toName="text">
    <Choice value="Positive"/>
    <Choice value="Négatif"/>
  </Choices>
  <Choices name="topics" toName="text" choice="multiple">
    <Choice value="Politics"/>
    <Choice value="Sport"/>
    <Choice value="Économie"/>
  </Choices>
  <Rating name="rating" toName="text" maxRating="5"/>
  <TextArea name="summary" toName="text"/>
</View>"""

# Unicode control and data names; a control named like a data field (`label`) to rename the field.
UNICODE_CONFIG = """<View>
  <Text name="текст" value="$текст"/>
  <Labels name="сущности" toName="текст">
    <Label value="Персона"/>
    <Label value="地名 🗺"/>
  </Labels>
  <Choices name="label" toName="текст">
    <Choice value="Да"/>
    <Choice value="Нет"/>
  </Choices>
</View>"""

ASR_CONFIG = """<View>
  <Audio name="audio" value="$audio"/>
  <TextArea name="transcription" toName="audio" rows="2" editable="true"/>
  <Choices name="noise" toName="audio">
    <Choice value="clean"/>
    <Choice value="noisy"/>
  </Choices>
</View>"""

CHAT_CONFIG = """<View>
  <Chat name="chat" value="$dialog"/>
  <Choices name="verdict" toName="chat">
    <Choice value="ok"/>
  </Choices>
</View>"""


def annotation(annotation_id, result, *, created_at="2024-03-01T10:00:00.000000Z", completed_by=1, **extra):
    """An annotation as the snapshot writes it."""
    return {
        "id": annotation_id,
        "completed_by": completed_by,
        "result": result,
        "was_cancelled": False,
        "ground_truth": False,
        "created_at": created_at,
        "updated_at": created_at,
        "draft_created_at": None,
        "lead_time": 12.25,
        "prediction": {},
        "result_count": len(result or []),
        "unique_id": f"u{annotation_id}",
        "import_id": None,
        "last_action": None,
        "bulk_created": False,
        "task": 1,
        "project": 1,
        "updated_by": None,
        "parent_prediction": None,
        "parent_annotation": None,
        "last_created_by": None,
        **extra,
    }


def task(task_id, data, annotations, **extra):
    """A task as the snapshot writes it."""
    return {
        "id": task_id,
        "annotations": annotations,
        "drafts": [],
        "predictions": [],
        "data": data,
        "meta": {},
        "created_at": "2024-03-01T09:00:00.000000Z",
        "updated_at": "2024-03-01T09:00:00.000000Z",
        "inner_id": task_id,
        "total_annotations": len(annotations),
        "cancelled_annotations": 0,
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


def span(text, fragment, label, *, from_name="ner", occurrence=0, region_id=None, labels=None):
    """A `Labels` region over the `occurrence`-th appearance of `fragment` in `text`."""
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(fragment, start + 1)
    return {
        "id": region_id or f"s{start}",
        "from_name": from_name,
        "to_name": "text" if from_name == "ner" else "текст",
        "type": "labels",
        "origin": "manual",
        "value": {
            "start": start,
            "end": start + len(fragment),
            "text": fragment,
            "labels": [label] if labels is None else labels,
        },
    }


def choices(name, *values, to_name="text"):
    return {
        "id": f"c-{name}",
        "from_name": name,
        "to_name": to_name,
        "type": "choices",
        "value": {"choices": list(values)},
    }


def rating(value):
    return {"id": "r", "from_name": "rating", "to_name": "text", "type": "rating", "value": {"rating": value}}


def textarea(*lines, name="summary", to_name="text"):
    return {
        "id": f"t-{name}",
        "from_name": name,
        "to_name": to_name,
        "type": "textarea",
        "value": {"text": list(lines)},
    }


TEXT_1 = "Barack Obama met Angela Merkel in Berlin, the capital of Germany."
TEXT_2 = "He said: \"I can't go (today)!\" -- and the U.N. agreed... didn't they?"
TEXT_3 = "Москва — столица России. 東京は日本の首都です。 José's café/bar in São Paulo: 10:30, 3,000 reais."
TEXT_4 = "  Leading  spaces,\ttabs\nand new lines  "


def ner_tasks():
    return [
        task(
            1,
            {"text": TEXT_1, "meta": {"source": "https://news.example.com/a/b", "tags": ["x", "ü"]}},
            [
                annotation(
                    11,
                    [
                        span(TEXT_1, "Barack Obama", "PER"),
                        span(TEXT_1, "Angela Merkel", "PER"),
                        span(TEXT_1, "Berlin", "LOC"),
                        span(TEXT_1, "Germany", "LOC"),
                        choices("sentiment", "Positive"),
                        choices("topics", "Politics", "Économie"),
                        rating(4),
                        textarea("Two leaders met.", "Second line / with a slash"),
                    ],
                    completed_by=1,
                ),
                # A second annotator, newer: listed first. Overlapping and nested spans.
                annotation(
                    12,
                    [
                        span(TEXT_1, "Obama met Angela", "ORG"),
                        span(TEXT_1, "Barack Obama", "PER"),
                        span(TEXT_1, "Merkel", "PER"),
                        span(TEXT_1, "capital of Germany", "LOC"),
                        span(TEXT_1, "Germany", "Организация"),
                        choices("sentiment", "Négatif"),
                        textarea("Один"),
                    ],
                    completed_by={"id": 2, "email": "anna@example.com", "first_name": "Anna"},
                    created_at="2024-03-02T10:00:00.000000Z",
                ),
                # Cancelled: left out everywhere.
                annotation(13, [choices("sentiment", "Positive")], was_cancelled=True),
            ],
        ),
        # No annotations: one row of the data alone.
        task(2, {"text": TEXT_2, "meta": None}, []),
        # Only cancelled annotations: nothing.
        task(
            3,
            {"text": TEXT_3, "only_here": "a field of a task without rows makes no column"},
            [annotation(31, [span(TEXT_3, "Москва", "LOC")], was_cancelled=True)],
        ),
        # Punctuation, quotes, contractions; spans over part of a token and over punctuation.
        task(
            4,
            {"text": TEXT_2, "meta": {"n": 1.5, "flag": True}},
            [
                annotation(
                    41,
                    [
                        span(TEXT_2, "said", "PER"),
                        span(TEXT_2, '"I can', "ORG"),
                        span(TEXT_2, "U.N.", "ORG"),
                        span(TEXT_2, "agree", "LOC"),
                        choices("topics", "Sport"),
                    ],
                )
            ],
        ),
        # Unicode text and labels, a span starting inside a word and one with no label.
        task(
            5,
            {"text": TEXT_3, "number": 7, "empty": "", "nothing": None},
            [
                annotation(
                    51,
                    [
                        span(TEXT_3, "Москва", "LOC"),
                        span(TEXT_3, "России", "Организация"),
                        span(TEXT_3, "東京", "LOC"),
                        span(TEXT_3, "osé", "PER"),
                        span(TEXT_3, "São Paulo", "LOC"),
                        span(TEXT_3, "café", "ORG", labels=[]),
                        rating(5),
                    ],
                    completed_by=3,
                    lead_time=None,
                )
            ],
        ),
        # Empty and null results, whitespace-heavy text.
        task(
            6,
            {"text": TEXT_4},
            [
                annotation(61, [], created_at="2024-03-01T11:00:00.000000Z"),
                annotation(62, None, created_at="2024-03-01T12:00:00.000000Z"),
                annotation(63, [span(TEXT_4, "spaces,", "PER"), span(TEXT_4, "tabs\nand", "LOC")]),
            ],
        ),
        # Spans without offsets make every tag O; a task carrying an agreement.
        task(
            7,
            {"text": TEXT_1},
            [
                annotation(
                    71,
                    [
                        {
                            "id": "x",
                            "from_name": "ner",
                            "to_name": "text",
                            "type": "labels",
                            "value": {"labels": ["PER"]},
                        },
                        span(TEXT_1, "Berlin", "LOC"),
                    ],
                )
            ],
            agreement=66.7,
        ),
        # An annotation with history, and a region of a control not in the config.
        task(
            8,
            {"text": "Short text."},
            [
                annotation(
                    81,
                    [span("Short text.", "Short", "PER"), {**choices("gone", "x"), "from_name": "gone"}],
                    history=[{"id": 1, "action": "submitted", "created_by": 1}],
                    completed_by=None,
                )
            ],
        ),
    ]


def unicode_tasks():
    text = "Иван живёт в 東京, «Токио»."
    return [
        task(
            1,
            {"текст": text, "label": "из данных"},
            [
                annotation(
                    1,
                    [
                        span(text, "Иван", "Персона", from_name="сущности"),
                        span(text, "東京", "地名 🗺", from_name="сущности"),
                        choices("label", "Да", to_name="текст"),
                    ],
                )
            ],
        ),
        task(2, {"текст": "Пусто.", "label": {"nested": [1, 2]}}, []),
    ]


NESTED_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Labels name="ner" toName="text"><Label value="X"/></Labels>
  <TextArea name="notes" toName="text" perRegion="true"/>
  <Rating name="rating" toName="text"/>
</View>"""


def nested_tasks():
    """Data with nested objects and fields named like the fixed columns; several regions per control."""
    text = "Alpha beta, gamma."
    data = {
        "text": text,
        "id": "data-id",
        "annotator": "from data",
        "lead_time": 99,
        "doc": {"pages": [{"n": 1, "url": "s3://bucket/a b.pdf"}], "score": 0.125, "ok": False},
        "list": [1, "two", None, {"three": 3.0}],
        "ratio": 2.5,
        "flag": True,
    }
    return [
        task(
            1,
            data,
            [
                annotation(
                    1,
                    [
                        span(text, "Alpha", "X"),
                        span(text, "gamma", "X"),
                        textarea("first", name="notes"),
                        textarea("second", "third", name="notes"),
                        rating(2),
                        {**rating(3), "id": "r2"},
                    ],
                    completed_by={"id": 9},
                )
            ],
        ),
        task(
            2,
            {**data, "extra": "only here"},
            [annotation(2, [textarea("", name="notes")])],
            predictions=[{"result": []}],
        ),
    ]


CASES = {
    "ner": (NER_CONFIG, ner_tasks),
    "unicode": (UNICODE_CONFIG, unicode_tasks),
    "nested": (NESTED_CONFIG, nested_tasks),
}


@pytest.fixture
def convert_both(tmp_path):
    """Convert tasks with the SDK and with ours: (SDK output folder, our bytes)."""

    def run(config, tasks, export_format, **ours):
        snapshot = write_snapshot(tasks, tmp_path / "snapshot.json")
        sdk = run_sdk(config, snapshot, export_format, tmp_path / f"sdk-{export_format}", parsed_config=True)
        mine = convert_ours(config, snapshot, export_format, tmp_path / f"scratch-{export_format}", **ours)
        return sdk, mine

    return run


def ours_only(tmp_path, config, tasks, export_format, **context):
    snapshot = write_snapshot(tasks, tmp_path / "snapshot.json")
    return convert_ours(config, snapshot, export_format, tmp_path / "scratch", **context)


def sdk_only(tmp_path, config, tasks, export_format, **kwargs):
    snapshot = write_snapshot(tasks, tmp_path / "snapshot.json")
    return run_sdk(config, snapshot, export_format, tmp_path / "sdk", parsed_config=True, **kwargs)


# --- JSON -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 3])
def test_json_is_the_snapshot_file_byte_for_byte(tmp_path, count):
    tasks = [{"id": n, "data": {"text": f"Straße/{n}"}, "annotations": []} for n in range(count)]
    snapshot = write_snapshot(tasks, tmp_path / "snapshot.json")
    assert convert_ours(NER_CONFIG, snapshot, "JSON", tmp_path / "scratch") == snapshot.read_bytes()


# --- JSON_MIN ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_json_min_file_is_the_sdk_file(convert_both, case):
    config, tasks = CASES[case]
    sdk, mine = convert_both(config, tasks(), "JSON_MIN")
    assert mine == sdk.files["result.json"]
    assert orjson.loads(mine)  # a JSON array with records


def test_json_min_of_no_tasks_is_an_empty_array(convert_both):
    sdk, mine = convert_both(NER_CONFIG, [], "JSON_MIN")
    assert mine == sdk.files["result.json"] == b"[\n\n]"
    assert orjson.loads(mine) == []


def test_json_min_keeps_a_choices_region_without_choices(tmp_path):
    """The SDK stops with KeyError on a Choices region lacking `choices`; the region is kept as is."""
    tasks = [task(1, {"text": "a"}, [annotation(1, [{"from_name": "sentiment", "to_name": "text", "value": {}}])])]
    with pytest.raises(KeyError):
        sdk_only(tmp_path, NER_CONFIG, tasks, "JSON_MIN")
    records = orjson.loads(ours_only(tmp_path, NER_CONFIG, tasks, "JSON_MIN"))
    assert records[0]["sentiment"] == {}


def test_json_min_orders_annotations_with_a_missing_creation_time(tmp_path):
    """The SDK stops with TypeError when one annotation has no `created_at`; it counts as the oldest."""
    undated = annotation(2, [choices("sentiment", "Positive")], created_at=None)
    tasks = [task(1, {"text": "a"}, [undated, annotation(3, [choices("sentiment", "Négatif")])])]
    with pytest.raises(TypeError):
        sdk_only(tmp_path, NER_CONFIG, tasks, "JSON_MIN")
    records = orjson.loads(ours_only(tmp_path, NER_CONFIG, tasks, "JSON_MIN"))
    assert [record["annotation_id"] for record in records] == [3, 2]


# --- CSV / TSV ----------------------------------------------------------------------------------------


def table(data: bytes, delimiter: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=delimiter))


@pytest.mark.parametrize(("export_format", "delimiter"), [("CSV", ","), ("TSV", "\t")])
@pytest.mark.parametrize("case", sorted(CASES))
def test_table_is_the_sdk_table(convert_both, case, export_format, delimiter):
    config, tasks = CASES[case]
    sdk, mine = convert_both(config, tasks(), export_format)
    expected = sdk.files["result.csv"]
    assert table(mine, delimiter)[0] == table(expected, delimiter)[0]  # header, in order
    assert table(mine, delimiter) == table(expected, delimiter)
    assert mine == expected  # and the same bytes: quoting, CRLF, UTF-8


def test_table_cells(convert_both):
    """Spot checks of the NER table: the values a reader of the file sees."""
    _sdk, mine = convert_both(NER_CONFIG, ner_tasks(), "CSV")
    header, *rows = table(mine, ",")
    assert header == sorted(header)
    for column in ("annotator", "annotation_id", "created_at", "updated_at", "lead_time", "id", "history"):
        assert column in header
    row = dict(zip(header, rows[0], strict=True))
    assert row["id"] == "1"
    assert row["annotation_id"] == "12"  # the newer annotation first
    assert row["annotator"] == "anna@example.com"
    assert row["sentiment"] == "Négatif"  # a single choice is bare text
    assert json.loads(row["meta"]) == {"source": "https://news.example.com/a/b", "tags": ["x", "ü"]}
    assert "https:\\/\\/news" in row["meta"]  # `/` escaped as the SDK's ujson writes it
    second = dict(zip(header, rows[1], strict=True))
    assert json.loads(second["topics"]) == {"choices": ["Politics", "Économie"]}  # one region, two choices
    assert json.loads(second["summary"]) == {"text": ["Two leaders met.", "Second line / with a slash"]}
    assert json.loads(second["rating"]) == [{"rating": 4}]
    assert second["annotator"] == "1"
    assert [r[header.index("id")] for r in rows] == ["1", "1", "2", "4", "5", "6", "6", "6", "7", "8"]
    assert b"\r\n" in mine


def test_table_renames_a_data_field_named_like_a_control(convert_both):
    _sdk, mine = convert_both(UNICODE_CONFIG, unicode_tasks(), "CSV")
    header, first, second = table(mine, ",")
    assert "_data_label" in header
    assert "label" in header
    assert dict(zip(header, first, strict=True))["label"] == "Да"
    assert dict(zip(header, first, strict=True))["_data_label"] == "из данных"
    assert json.loads(dict(zip(header, second, strict=True))["_data_label"]) == {"nested": [1, 2]}


def test_table_of_chat_adds_a_transcript(convert_both):
    dialog = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    message = {
        "id": "m",
        "from_name": "chat",
        "to_name": "chat",
        "type": "chatmessage",
        "value": {"chatmessage": {"role": "user", "content": "Bonjour / hi"}},
    }
    tasks = [task(1, {"dialog": dialog}, [annotation(1, [message, {**message, "id": "n"}, choices("verdict", "ok")])])]
    sdk, mine = convert_both(CHAT_CONFIG, tasks, "CSV")
    assert mine == sdk.files["result.csv"]
    header, row = table(mine, ",")
    assert dict(zip(header, row, strict=True))["chat_transcript"] == "user: Bonjour / hi\nuser: Bonjour / hi"


def test_table_of_no_tasks_is_the_header(convert_both):
    sdk, mine = convert_both(NER_CONFIG, [], "TSV")
    assert mine == sdk.files["result.csv"]
    assert mine == b'"annotation_id"\t"annotator"\t"created_at"\t"lead_time"\t"updated_at"\r\n'


def test_table_of_a_task_without_id(tmp_path):
    """The SDK stops with KeyError on a task without `id`; its rows are written without one."""
    tasks = [{"data": {"text": "no id"}, "annotations": [annotation(1, [choices("sentiment", "Positive")])]}]
    with pytest.raises(KeyError):
        sdk_only(tmp_path, NER_CONFIG, tasks, "CSV")
    header, row = table(ours_only(tmp_path, NER_CONFIG, tasks, "CSV"), ",")
    assert "id" not in header
    assert dict(zip(header, row, strict=True))["sentiment"] == "Positive"


# --- CONLL2003 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_conll_file_is_the_sdk_file(convert_both, case):
    config, tasks = CASES[case]
    sdk, mine = convert_both(config, tasks(), "CONLL2003")
    assert mine.decode("utf-8") == sdk.files["result.conll"].decode("utf-8")


def test_conll_tags(convert_both):
    _sdk, mine = convert_both(NER_CONFIG, ner_tasks(), "CONLL2003")
    text = mine.decode("utf-8")
    assert text.startswith("-DOCSTART- -X- O\n")
    blocks = text[len("-DOCSTART- -X- O\n") :].split("\n\n")
    first = blocks[0].splitlines()  # annotation 12 (newest) of task 1
    assert first[:4] == ["Barack -X- _ B-PER", "Obama -X- _ I-PER", "met -X- _ B-ORG", "Angela -X- _ I-ORG"]
    # `Merkel` is after the ORG span that the earlier PER span overlapped: its own span begins.
    assert first[4:7] == ["Merkel -X- _ B-PER", "in -X- _ O", "Berlin -X- _ O"]
    second = blocks[1].splitlines()  # annotation 11
    assert second[-3:] == ["of -X- _ O", "Germany -X- _ B-LOC", ". -X- _ O"]


@pytest.mark.parametrize(
    "text",
    [
        TEXT_1,
        TEXT_2,
        TEXT_3,
        TEXT_4,
        "",
        "'Quoted' words, ''double'' and ``back'' quotes; \"straight\" ones.",
        "I cannot, gonna, wanna go; gimme lemme more'n 'tis 'twas d'ye",
        "They'll, we're, I've, you'd, she's, I'M, DON'T, o'clock, rock 'n' roll",
        "a/b/c 50% & #tag @user $5 <tag> [x] {y} (z) ... -- end?! Really.",
        "Mr. Smith went to Washington D.C. last Jan. at 3 p.m.",
        "Emoji 👍🏽 and combining é and zero\u200bwidth.",
        'end with quote."',
        "nested ((brackets)) and 'single' \"double\" 'mixed\"",
    ],
)
def test_tokens_are_the_sdk_tokens(text):
    from label_studio_sdk.converter.utils import create_tokens_and_tags

    tokens, _tags = create_tokens_and_tags(text, None)
    assert [text[start:end] for start, end in token_spans(text)] == tokens


def test_iob_tags_walk_spans_as_the_sdk():
    from label_studio_sdk.converter.utils import create_tokens_and_tags

    text = "one two three four five six seven"
    regions = [
        {"start": 4, "end": 13, "labels": ["A"]},  # two three
        {"start": 8, "end": 18, "labels": ["B"]},  # starts inside A: takes over after A, at "four"
        {"start": 14, "end": 23, "labels": ["C"]},  # four five: takes over after B, at "five"
        {"start": 24, "end": 27, "labels": []},  # six, no label
        {"start": 29, "end": 31, "labels": ["D"]},  # inside "seven"
    ]
    tokens, tags = create_tokens_and_tags(text, [dict(region) for region in regions])
    assert iob_tags(token_spans(text), regions) == tags
    assert tags == ["O", "B-A", "I-A", "B-B", "B-C", "O", "B-D"]
    assert tokens == text.split()


def test_conll_without_the_text_is_a_conversion_error(tmp_path):
    """The SDK stops with KeyError; this gives a ConversionError naming the task."""
    tasks = [task(1, {"text": "fine"}, []), task(2, {"other": "x"}, [annotation(5, [])])]
    with pytest.raises(KeyError):
        sdk_only(tmp_path, NER_CONFIG, tasks, "CONLL2003")
    with pytest.raises(ConversionError, match="Task 2 has no text in the data field 'text'"):
        ours_only(tmp_path, NER_CONFIG, tasks, "CONLL2003")


def test_conll_with_a_non_numeric_offset_is_a_conversion_error(tmp_path):
    region = span("Some text", "Some", "PER")
    region["value"]["start"] = "0"
    tasks = [task(3, {"text": "Some text"}, [annotation(9, [region])])]
    with pytest.raises(TypeError):
        sdk_only(tmp_path, NER_CONFIG, tasks, "CONLL2003")
    with pytest.raises(ConversionError, match="Task 3, annotation 9: a span's start is '0'"):
        ours_only(tmp_path, NER_CONFIG, tasks, "CONLL2003")


def test_conll_with_two_texts_uses_the_labelled_one(tmp_path):
    config = """<View>
      <Text name="title" value="$title"/>
      <Text name="body" value="$body"/>
      <Choices name="kind" toName="title"><Choice value="news"/></Choices>
      <Labels name="ner" toName="body"><Label value="PER"/></Labels>
    </View>"""
    tasks = [
        task(1, {"title": "Headline here", "body": "Ann runs."}, [annotation(1, [span("Ann runs.", "Ann", "PER")])])
    ]
    text = ours_only(tmp_path, config, tasks, "CONLL2003").decode()
    assert text == "-DOCSTART- -X- O\nAnn -X- _ B-PER\nruns -X- _ O\n. -X- _ O\n\n"


# --- ASR_MANIFEST ----------------------------------------------------------------------------------------


def wav(seconds: float, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(rate)
        audio.writeframes(b"\0\0" * int(seconds * rate))
    return buffer.getvalue()


def asr_tasks():
    return [
        task(
            1,
            {"audio": "/data/upload/1/first.wav"},
            [
                annotation(1, [textarea("hello world", "second line", name="transcription", to_name="audio")]),
                annotation(
                    2,
                    [
                        choices("noise", "clean", to_name="audio"),
                        textarea("Grüße", name="transcription", to_name="audio"),
                    ],
                    completed_by={"id": 4, "email": "écoute@example.com"},
                    created_at="2024-03-05T00:00:00.000000Z",
                ),
                annotation(3, [textarea("skip me", name="transcription", to_name="audio")], was_cancelled=True),
            ],
        ),
        task(
            2,
            {"audio": "/data/upload/1/second.wav"},
            [annotation(4, [textarea("日本語", name="transcription", to_name="audio")])],
        ),
    ]


@pytest.fixture
def upload_dir(tmp_path):
    folder = tmp_path / "media"
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "first.wav").write_bytes(wav(1.5))
    (folder / "1" / "second.wav").write_bytes(wav(0.25, rate=16000))
    return folder


def fetcher(folder: Path):
    def fetch(url: str):
        path = folder / url.removeprefix("/data/upload/")
        return (path.read_bytes(), "") if path.exists() else (None, "not found")

    return fetch


def manifest_lines(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode("ascii").splitlines()]


def test_asr_manifest_with_audio_is_the_sdk_manifest(tmp_path, upload_dir):
    tasks = asr_tasks()
    sdk = sdk_only(tmp_path, ASR_CONFIG, tasks, "ASR_MANIFEST", download_resources=True, upload_dir=upload_dir)
    mine = unzip(
        ours_only(tmp_path, ASR_CONFIG, tasks, "ASR_MANIFEST", download_resources=True, fetch_image=fetcher(upload_dir))
    )
    assert mine.files["manifest.json"] == sdk.files["manifest.json"]
    assert manifest_lines(mine.files["manifest.json"]) == [
        {"audio_filepath": "audio/first.wav", "duration": 1.5, "text": "Grüße", "annotator": "écoute@example.com"},
        {"audio_filepath": "audio/first.wav", "duration": 1.5, "text": "hello world", "annotator": "1"},
        {"audio_filepath": "audio/second.wav", "duration": 0.25, "text": "日本語", "annotator": "1"},
    ]
    assert mine.dirs == sdk.dirs == {"audio"}
    for name in ("audio/first.wav", "audio/second.wav"):
        assert mine.files[name] == sdk.files[name]


def test_asr_manifest_without_downloads_keeps_the_transcriptions(tmp_path, upload_dir):
    """Without downloads the SDK writes an empty manifest; the lines are kept with the audio URL."""
    tasks = asr_tasks()
    sdk = sdk_only(tmp_path, ASR_CONFIG, tasks, "ASR_MANIFEST", upload_dir=upload_dir)
    assert sdk.files["manifest.json"] == b""
    data = ours_only(tmp_path, ASR_CONFIG, tasks, "ASR_MANIFEST")
    archive = unzip(data)
    assert archive.dirs == {"audio"}
    assert sorted(archive.files) == ["manifest.json"]
    assert [
        (line["audio_filepath"], line["duration"], line["text"])
        for line in manifest_lines(archive.files["manifest.json"])
    ] == [
        ("/data/upload/1/first.wav", None, "Grüße"),
        ("/data/upload/1/first.wav", None, "hello world"),
        ("/data/upload/1/second.wav", None, "日本語"),
    ]
    assert get_format("ASR_MANIFEST").extension == "zip"
    assert zipfile.is_zipfile(io.BytesIO(data))


def test_asr_manifest_leaves_out_annotations_without_transcription(tmp_path, upload_dir):
    """The SDK stops (its transcription lookup fails) on a task without annotations; such lines are left out."""
    tasks = [
        task(1, {"audio": "/data/upload/1/first.wav"}, []),
        task(2, {"audio": "/data/upload/1/second.wav"}, [annotation(1, [choices("noise", "noisy", to_name="audio")])]),
        task(
            3,
            {"audio": "/data/upload/1/second.wav"},
            [annotation(2, [textarea("ok", name="transcription", to_name="audio")])],
        ),
    ]
    with pytest.raises((UnboundLocalError, NameError, KeyError)):
        sdk_only(tmp_path, ASR_CONFIG, tasks, "ASR_MANIFEST", download_resources=True, upload_dir=upload_dir)
    mine = unzip(
        ours_only(tmp_path, ASR_CONFIG, tasks, "ASR_MANIFEST", download_resources=True, fetch_image=fetcher(upload_dir))
    )
    assert manifest_lines(mine.files["manifest.json"]) == [
        {"audio_filepath": "audio/second.wav", "duration": 0.25, "text": "ok", "annotator": "1"}
    ]


def test_asr_manifest_without_audio_url_is_a_conversion_error(tmp_path):
    tasks = [task(6, {"sound": "x.wav"}, [annotation(1, [textarea("t", name="transcription", to_name="audio")])])]
    with pytest.raises(ConversionError, match="Task 6 has no audio URL in the data field 'audio'"):
        ours_only(tmp_path, ASR_CONFIG, tasks, "ASR_MANIFEST")


# --- Behaviour over many inputs ----------------------------------------------------------------------------


def random_texts(seed: int, count: int) -> list[str]:
    import random

    pieces = list("ab AZ_—«»é\u00a0\n\t.,:;!?()[]{}<>-/$&%#@'\"`0123456789") + [
        "''",
        "``",
        "...",
        "--",
        "n't",
        "'s",
        "'ll",
        "cannot",
        "Gonna",
        "wanna ",
        "'tis",
        "d'ye",
        "more'n",
        "  ",
    ]
    rng = random.Random(seed)
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 14))) for _ in range(count)]


def test_tokens_of_random_texts_are_the_sdk_tokens():
    """Seeded random texts made of the characters and words the tokenizer's rules act on."""
    from label_studio_sdk.converter.utils import create_tokens_and_tags

    for text in random_texts(7, 3000):
        tokens, _tags = create_tokens_and_tags(text, None)
        assert [text[start:end] for start, end in token_spans(text)] == tokens, text


def test_tokens_of_random_single_spaced_texts_are_the_sdk_tokens():
    """Words one space apart (the common layout, tokenized by a faster path)."""
    import random

    from label_studio_sdk.converter.utils import create_tokens_and_tags

    pieces = [*"abAZ_—é.,:;!?()[]{}<>-/$&%#@'`09", "n't", "'s", "...", "--", "''", "Corp.", "U.S.", "can", "not"]
    rng = random.Random(3)
    for _ in range(3000):
        words = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(0, 8))]
        text = rng.choice(["", " "]) + " ".join(words) + rng.choice(["", " ", "\n"])
        tokens, _tags = create_tokens_and_tags(text, None)
        assert [text[start:end] for start, end in token_spans(text)] == tokens, text


def test_tags_of_random_spans_are_the_sdk_tags():
    import copy
    import random

    from label_studio_sdk.converter.utils import create_tokens_and_tags

    rng = random.Random(11)
    words = ["alpha", "be", "c", "delta,", "e.", "(f)", "g's", "--", "h"]
    for _ in range(2000):
        text = "".join(rng.choice(words) + rng.choice([" ", "  ", "\n"]) for _ in range(rng.randint(0, 10)))
        regions = []
        for _ in range(rng.randint(0, 5)):
            start = rng.randint(0, len(text) + 1)
            regions.append(
                {"start": start, "end": rng.randint(start, len(text) + 2), "labels": rng.choice([["A"], ["B"], []])}
            )
        _tokens, expected = create_tokens_and_tags(text, copy.deepcopy(regions) or None)
        assert iob_tags(token_spans(text), regions) == expected, (text, regions)


class CountingSource:
    """A task source that counts how many times the tasks are read."""

    def __init__(self, tasks):
        self._tasks = tasks
        self.passes = 0

    def tasks(self):
        self.passes += 1
        yield from (orjson.loads(orjson.dumps(task)) for task in self._tasks)


@pytest.mark.parametrize(
    ("export_format", "config", "tasks"),
    [
        ("JSON_MIN", NER_CONFIG, ner_tasks),
        ("CSV", NER_CONFIG, ner_tasks),
        ("TSV", UNICODE_CONFIG, unicode_tasks),
        ("CONLL2003", NER_CONFIG, ner_tasks),
        ("ASR_MANIFEST", ASR_CONFIG, asr_tasks),
    ],
)
def test_converters_read_the_tasks_once(tmp_path, export_format, config, tasks):
    """One pass over the snapshot, one task at a time (the tabular rows wait in a scratch file)."""
    from exports.converters.registry import ConversionContext
    from projects.label_config import parse_label_config

    source = CountingSource(tasks())
    context = ConversionContext(label_config=parse_label_config(config), project_id=1, scratch_dir=tmp_path)
    out = io.BytesIO()
    get_format(export_format).load()(source, out, context)
    assert source.passes == 1
    assert out.getvalue()
    assert list(tmp_path.iterdir()) == []  # scratch files are removed


def test_json_min_of_many_records_is_the_sdk_file(convert_both):
    """More records than are written at a time."""
    text = "Many records, one by one."
    tasks = [
        task(number, {"text": text, "n": number}, [annotation(number, [span(text, "records", "ORG")])])
        for number in range(1, 601)
    ]
    sdk, mine = convert_both(NER_CONFIG, tasks, "JSON_MIN")
    assert mine == sdk.files["result.json"]
    assert len(orjson.loads(mine)) == 600


def test_table_without_annotation_key_and_with_non_object_annotations(convert_both, tmp_path):
    """A task without `annotations` gives no row (as the SDK); neither does anything in the list that is
    not an annotation object (the SDK stops on it)."""
    tasks = [
        {"id": 1, "data": {"text": "no annotations key"}},
        task(2, {"text": "fine"}, [annotation(1, [choices("sentiment", "Positive")])]),
    ]
    sdk, mine = convert_both(NER_CONFIG, tasks, "CSV")
    assert mine == sdk.files["result.csv"]
    odd = [task(3, {"text": "odd"}, ["not an annotation", annotation(2, [choices("sentiment", "Négatif")])])]
    with pytest.raises(AttributeError):
        sdk_only(tmp_path, NER_CONFIG, odd, "CSV")
    header, row = table(ours_only(tmp_path, NER_CONFIG, odd, "CSV"), ",")
    assert dict(zip(header, row, strict=True))["sentiment"] == "Négatif"


@pytest.mark.parametrize("export_format", ["CONLL2003", "ASR_MANIFEST"])
def test_config_without_controls_is_a_conversion_error(tmp_path, export_format):
    """The SDK stops with IndexError (it has no data field to read); this says why."""
    config = '<View><Text name="text" value="$text"/></View>'
    tasks = [task(1, {"text": "hello"}, [])]
    with pytest.raises(IndexError):
        sdk_only(tmp_path, config, tasks, export_format)
    with pytest.raises(ConversionError, match="no control points at a data field"):
        ours_only(tmp_path, config, tasks, export_format)


REPEATER_CONFIG = """<View>
  <Repeater on="$pages" indexFlag="{{idx}}">
    <Image name="page_{{idx}}" value="$pages[{{idx}}].url"/>
    <RectangleLabels name="labels_{{idx}}" toName="page_{{idx}}">
      <Label value="Title"/>
    </RectangleLabels>
  </Repeater>
</View>"""

CUSTOM_CONFIG = "<View><Header value='Custom interface'/></View>"


def box(name, label, *, width=1024, height=768):
    return {
        "id": f"b-{name}",
        "from_name": name,
        "to_name": name.replace("labels", "page"),
        "type": "rectanglelabels",
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": {"x": 1.5, "y": 2.25, "width": 30, "height": 40.125, "rotation": 0, "rectanglelabels": [label]},
    }


def repeater_tasks():
    pages = [{"url": "https://example.com/p/1.png"}, {"url": "https://example.com/p/2.png"}]
    return [
        task(1, {"pages": pages}, [annotation(1, [box("labels_0", "Title"), box("labels_1", "Title")])]),
        task(2, {"pages": pages[:1]}, [annotation(2, [box("labels_0", "Title"), box("labels_0", "Title")])]),
    ]


def custom_tasks():
    """A config without controls: every region is kept, typed by itself."""
    region = {"id": "x", "from_name": "answer", "to_name": "page", "type": "textarea", "value": {"text": ["free"]}}
    other = {"id": "y", "from_name": "score", "to_name": "page", "value": {"number": 3}}
    return [task(1, {"page": "p"}, [annotation(1, [region, other])])]


@pytest.mark.parametrize("export_format", ["JSON_MIN", "CSV", "TSV"])
@pytest.mark.parametrize(("config", "tasks"), [(REPEATER_CONFIG, repeater_tasks), (CUSTOM_CONFIG, custom_tasks)])
def test_repeater_and_custom_interface_files_are_the_sdk_files(convert_both, config, tasks, export_format):
    sdk, mine = convert_both(config, tasks(), export_format)
    assert mine == sdk.single()
