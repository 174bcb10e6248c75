"""A snapshot split into task-id ranges written by several jobs, then joined: the same bytes as one writer."""

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from exports import jobs, parallel, queue, storage
from exports.models import Export, Status
from exports.recovery import LEASE_EXPIRED, jobs_recover
from exports.snapshot import SnapshotWriter
from exports.sources import TaskSelection
from exports.sources.tables import TableRows
from projects.models import AnnotationDraft, Task
from tests.factories import fill_project, make_project

pytestmark = pytest.mark.django_db

OPTION_SETS = [
    {},
    {"task_filter_options": {"annotated": "only"}},
    {"task_filter_options": {"skipped": "exclude", "finished": "only"}},
    {"annotation_filter_options": {"usual": False, "ground_truth": True, "skipped": True}},
    {
        "serialization_options": {
            "predictions": {"only_id": False},
            "drafts": {"only_id": False},
            "annotations__completed_by": {"only_id": False},
        }
    },
]


@pytest.fixture
def project(user):
    """Tasks of every kind, interleaved: annotated, without annotation, skipped, ground truth, with drafts."""
    project = make_project(user=user, title="Split")
    fill_project(project, user=user, count=7)
    fill_project(project, user=user, count=4, annotations=0)
    fill_project(project, user=user, count=3, cancelled=True)
    fill_project(project, user=user, count=3, ground_truth=True)
    fill_project(project, user=user, count=5, annotations=2)
    for task in Task.objects.filter(project=project).order_by("pk")[::4]:
        AnnotationDraft.objects.create(task=task, user=user, result=[{"value": {"choices": ["Bad"]}}])
    return project


@pytest.fixture
def split(settings):
    def configure(parts: int) -> None:
        settings.EXPORT_PARTS = parts
        settings.EXPORT_PARALLEL_MIN_TASKS = 2

    return configure


def export_file(settings, export: Export) -> bytes:
    return (Path(settings.DATA_DIR) / "exports" / export.file).read_bytes()


def run(project, user, **options) -> Export:
    export = Export.objects.create(project=project, created_by=user, **options)
    jobs.run_export(export.pk)
    export.refresh_from_db()
    assert export.status == Status.COMPLETED, export.reason
    return export


def stored_parts(settings) -> list[Path]:
    root = Path(settings.DATA_DIR) / "exports" / parallel.PARTS_FOLDER
    return sorted(path for path in root.rglob("*")) if root.exists() else []


@pytest.fixture
def held_parts(monkeypatch):
    """Collect the part jobs a split submits instead of running them, so a test runs them in any order."""
    submitted: list[tuple] = []
    monkeypatch.setattr(parallel.queue, "submit", lambda job, *args: submitted.append((job, args)))
    return submitted


@pytest.mark.parametrize("options", OPTION_SETS, ids=["plain", "annotated", "finished", "gt-skipped", "full"])
@pytest.mark.parametrize("parts", [2, 3, 7])
def test_a_split_snapshot_is_byte_identical_to_one_writer(project, user, settings, split, options, parts):
    whole = run(project, user, **options)
    split(parts)
    joined = run(project, user, **options)
    assert joined.md5 == whole.md5
    assert joined.counters == whole.counters
    assert export_file(settings, joined) == export_file(settings, whole)
    assert stored_parts(settings) == []  # the joiner removed the parts


def test_more_parts_than_tasks_gives_one_task_per_part(project, user, settings, split, monkeypatch):
    counts = []
    real = SnapshotWriter.write_part

    def counting(self, out, progress=None, index=None):
        result = real(self, out, progress=progress, index=index)
        counts.append(result.counters["task_number"])
        return result

    monkeypatch.setattr(SnapshotWriter, "write_part", counting)
    whole = run(project, user, task_filter_options={"skipped": "only"})
    split(50)
    joined = run(project, user, task_filter_options={"skipped": "only"})
    assert whole.counters["task_number"] == 3
    assert counts == [1, 1, 1]
    assert export_file(settings, joined) == export_file(settings, whole)


def test_empty_ranges_are_left_out_of_the_join(project, user, settings, split, monkeypatch):
    ids = sorted(Task.objects.filter(project=project).values_list("pk", flat=True))
    gone = ids[5:9]
    Task.objects.filter(pk__in=gone).delete()
    whole = run(project, user)
    # An empty first range, one over the deleted ids, one past the last task: three of five parts are empty.
    ranges = [
        (None, ids[0] - 1),
        (ids[0], gone[0] - 1),
        (gone[0], gone[-1]),
        (gone[-1] + 1, ids[-1]),
        (ids[-1] + 1, None),
    ]
    monkeypatch.setattr(parallel, "plan_ranges", lambda tasks, total, parts: ranges)
    split(5)
    joined = run(project, user)
    assert (joined.md5, joined.counters) == (whole.md5, whole.counters)
    assert export_file(settings, joined) == export_file(settings, whole)


def test_when_every_range_is_empty_the_file_is_an_empty_array(project, user, settings, split, monkeypatch):
    last = Task.objects.filter(project=project).order_by("-pk").values_list("pk", flat=True)[0]
    monkeypatch.setattr(parallel, "plan_ranges", lambda tasks, total, parts: [(None, 0), (last + 1, None)])
    split(2)
    joined = run(project, user)
    assert export_file(settings, joined) == b"[]"
    assert joined.counters == {"task_number": 0, "annotation_number": 0, "prediction_number": 0, "done": 0, "total": 0}


def test_small_snapshots_are_written_by_one_job(project, user, settings, held_parts):
    settings.EXPORT_PARTS = 4
    settings.EXPORT_PARALLEL_MIN_TASKS = 1000
    with CaptureQueriesContext(connection) as queries:
        export = run(project, user)
    assert held_parts == []
    assert json.loads(export_file(settings, export))
    assert sum("COUNT(" in query["sql"].upper() for query in queries) == 1  # counted once, not again for progress


def test_plan_cuts_about_equal_ranges_in_id_order(project):
    tasks = Task.objects.filter(project=project)
    ids = sorted(tasks.values_list("pk", flat=True))
    ranges = parallel.plan_ranges(TableRows(TaskSelection(project_id=project.pk)), len(ids), 4)
    assert ranges[0][0] is None
    assert ranges[-1][1] is None
    sizes = [sum(1 for i in ids if (a is None or i >= a) and (b is None or i <= b)) for a, b in ranges]
    assert sizes == [5, 6, 5, 6]  # boundaries at offsets 22·k/4: 5, 11, 16
    assert all(ranges[k][1] + 1 == ranges[k + 1][0] for k in range(3))


def test_parts_finishing_in_any_order_join_once(project, user, settings, split, held_parts):
    whole = run(project, user)
    split(3)
    export = Export.objects.create(project=project, created_by=user)
    jobs.run_export(export.pk)
    assert [args[1]["index"] for _, args in held_parts] == [0, 1, 2]
    export.refresh_from_db()
    assert export.status == Status.IN_PROGRESS
    assert export.counters == {"done": 0, "total": 22, "parts": 3}

    for job, args in reversed(held_parts):
        job(*args)
        export.refresh_from_db()
        if export.status == Status.IN_PROGRESS:
            assert 0 < export.counters["done"] < 22
    assert export.status == Status.COMPLETED
    assert export_file(settings, export) == export_file(settings, whole)

    job, args = held_parts[0]
    job(*args)  # a part delivered twice after the end does nothing
    export.refresh_from_db()
    assert export.status == Status.COMPLETED
    assert export_file(settings, export) == export_file(settings, whole)
    assert stored_parts(settings) == []


def test_a_failing_part_fails_the_snapshot_with_its_reason(project, user, settings, split, monkeypatch):
    real = SnapshotWriter.write_part

    def broken(self, out, progress=None, index=None):
        if self.selection.last_id is None:  # the part holding the newest tasks
            raise RuntimeError("disk on fire")
        return real(self, out, progress=progress)

    monkeypatch.setattr(SnapshotWriter, "write_part", broken)
    split(2)
    export = Export.objects.create(project=project, created_by=user)
    jobs.run_export(export.pk)
    export.refresh_from_db()
    assert export.status == Status.FAILED
    assert export.reason == "Part 2 of 2: RuntimeError: disk on fire"
    assert export.file == ""
    assert export.lease_owner == ""
    assert stored_parts(settings) == []
    assert not (Path(settings.DATA_DIR) / "exports" / str(project.pk)).exists()


def test_a_part_that_never_starts_fails_the_snapshot_after_the_wait(project, user, settings, split, held_parts):
    settings.EXPORT_PART_WAIT_SECONDS = 600
    split(2)
    export = Export.objects.create(project=project, created_by=user)
    jobs.run_export(export.pk)
    job, args = held_parts[0]
    job(*args)  # part 2 is lost in the queue
    export.refresh_from_db()
    assert export.status == Status.IN_PROGRESS
    wait = export.lease_expires_at - timezone.now()
    assert timedelta(seconds=590) < wait <= timedelta(seconds=600)  # the queued part's time to start
    assert jobs_recover()["failed"] == 0

    Export.objects.filter(pk=export.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert jobs_recover()["failed"] == 1
    export.refresh_from_db()
    assert export.status == Status.FAILED
    assert export.reason == LEASE_EXPIRED
    assert stored_parts(settings) == []  # the same sweep removed the dead run's part files
    assert parallel.remove_abandoned_parts() == 0


class Died(BaseException):
    """The worker running a part vanishes (nothing of the job's own error handling runs)."""


def test_a_part_that_dies_while_running_leaves_the_lease_to_expire_soon(
    project, user, settings, split, held_parts, monkeypatch
):
    settings.EXPORT_PART_WAIT_SECONDS = 600
    settings.EXPORT_LEASE_SECONDS = 60
    split(2)
    export = Export.objects.create(project=project, created_by=user)
    jobs.run_export(export.pk)
    real = SnapshotWriter.write_part

    def dies(self, out, progress=None, index=None):
        raise Died

    monkeypatch.setattr(SnapshotWriter, "write_part", dies)
    with pytest.raises(Died):
        held_parts[1][0](*held_parts[1][1])  # part 2 started, then its worker died
    monkeypatch.setattr(SnapshotWriter, "write_part", real)
    held_parts[0][0](*held_parts[0][1])  # part 1 finishes and finds part 2 started but not stored
    export.refresh_from_db()
    assert export.status == Status.IN_PROGRESS
    assert export.lease_expires_at - timezone.now() <= timedelta(seconds=60)  # not the queued part's 600 s


def test_deleting_a_split_snapshot_stops_its_parts_and_removes_them(project, user, settings, split, held_parts):
    split(3)
    export = Export.objects.create(project=project, created_by=user)
    jobs.run_export(export.pk)
    held_parts[0][0](*held_parts[0][1])
    assert stored_parts(settings) != []
    Export.objects.filter(pk=export.pk).delete()
    held_parts[1][0](*held_parts[1][1])  # finds the snapshot gone: writes nothing
    assert parallel.remove_abandoned_parts() == 1
    assert stored_parts(settings) == []


def test_the_sweep_keeps_running_parts_and_removes_others_in_one_query(
    project, user, settings, split, held_parts, django_assert_num_queries
):
    split(3)
    running = Export.objects.create(project=project, created_by=user)
    jobs.run_export(running.pk)
    held_parts[0][0](*held_parts[0][1])
    running_folder = parallel.parts_folder(running.pk, held_parts[0][1][1]["run"])
    for name in ("1-old", "999999-gone", f"{running.pk}-former"):  # parts of no snapshot still running
        storage.put_bytes(f"{parallel.PARTS_FOLDER}/{name}/00000.started", b"")

    with django_assert_num_queries(1):
        assert parallel.remove_abandoned_parts() == 3
    assert storage.list_folders(parallel.PARTS_FOLDER) == [running_folder.split("/", 1)[1]]


@pytest.mark.django_db(transaction=True)
def test_parts_run_at_once_in_the_thread_pool(project, user, settings, split):
    whole = run(project, user)
    settings.JOBS_BACKEND = "thread"
    settings.EXPORT_BATCH_SIZE = 2
    split(2)
    export = Export.objects.create(project=project, created_by=user)
    queue.submit(jobs.run_export, export.pk)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        export.refresh_from_db()
        if export.status in (Status.COMPLETED, Status.FAILED):
            break
        time.sleep(0.05)
    assert export.status == Status.COMPLETED, export.reason
    assert export_file(settings, export) == export_file(settings, whole)
    assert export.counters == whole.counters


def test_parts_on_other_workers_hold_the_lease_under_a_name_no_process_owns(project, user, settings, split, held_parts):
    whole = run(project, user)
    settings.JOBS_BACKEND = "celery"  # parts may run on any machine: the claiming process is no witness
    split(2)
    export = Export.objects.create(project=project, created_by=user)
    jobs.run_export(export.pk)
    export.refresh_from_db()
    run_token = held_parts[0][1][1]["run"]
    assert export.lease_owner == f"parts:{run_token}"
    assert jobs_recover()["failed"] == 0  # no dead-pid verdict on a name without a pid
    for job, args in held_parts:
        job(*args)
    export.refresh_from_db()
    assert export.status == Status.COMPLETED
    assert export_file(settings, export) == export_file(settings, whole)
