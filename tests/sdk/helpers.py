"""Shared steps for the SDK suite: the SDK parses without validating, so each helper asserts what it gets back."""

import datetime as dt
import itertools
import re
import time

from label_studio_sdk import LabelStudio

from tests.factories import IMAGE_CONFIG, choice, rectangle

STATUSES = {"created", "in_progress", "failed", "completed"}
MD5 = re.compile(r"^[0-9a-f]{32}$")
NO_RETRIES = {"max_retries": 0}


def task(index: int, *, annotations: list[dict] | None = None) -> dict:
    """An image task with one prediction; `annotations` default to one usual annotation."""
    return {
        "data": {"image": f"https://example.com/sdk/{index}.jpg", "index": index},
        "annotations": annotations if annotations is not None else [annotation()],
        "predictions": [{"result": [rectangle("Person", 5.0 + index)], "score": 0.5, "model_version": "sdk-v1"}],
    }


def annotation(*, cancelled: bool = False, ground_truth: bool = False) -> dict:
    result = [] if cancelled else [rectangle("Car", 11.0), choice("Bad")]
    return {"result": result, "was_cancelled": cancelled, "ground_truth": ground_truth}


def create_project(ls: LabelStudio, title: str = "SDK Project"):
    project = ls.projects.create(title=title, label_config=IMAGE_CONFIG)
    assert isinstance(project.id, int)
    return project


def import_tasks(ls: LabelStudio, project_id: int, tasks: list[dict]):
    result = ls.projects.import_tasks(id=project_id, request=tasks, return_task_ids=True)
    assert result.task_count == len(tasks)
    return result


def wait_completed(ls: LabelStudio, project_id: int, export_id: int, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        export = ls.projects.exports.get(id=project_id, export_pk=export_id)
        assert export.status in STATUSES
        assert export.status != "failed", export
        if export.status == "completed":
            return export
        assert time.monotonic() < deadline, f"export {export_id} still {export.status} after {timeout} s"
        time.sleep(0.1)


def wait_converted(ls: LabelStudio, project_id: int, export_id: int, export_type: str, timeout: float = 30.0):
    """Poll the snapshot until its conversion to `export_type` completes; a failure shows its traceback."""
    deadline = time.monotonic() + timeout
    while True:
        export = ls.projects.exports.get(id=project_id, export_pk=export_id)
        matching = [item for item in export.converted_formats if item.export_type == export_type]
        assert len(matching) == 1, export.converted_formats
        assert matching[0].status in STATUSES
        assert matching[0].status != "failed", matching[0].traceback
        if matching[0].status == "completed":
            return export
        assert time.monotonic() < deadline, f"{export_type} still {matching[0].status} after {timeout} s"
        time.sleep(0.1)


def listed_projects(ls: LabelStudio, limit: int = 100, **params) -> list:
    """Every project the SDK pager yields; a server that ignores `page` would make it loop forever."""
    projects = list(itertools.islice(ls.projects.list(**params), limit + 1))
    assert len(projects) <= limit, "the pager did not stop"
    return projects


def download(ls: LabelStudio, project_id: int, export_id: int, **kwargs) -> bytes:
    return b"".join(ls.projects.exports.download(id=project_id, export_pk=export_id, **kwargs))


def as_datetime(value) -> dt.datetime:
    """The SDK leaves an unparseable datetime as a string; a parseable one must be timezone-aware."""
    assert isinstance(value, dt.datetime), value
    assert value.tzinfo is not None
    return value
