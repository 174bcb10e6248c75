"""The snapshot file layout (one task per line) and reading it back a task at a time."""

import io
import json

import pytest

from exports.converters.passthrough import convert_json
from exports.converters.source import ListSource, SnapshotSource
from exports.snapshot import SnapshotWriter
from tests.factories import fill_project, make_project

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("count", [0, 1, 7])
def test_one_task_per_line_and_read_back(user, tmp_path, count):
    project = make_project(user=user)
    if count:
        fill_project(project, user=user, count=count)
    path = tmp_path / "snapshot.json"
    with path.open("wb") as out:
        SnapshotWriter(project=project, batch_size=3).write(out)
    raw = path.read_bytes()
    tasks = json.loads(raw)
    assert len(tasks) == count
    lines = raw.split(b"\n")
    if count:
        assert lines[0] == b"["
        assert lines[-1] == b"]"
        assert len(lines) == count + 2
        assert all(line.endswith(b",") for line in lines[1:-2])
    else:
        assert raw == b"[]"
    read = list(SnapshotSource(path).tasks())
    assert read == tasks
    assert list(SnapshotSource(path).tasks()) == tasks  # a second pass starts over


def test_a_file_in_another_layout_is_still_read(tmp_path):
    tasks = [{"id": 1, "data": {"text": "a\nb"}}, {"id": 2, "data": {}}]
    one_line = tmp_path / "one.json"
    one_line.write_text(json.dumps(tasks))
    indented = tmp_path / "indented.json"
    indented.write_text(json.dumps(tasks, indent=2))
    assert list(SnapshotSource(one_line).tasks()) == tasks
    assert list(SnapshotSource(indented).tasks()) == tasks


def test_json_format_writes_the_tasks_back(tmp_path):
    tasks = [{"id": 1, "data": {"text": "é"}}, {"id": 2, "data": {"n": [1, 2]}}]
    out = io.BytesIO()
    convert_json(ListSource(tasks), out, context=None)
    assert json.loads(out.getvalue()) == tasks
    empty = io.BytesIO()
    convert_json(ListSource([]), empty, context=None)
    assert json.loads(empty.getvalue()) == []
