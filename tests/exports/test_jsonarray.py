"""The one JSON array writer: every layout, empty arrays, items added in pieces, and JSON Lines."""

import json

import pytest

from exports.jsonarray import COMPACT, JSON_LINES, LINES, JsonArray


def build(layout, batches):
    array = JsonArray(layout)
    return array.start() + b"".join(array.add(batch) for batch in batches) + array.end()


@pytest.mark.parametrize("batches", [[], [[]], [[b"1"]], [[b"1", b"2"], [], [b"3"]], [[b'{"a": [1]}'], [b"null"]]])
@pytest.mark.parametrize("layout", [LINES, COMPACT])
def test_every_layout_writes_valid_json(layout, batches):
    items = [json.loads(item) for batch in batches for item in batch]
    assert json.loads(build(layout, batches)) == items


def test_lines_puts_one_item_per_line_and_empty_is_brackets():
    assert build(LINES, [[b"1", b"2"], [b"3"]]) == b"[\n1,\n2,\n3\n]"
    assert build(LINES, [[]]) == b"[]"
    assert build(COMPACT, [[b"1"], [b"2", b"3"]]) == b"[1,2,3]"


def test_pieces_written_by_the_caller_join_as_items_do():
    """A split snapshot's parts (inner layout) joined with `prefix` give the bytes of one writer."""
    whole = build(LINES, [[b"1", b"2", b"3", b"4"]])
    inner = LINES.inner()
    first, second = JsonArray(inner), JsonArray(inner)
    parts = [first.add([b"1", b"2"]), second.add([b"3"]) + second.add([b"4"])]
    joined = JsonArray(LINES)
    assert joined.start() + b"".join(joined.prefix() + part for part in parts) + joined.end() == whole


@pytest.mark.parametrize("batches", [[], [[]], [[b"1"]], [[b"1", b"2"], [], [b"3"]], [[b'{"a": [1]}'], [b"null"]]])
def test_json_lines_put_each_item_on_a_line_ending_in_a_line_break(batches):
    items = [json.loads(item) for batch in batches for item in batch]
    content = build(JSON_LINES, batches)
    assert [json.loads(line) for line in content.splitlines()] == items
    assert content.count(b"\n") == len(items)
    assert content.endswith(b"\n") or not items


def test_json_lines_bytes():
    assert build(JSON_LINES, [[b"1", b"2"], [b"3"]]) == b"1\n2\n3\n"
    assert build(JSON_LINES, [[]]) == b""
    array = JsonArray(JSON_LINES)
    assert array.start() + array.prefix() + b"1" + array.prefix() + b"2" + array.end() == b"1\n2\n"
