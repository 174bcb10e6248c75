import json
import os
import re
import socket
import subprocess
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from exports import files, jobs, queue, storage
from exports.leases import LeaseOwner
from exports.models import ALLOWED, Export, Status
from exports.recovery import jobs_recover
from exports.services import exports_delete
from exports.snapshot import SnapshotWriter
from tests.factories import fill_project, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(user):
    project = make_project(user=user)
    fill_project(project, user=user, count=5)
    return project


def stored_files(settings) -> list[Path]:
    root = Path(settings.DATA_DIR) / "exports"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_running_twice_writes_one_file(project, user, settings):
    export = Export.objects.create(project=project, created_by=user)
    jobs.run_export(export.pk)
    export.refresh_from_db()
    first = (export.status, export.md5, export.finished_at)
    jobs.run_export(export.pk)
    export.refresh_from_db()
    assert (export.status, export.md5, export.finished_at) == first
    assert first[0] == Status.COMPLETED
    # One snapshot file and its task index beside it (exports/increments.py).
    assert [path.suffix for path in stored_files(settings)] == [".index", ".json"]


def test_a_failure_ends_failed_with_a_reason(project, user, monkeypatch, settings):
    def broken(self, out, progress=None, index=None):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(SnapshotWriter, "write", broken)
    export = Export.objects.create(project=project, created_by=user)
    jobs.run_export(export.pk)
    export.refresh_from_db()
    assert export.status == Status.FAILED
    assert export.reason == "RuntimeError: disk on fire"
    assert export.finished_at is not None
    assert export.lease_owner == ""
    assert stored_files(settings) == []


def test_small_batches_give_the_same_file(project, user, settings):
    settings.EXPORT_BATCH_SIZE = 2
    small = Export.objects.create(project=project, created_by=user)
    jobs.run_export(small.pk)
    settings.EXPORT_BATCH_SIZE = 1000
    large = Export.objects.create(project=project, created_by=user)
    jobs.run_export(large.pk)
    small.refresh_from_db()
    large.refresh_from_db()
    assert small.md5 == large.md5
    content = json.loads((Path(settings.DATA_DIR) / "exports" / small.file).read_bytes())
    assert [task["id"] for task in content] == sorted(project.tasks.values_list("id", flat=True))


def test_batches_use_a_fixed_number_of_queries(project, user, django_assert_max_num_queries):
    writer = SnapshotWriter(project=project, batch_size=2)
    batches = writer.encoded_batches()
    with django_assert_max_num_queries(4):  # tasks, annotations, predictions, drafts
        tasks, annotations, predictions = next(batches)
    assert (len(tasks), annotations, predictions) == (2, 2, 2)
    with django_assert_max_num_queries(4):
        tasks, annotations, predictions = next(batches)
    assert (len(tasks), annotations, predictions) == (2, 2, 2)


def test_expired_lease_is_failed_with_a_reason(project, user):
    export = Export.objects.create(
        project=project,
        created_by=user,
        status=Status.IN_PROGRESS,
        lease_owner="elsewhere:1:abc",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    live = Export.objects.create(
        project=project,
        created_by=user,
        status=Status.IN_PROGRESS,
        lease_owner="elsewhere:2:def",
        lease_expires_at=timezone.now() + timedelta(seconds=60),
    )
    assert jobs_recover()["failed"] == 1
    export.refresh_from_db()
    live.refresh_from_db()
    assert export.status == Status.FAILED
    assert "lease" in export.reason
    assert live.status == Status.IN_PROGRESS


def test_dead_process_on_this_host_is_failed_at_once(project, user):
    child = subprocess.Popen(["true"])
    child.wait()  # its pid is now free: the owner is gone
    export = Export.objects.create(
        project=project,
        created_by=user,
        status=Status.IN_PROGRESS,
        lease_owner=f"{socket.gethostname()}:{child.pid}:abc",
        lease_expires_at=timezone.now() + timedelta(seconds=60),
    )
    jobs_recover()
    export.refresh_from_db()
    assert export.status == Status.FAILED
    assert str(child.pid) in export.reason


def test_created_snapshots_are_requeued(project, user, settings):
    export = Export.objects.create(project=project, created_by=user)
    assert jobs_recover(requeue_older_than=0)["requeued"] == 1
    export.refresh_from_db()
    assert export.status == Status.COMPLETED


def test_the_periodic_sweep_requeues_only_snapshots_waiting_too_long(project, user, settings):
    """A job that died before claiming its snapshot (e.g. a database error) is run again by the sweep."""
    waiting = Export.objects.create(project=project, created_by=user)
    Export.objects.filter(pk=waiting.pk).update(created_at=timezone.now() - timedelta(seconds=120))
    just_made = Export.objects.create(project=project, created_by=user)
    assert jobs_recover(requeue_older_than=60)["requeued"] == 1
    waiting.refresh_from_db()
    just_made.refresh_from_db()
    assert waiting.status == Status.COMPLETED
    assert just_made.status == Status.CREATED


def test_a_waiting_snapshot_is_sent_again_at_most_once_per_interval(project, user, monkeypatch):
    """However often (and from however many processes) the sweep runs, a row still `created` is resent once per
    `requeue_older_than` seconds, so resends do not pile up behind a long queue."""
    sent = []
    monkeypatch.setattr(queue, "submit", lambda job, *args: sent.append((job.__name__, *args)))
    waiting = Export.objects.create(project=project, created_by=user)
    Export.objects.filter(pk=waiting.pk).update(created_at=timezone.now() - timedelta(seconds=120))

    assert jobs_recover(requeue_older_than=60)["requeued"] == 1
    assert jobs_recover(requeue_older_than=60)["requeued"] == 0  # another sweep right after: already sent
    assert Export.objects.get(pk=waiting.pk).status == Status.CREATED
    Export.objects.filter(pk=waiting.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=61))
    assert jobs_recover(requeue_older_than=60)["requeued"] == 1  # the interval has passed since the last send
    assert sent == [("run_export", waiting.pk), ("run_export", waiting.pk)]


def test_a_sent_snapshot_still_runs_when_claimed(project, user, monkeypatch):
    """The resend stamp does not stand in the way of the job claiming the row."""
    monkeypatch.setattr(queue, "submit", lambda job, *args: None)
    export = Export.objects.create(project=project, created_by=user)
    assert jobs_recover(requeue_older_than=0)["requeued"] == 1
    jobs.run_export(export.pk)
    export.refresh_from_db()
    assert export.status == Status.COMPLETED
    assert export.lease_expires_at is None


def test_two_runs_storing_the_same_name_at_once_both_succeed(settings, monkeypatch):
    """Each writer moves its own partial file into place: a part sent twice cannot make the other run fail."""
    real_replace = os.replace
    nested = []

    def replace(src, dst):
        if not nested:  # the other run stores the same name between this run's link and its move
            nested.append(True)
            with storage.scratch_file() as other:
                other.write(b"same bytes")
                storage.store("1/part.json", other)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with storage.scratch_file() as scratch:
        scratch.write(b"same bytes")
        assert storage.store("1/part.json", scratch) == "1/part.json"
    stored = stored_files(settings)
    assert [path.name for path in stored] == ["part.json"]  # no partial file left beside it
    assert stored[0].read_bytes() == b"same bytes"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_snapshot_completing_while_it_is_deleted_leaves_no_file(project, user, settings, monkeypatch):
    """The deletion locks the rows whose files it reads: a job completing meanwhile waits, finds its row gone and
    removes its own file, instead of recording a name the deletion never saw."""
    export = Export.objects.create(project=project, created_by=user, status=Status.IN_PROGRESS, lease_owner="job")
    with storage.scratch_file() as scratch:
        scratch.write(b"[]")
        name = storage.store(files.export_file_name(export, "d751713988987e9331980363e24189ce"), scratch)
    names_read, go_on = threading.Event(), threading.Event()
    real_delete = QuerySet.delete

    def delete(self):
        names_read.set()
        go_on.wait(5)
        return real_delete(self)

    monkeypatch.setattr(QuerySet, "delete", delete)

    def in_thread(work):
        def target():
            try:
                work()
            finally:
                connection.close()

        thread = threading.Thread(target=target)
        thread.start()
        return thread

    def complete():
        if not Export.objects.transition(
            export.pk, Status.COMPLETED, only_if={"lease_owner": "job"}, file=name, md5="d7517139"
        ):
            files.discard_unreferenced(Export, name)

    deleting = in_thread(lambda: exports_delete(exports=Export.objects.filter(pk=export.pk)))
    assert names_read.wait(5)
    completing = in_thread(complete)
    completing.join(0.5)  # blocked on the row lock until the deletion commits
    go_on.set()
    deleting.join(10)
    completing.join(10)
    assert not Export.objects.filter(pk=export.pk).exists()
    assert stored_files(settings) == []


def test_a_job_that_lost_its_lease_leaves_no_file(project, user, settings, monkeypatch):
    export = Export.objects.create(project=project, created_by=user)
    original = SnapshotWriter.write

    def fail_midway(self, out, progress=None, index=None):
        Export.objects.filter(pk=export.pk).update(status=Status.FAILED, reason="swept")
        return original(self, out, progress=progress)

    monkeypatch.setattr(SnapshotWriter, "write", fail_midway)
    jobs.run_export(export.pk)
    export.refresh_from_db()
    assert export.status == Status.FAILED
    assert export.reason == "swept"
    assert stored_files(settings) == []


def test_deleted_while_running_leaves_no_file(project, user, settings, monkeypatch):
    export = Export.objects.create(project=project, created_by=user)
    original = SnapshotWriter.write

    def delete_midway(self, out, progress=None):
        Export.objects.filter(pk=export.pk).delete()
        return original(self, out, progress=progress)

    monkeypatch.setattr(SnapshotWriter, "write", delete_midway)
    jobs.run_export(export.pk)
    assert stored_files(settings) == []


def test_transition_graph_is_enforced(project, user):
    export = Export.objects.create(project=project, created_by=user)
    assert not Export.objects.transition(export.pk, Status.COMPLETED)
    assert Export.objects.transition(export.pk, Status.IN_PROGRESS)
    assert not Export.objects.transition(export.pk, Status.IN_PROGRESS)
    assert Export.objects.transition(export.pk, Status.FAILED, reason="x")
    assert Export.objects.transition(export.pk, Status.CREATED)
    assert set(ALLOWED) == set(Status)


def test_nothing_outside_models_assigns_status():
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for path in root.glob("*/**/*.py"):
        if ".venv" in path.parts or path.parts[-2] == "migrations" or "tests" in path.parts:
            continue
        if path.name == "models.py" and path.parent.name == "exports":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\.status\s*=[^=]|update\([^)]*\bstatus=", line):
                offenders.append(f"{path.relative_to(root)}:{number}")
    assert offenders == []


def test_progress_counters_are_saved_while_running(project, user, monkeypatch):
    seen = []
    original = Export.objects.renew_lease

    def spy(pk, owner, **fields):
        seen.append(fields.get("counters"))
        return original(pk, owner, **fields)

    monkeypatch.setattr(Export.objects, "renew_lease", spy)
    export = Export.objects.create(project=project, created_by=user)
    jobs.run_export(export.pk)
    assert seen[0] == {"done": 0, "total": 0}
    export.refresh_from_db()
    assert export.counters["done"] == export.counters["total"] == 5


def test_pid_is_this_process_in_lease_owner():
    owner = str(LeaseOwner.new())
    host, pid, run = owner.split(":")
    assert host == socket.gethostname()
    assert int(pid) == os.getpid()
    assert run


def test_abandoned_scratch_files_are_removed(settings):
    folder = Path(settings.DATA_DIR) / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    old = folder / "export-old.partial"
    fresh = folder / "export-fresh.partial"
    old.write_bytes(b"[")
    fresh.write_bytes(b"[")
    stale = timezone.now().timestamp() - 10 * settings.EXPORT_LEASE_SECONDS
    os.utime(old, (stale, stale))
    jobs_recover()
    assert not old.exists()
    assert fresh.exists()
