"""CSV and TSV formula escaping (`ConversionContext.escape_formulas`, from settings.EXPORT_CSV_ESCAPE_FORMULAS).

Off (the default, as Label Studio) the table is byte for byte label-studio-sdk's. On, a text cell starting with
`=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'` (OWASP's CSV injection advice), header cells
included; every other cell is untouched.

Choice for `-`: OWASP says to prefix any cell starting with `-`, and so do we for every *text* cell, so the
string `"-2"` becomes `'-2`. A *number* (`-3` or `-1.5` in the task data, `lead_time`, ids) is not text: the
writer puts it in the file bare, it cannot hold a formula, and a prefix would turn it into text, so it is left
as it is.
"""

import csv
import io

import pytest

from exports.converters.registry import get_format
from exports.converters.tabular import escape_formula
from exports.converting import KeepAlive, convert_snapshot
from projects.label_config import parse_label_config
from tests.exports.converters.oracle import convert_ours, run_sdk, write_snapshot

CONFIG = """<View>
  <Text name="text" value="$text"/>
  <TextArea name="comment" toName="text"/>
</View>"""

ATTACK = "=cmd|' /C calc'!A0"
RISKY = {
    "text": ATTACK,
    "plus": "+1",
    "minus": "-2",
    "at": "@x",
    "tab": "\tx",
    "cr": "\rx",
}
SAFE = {
    "plain": "hello",
    "inner": "a=b+c-d@e",
    "space": " =1",
    "quote": "'=already",
    "number": -3,
    "fraction": -1.5,
    "empty": "",
}


def tasks():
    result = [
        {
            "id": "t1",
            "from_name": "comment",
            "to_name": "text",
            "type": "textarea",
            "value": {"text": ['=HYPERLINK("http://x")']},
        }
    ]
    annotation = {
        "id": 7,
        "completed_by": 1,
        "result": result,
        "was_cancelled": False,
        "created_at": "2024-03-01T10:00:00.000000Z",
        "updated_at": "2024-03-01T10:00:00.000000Z",
        "lead_time": 12.25,
    }
    return [{"id": 1, "data": {**RISKY, **SAFE}, "annotations": [annotation], "predictions": [], "drafts": []}]


def table(data: bytes, delimiter: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=delimiter))


FORMATS = pytest.mark.parametrize(("export_format", "delimiter"), [("CSV", ","), ("TSV", "\t")])


@FORMATS
def test_off_by_default_is_the_sdk_table_byte_for_byte(tmp_path, export_format, delimiter):
    snapshot = write_snapshot(tasks(), tmp_path / "snapshot.json")
    sdk = run_sdk(CONFIG, snapshot, export_format, tmp_path / "sdk", parsed_config=True).files["result.csv"]
    default = convert_ours(CONFIG, snapshot, export_format, tmp_path / "a")
    off = convert_ours(CONFIG, snapshot, export_format, tmp_path / "b", escape_formulas=False)
    assert default == off == sdk
    assert table(off, delimiter)[0]["text"] == ATTACK


@FORMATS
def test_on_prefixes_risky_text_cells_only(tmp_path, export_format, delimiter):
    snapshot = write_snapshot(tasks(), tmp_path / "snapshot.json")
    off = table(convert_ours(CONFIG, snapshot, export_format, tmp_path / "a"), delimiter)
    on = table(convert_ours(CONFIG, snapshot, export_format, tmp_path / "b", escape_formulas=True), delimiter)
    assert len(on) == len(off) == 1
    row, plain = on[0], off[0]
    for key, value in RISKY.items():
        assert row[key] == "'" + value, key
    assert row["text"] == "'=cmd|' /C calc'!A0"
    assert row["comment"] == '\'=HYPERLINK("http://x")'  # a control's value too
    for key in SAFE:
        assert row[key] == plain[key], key
    assert row["number"] == "-3"
    assert row["fraction"] == "-1.5"
    # The columns a table always has are as before.
    for key in ("id", "annotation_id", "annotator", "created_at", "updated_at", "lead_time"):
        assert row[key] == plain[key], key


@FORMATS
def test_on_numbers_are_written_bare(tmp_path, export_format, delimiter):
    """A number keeps its unquoted form (QUOTE_NONNUMERIC), so spreadsheets still read it as a number."""
    snapshot = write_snapshot(tasks(), tmp_path / "snapshot.json")
    on = convert_ours(CONFIG, snapshot, export_format, tmp_path / "b", escape_formulas=True).decode()
    assert f"{delimiter}-3{delimiter}" in on
    assert f"{delimiter}-1.5{delimiter}" in on
    assert '"\'-2"' in on


@FORMATS
def test_on_escapes_risky_header_cells(tmp_path, export_format, delimiter):
    data = [{"id": 1, "data": {"text": "ok", "=SUM(1)": "v"}, "annotations": [], "predictions": [], "drafts": []}]
    snapshot = write_snapshot(data, tmp_path / "snapshot.json")
    on = table(convert_ours(CONFIG, snapshot, export_format, tmp_path / "b", escape_formulas=True), delimiter)
    assert on[0]["'=SUM(1)"] == "v"
    assert on[0]["text"] == "ok"


def test_escape_formula():
    for value in ("=1", "+1", "-1", "@a", "\t1", "\r1"):
        assert escape_formula(value) == "'" + value
    for value in ("", "a", " =1", "1-2", -1, -1.5, None, 0):
        assert escape_formula(value) == value


@pytest.mark.parametrize(("flag", "expected"), [(None, ATTACK), (False, ATTACK), (True, "'" + ATTACK)])
def test_convert_snapshot_reads_the_setting(tmp_path, settings, flag, expected):
    """None: the default, off (as Label Studio)."""
    if flag is not None:
        settings.EXPORT_CSV_ESCAPE_FORMULAS = flag
    snapshot = write_snapshot(tasks(), tmp_path / "snapshot.json")
    fmt = get_format("CSV")
    assert fmt is not None
    out = io.BytesIO()
    convert_snapshot(
        fmt,
        snapshot,
        out,
        label_config=parse_label_config(CONFIG),
        project_id=1,
        organization_project_ids=(),
        scratch_dir=tmp_path,
        download_resources=False,
        keep_alive=KeepAlive(lambda: True, interval=60.0),
    )
    assert table(out.getvalue(), ",")[0]["text"] == expected
