"""Differential test against a real Label Studio 1.23.2: which tasks the `finished`, `annotated` and `skipped` task
filters of a snapshot keep, for every mix of usual, skipped and ground-truth annotations, for each
`maximum_annotations` and `skip_queue`, right after an import and after those settings change.

The same tasks go into Label Studio (through its API) and into this service; both make snapshots with the same
`task_filter_options` and the task sets are compared by the name of each task's mix. The rule found is in
LABEL_STUDIO_FACTS.md ("Finished tasks") and pinned without Label Studio in tests/projects/test_finished_rule.py.

Run with `.venv/bin/python -m pytest -m e2e tests/e2e/test_labelstudio_finished_parity.py` (needs PostgreSQL for
Label Studio; this service runs on the test database).
"""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from tests.e2e import labelstudio as lsh
from tests.exports.helpers import create_export, download_url
from tests.factories import annotation_mixes, make_project

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

DATABASE = "lsharness_finished_parity"
REQUEUE_FOR_OTHERS, REQUEUE_FOR_ME, IGNORE_SKIPPED = "REQUEUE_FOR_OTHERS", "REQUEUE_FOR_ME", "IGNORE_SKIPPED"

MIXES = annotation_mixes(lsh.rectangle("Car"), lsh.rectangle("Plane"))
FILTERS = [{name: mode} for name in ("finished", "annotated", "skipped") for mode in ("only", "exclude")]

# (maximum_annotations, skip_queue) at creation, then the settings changed after the import.
CASES = [
    (1, REQUEUE_FOR_OTHERS, {"skip_queue": IGNORE_SKIPPED}),
    (1, REQUEUE_FOR_OTHERS, {"skip_queue": REQUEUE_FOR_ME}),
    (1, REQUEUE_FOR_ME, {"maximum_annotations": 2}),
    (1, IGNORE_SKIPPED, {"skip_queue": REQUEUE_FOR_ME}),
    (1, IGNORE_SKIPPED, {"title": "Renamed"}),
    (2, REQUEUE_FOR_OTHERS, {"maximum_annotations": 1}),
    (2, REQUEUE_FOR_ME, {"skip_queue": IGNORE_SKIPPED}),
    (2, IGNORE_SKIPPED, {"maximum_annotations": 1}),
    (2, IGNORE_SKIPPED, {"maximum_annotations": 1, "skip_queue": REQUEUE_FOR_ME}),
    (0, REQUEUE_FOR_OTHERS, {"maximum_annotations": 1}),
]


def case_id(case) -> str:
    overlap, queue, change = case
    return f"max{overlap}-{queue}-then-" + "-".join(f"{key}={value}" for key, value in change.items())


def payload(mixes: dict[str, list[dict]]) -> list[dict]:
    return [
        {"data": {"image": f"https://example.com/{name}.jpg"}, "annotations": [dict(a) for a in annotations]}
        for name, annotations in mixes.items()
    ]


@pytest.fixture(scope="module")
def label_studio():
    if not lsh.postgres_reachable():
        pytest.skip(f"PostgreSQL is not reachable at {lsh.PG_URL}")
    ls = lsh.start_label_studio(database=DATABASE)
    try:
        yield ls
    finally:
        ls.stop(drop=True)


class LabelStudioSide:
    """One project in Label Studio: its tasks by mix name, snapshots through its export API."""

    def __init__(self, ls: lsh.LabelStudio, overlap: int, queue: str, mixes: dict[str, list[dict]]):
        self.client = ls.client(token=ls.admin.token)
        project = self.client.create_project(
            f"Parity {overlap} {queue}", lsh.IMAGE_CONFIG, maximum_annotations=overlap, skip_queue=queue
        )
        self.project = project["id"]
        assert (project["maximum_annotations"], project["skip_queue"]) == (overlap, queue)
        ids = self.client.import_tasks(self.project, payload(mixes))
        self.names = dict(zip(ids, mixes, strict=True))

    def kept(self, task_filter_options: dict) -> list[str]:
        path = f"/api/projects/{self.project}/exports/"
        export = self.client.json("POST", path, json={"task_filter_options": task_filter_options})
        assert export["status"] == "completed", export
        tasks = self.client.json("GET", f"{path}{export['id']}/download", params={"exportType": "JSON"})
        return sorted(self.names[task["id"]] for task in tasks)

    def change(self, fields: dict) -> None:
        self.client.json("PATCH", f"/api/projects/{self.project}/", json=fields)

    def finished_task_number(self) -> int:
        return self.client.json("GET", f"/api/projects/{self.project}/")["finished_task_number"]

    def ground_truth_flags(self) -> dict[str, list[bool]]:
        tasks = self.client.json("GET", f"/api/projects/{self.project}/export", params={"download_all_tasks": "true"})
        return {self.names[t["id"]]: [a["ground_truth"] for a in t["annotations"]] for t in tasks}


class ServiceSide:
    """The same project in this service, through its API."""

    def __init__(self, client, user, capture, overlap: int, queue: str, mixes: dict[str, list[dict]]):
        self.client, self.capture = client, capture
        self.project = make_project(
            user=user, title=f"Parity {overlap} {queue}", maximum_annotations=overlap, skip_queue=queue
        )
        url = reverse("project-import", kwargs={"pk": self.project.pk}) + "?return_task_ids=true"
        response = client.post(url, payload(mixes), format="json")
        assert response.status_code == 201, response.content
        self.names = dict(zip(response.json()["task_ids"], mixes, strict=True))

    def kept(self, task_filter_options: dict) -> list[str]:
        export = create_export(self.client, self.project, self.capture, {"task_filter_options": task_filter_options})
        response = self.client.get(download_url(self.project, export["id"]))
        assert response.status_code == 200
        body = b"".join(response.streaming_content) if response.streaming else response.content
        return sorted(self.names[task["id"]] for task in json.loads(body))

    def change(self, fields: dict) -> None:
        url = reverse("project-detail", kwargs={"pk": self.project.pk})
        response = self.client.patch(url, fields, format="json")
        assert response.status_code == 200, response.content

    def finished_task_number(self) -> int:
        url = reverse("project-detail", kwargs={"pk": self.project.pk})
        return self.client.get(url).json()["finished_task_number"]

    def ground_truth_flags(self) -> dict[str, list[bool]]:
        url = reverse("project-export", kwargs={"pk": self.project.pk}) + "?download_all_tasks=true"
        response = self.client.get(url)
        tasks = json.loads(b"".join(response.streaming_content))
        return {self.names[t["id"]]: [a["ground_truth"] for a in t["annotations"]] for t in tasks}


@pytest.mark.parametrize("case", CASES, ids=[case_id(case) for case in CASES])
def test_task_filters_keep_what_label_studio_keeps(
    label_studio, api_client, user, django_capture_on_commit_callbacks, case
):
    overlap, queue, change = case
    theirs = LabelStudioSide(label_studio, overlap, queue, MIXES)
    ours = ServiceSide(api_client, user, django_capture_on_commit_callbacks, overlap, queue, MIXES)

    label_studios = {json.dumps(options): theirs.kept(options) for options in FILTERS}
    assert {json.dumps(options): ours.kept(options) for options in FILTERS} == label_studios
    assert ours.finished_task_number() == theirs.finished_task_number()

    theirs.change(change)
    ours.change(change)
    finished = {"finished": "only"}
    assert ours.kept(finished) == theirs.kept(finished)
    assert ours.finished_task_number() == theirs.finished_task_number()


def test_an_imported_annotation_without_flags_is_ground_truth_as_in_label_studio(
    label_studio, api_client, user, django_capture_on_commit_callbacks
):
    mixes = {"usual": [{"result": lsh.rectangle("Car")}], "skipped": [{"result": [], "was_cancelled": True}]}
    theirs = LabelStudioSide(label_studio, 1, REQUEUE_FOR_OTHERS, mixes)
    ours = ServiceSide(api_client, user, django_capture_on_commit_callbacks, 1, REQUEUE_FOR_OTHERS, mixes)
    assert theirs.ground_truth_flags() == {"usual": [True], "skipped": [True]}
    assert ours.ground_truth_flags() == theirs.ground_truth_flags()
