"""jobs.run_conversion: claims, failure reasons, retries, lease renewal and the sweep of dead conversions."""

import dataclasses
import os
import socket
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.storage import FileSystemStorage, Storage
from django.utils import timezone

from exports import converting, jobs, storage
from exports.converters import registry
from exports.converters.registry import ConversionError
from exports.exceptions import ConversionRejected
from exports.models import ConvertedFormat, Export, Status
from exports.recovery import CONVERSION_LEASE_EXPIRED, jobs_recover
from exports.services import export_convert
from projects.label_config import parse_label_config
from tests.factories import fill_project, make_project

pytestmark = pytest.mark.django_db

SEEN: dict = {}


# Converters the tests put in the registry (by dotted path, as real ones are).
def copy_ids(source, out, context):
    """One line per task id; records what it was given."""
    SEEN["context"] = context
    SEEN["scratch_existed"] = context.scratch_dir.is_dir()
    for task in source.tasks():
        out.write(f"{task['id']}\n".encode())


def two_passes(source, out, context):
    first = [task["id"] for task in source.tasks()]
    second = [task["id"] for task in source.tasks()]
    out.write(repr((first, second)).encode())


def reports_a_bad_task(source, out, context):
    for task in source.tasks():
        out.write(b"partial")
        raise ConversionError(f"Task {task['id']}, annotation 7: region 'r1' has no value")


def crashes(source, out, context):
    out.write(b"partial")
    raise RuntimeError("boom")


def swept_midway(source, out, context):
    for index, task in enumerate(source.tasks()):
        if index == 1:
            ConvertedFormat.objects.filter(status=Status.IN_PROGRESS).update(status=Status.FAILED, traceback="swept")
        out.write(f"{task['id']}\n".encode())


def swallows_everything(source, out, context):
    try:
        swept_midway(source, out, context)
    except Exception:  # a careless converter
        out.write(b"carried on")


def deleted_midway(source, out, context):
    for index, task in enumerate(source.tasks()):
        if index == 1:
            ConvertedFormat.objects.all().delete()
        out.write(f"{task['id']}\n".encode())


def checks_its_lease(source, out, context):
    for _task in source.tasks():
        row = ConvertedFormat.objects.get()
        SEEN.setdefault("leases", []).append(row.lease_expires_at)
        time.sleep(0.01)


def use_converter(monkeypatch, function_name: str, export_type: str = "CSV") -> None:
    fmt = dataclasses.replace(registry.get_format(export_type), converter=f"{__name__}:{function_name}")
    monkeypatch.setitem(registry._BY_NAME, export_type, fmt)


@pytest.fixture(autouse=True)
def _clean_seen():
    SEEN.clear()


@pytest.fixture
def project(user):
    project = make_project(user=user)
    fill_project(project, user=user, count=5)
    return project


@pytest.fixture
def export(project, user):
    export = Export.objects.create(project=project, created_by=user)
    jobs.run_export(export.pk)
    export.refresh_from_db()
    assert export.status == Status.COMPLETED
    return export


def conversion(export, export_type: str = "CSV", **fields) -> ConvertedFormat:
    return ConvertedFormat.objects.create(export=export, export_type=export_type, **fields)


def stored_files(settings) -> list[Path]:
    """Stored files but the task index each snapshot keeps beside its file (exports/increments.py)."""
    root = Path(settings.DATA_DIR) / "exports"
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix != ".index") if root.exists() else []


def scratch_entries(settings) -> list[Path]:
    folder = Path(settings.DATA_DIR) / "tmp"
    return sorted(folder.iterdir()) if folder.exists() else []


def assert_nothing_running():
    assert not ConvertedFormat.objects.filter(status=Status.IN_PROGRESS).exists()


def test_converts_once_and_stores_beside_the_snapshot(export, monkeypatch, settings):
    use_converter(monkeypatch, "copy_ids")
    converted = conversion(export)
    jobs.run_conversion(converted.pk)
    converted.refresh_from_db()
    first = (converted.status, converted.file, converted.finished_at)
    jobs.run_conversion(converted.pk)  # a second run finds it completed and does nothing
    converted.refresh_from_db()
    assert (converted.status, converted.file, converted.finished_at) == first
    assert converted.status == Status.COMPLETED
    assert converted.traceback is None
    assert converted.lease_owner == ""
    assert converted.file.startswith(f"{export.project_id}/export-{export.pk}-CSV-")
    assert converted.file.endswith(".csv")
    ids = sorted(export.project.tasks.values_list("id", flat=True))
    assert (Path(settings.DATA_DIR) / "exports" / converted.file).read_text() == "".join(f"{i}\n" for i in ids)
    assert len(stored_files(settings)) == 2  # the snapshot and its conversion
    assert scratch_entries(settings) == []


def test_the_converter_gets_the_projects_config_and_a_private_folder(export, monkeypatch, settings):
    use_converter(monkeypatch, "copy_ids")
    converted = conversion(export, download_resources=True)
    jobs.run_conversion(converted.pk)
    context = SEEN["context"]
    assert context.label_config == parse_label_config(export.project.label_config)
    assert context.project_id == export.project_id
    assert context.download_resources is True
    assert SEEN["scratch_existed"]
    assert context.scratch_dir.parent == storage.scratch_folder()
    assert not context.scratch_dir.exists()  # removed afterwards


def test_a_converter_may_read_the_tasks_twice(export, monkeypatch, settings):
    use_converter(monkeypatch, "two_passes")
    converted = conversion(export)
    jobs.run_conversion(converted.pk)
    converted.refresh_from_db()
    ids = sorted(export.project.tasks.values_list("id", flat=True))
    assert (Path(settings.DATA_DIR) / "exports" / converted.file).read_text() == repr((ids, ids))


def test_a_conversion_error_is_the_reason_as_the_converter_said_it(export, monkeypatch, settings):
    use_converter(monkeypatch, "reports_a_bad_task")
    converted = conversion(export)
    jobs.run_conversion(converted.pk)
    converted.refresh_from_db()
    first_task = min(export.project.tasks.values_list("id", flat=True))
    assert converted.status == Status.FAILED
    assert converted.traceback == f"Task {first_task}, annotation 7: region 'r1' has no value"
    assert converted.finished_at is not None
    assert converted.lease_owner == ""
    assert converted.file == ""
    assert len(stored_files(settings)) == 1  # only the snapshot
    assert scratch_entries(settings) == []


def test_an_unexpected_error_is_described_without_a_stack(export, monkeypatch, settings):
    use_converter(monkeypatch, "crashes")
    converted = conversion(export)
    jobs.run_conversion(converted.pk)
    converted.refresh_from_db()
    assert converted.status == Status.FAILED
    assert converted.traceback == "Conversion to CSV failed: RuntimeError: boom"
    assert "Traceback" not in converted.traceback
    assert len(stored_files(settings)) == 1
    assert scratch_entries(settings) == []


def test_a_failed_conversion_is_retried_through_the_service(export, monkeypatch, django_capture_on_commit_callbacks):
    use_converter(monkeypatch, "crashes")
    converted = conversion(export)
    jobs.run_conversion(converted.pk)
    use_converter(monkeypatch, "copy_ids")
    export = Export.objects.get(pk=export.pk)
    with django_capture_on_commit_callbacks(execute=True):
        again = export_convert(export=export, export_type="CSV")
    assert again.pk == converted.pk
    converted.refresh_from_db()
    assert converted.status == Status.COMPLETED
    assert converted.traceback is None
    assert converted.file


def test_the_lease_is_renewed_while_the_converter_reads(export, monkeypatch, settings):
    settings.EXPORT_LEASE_SECONDS = 60
    monkeypatch.setattr(converting, "renew_interval", lambda: 0.0)
    renewals = []
    original = ConvertedFormat.objects.renew_lease

    def spy(pk, owner, **fields):
        renewals.append(pk)
        return original(pk, owner, **fields)

    monkeypatch.setattr(ConvertedFormat.objects, "renew_lease", spy)
    use_converter(monkeypatch, "checks_its_lease")
    converted = conversion(export)
    jobs.run_conversion(converted.pk)
    converted.refresh_from_db()
    assert converted.status == Status.COMPLETED
    assert len(renewals) >= 5  # at least once per task read
    leases = SEEN["leases"]
    assert leases == sorted(leases)
    assert leases[-1] > leases[0]
    assert all(lease > timezone.now() for lease in leases[1:])


def test_the_default_renewal_is_several_times_per_lease(settings):
    settings.EXPORT_LEASE_SECONDS = 60
    assert 0 < converting.renew_interval() <= 15


def test_a_stuck_conversion_is_failed_by_the_sweep(export):
    stuck = conversion(
        export,
        status=Status.IN_PROGRESS,
        lease_owner="elsewhere:1:abc",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    live = conversion(
        export,
        "TSV",
        status=Status.IN_PROGRESS,
        lease_owner="elsewhere:2:def",
        lease_expires_at=timezone.now() + timedelta(seconds=60),
    )
    assert jobs_recover()["failed"] == 1
    stuck.refresh_from_db()
    live.refresh_from_db()
    assert stuck.status == Status.FAILED
    assert stuck.traceback == CONVERSION_LEASE_EXPIRED
    assert stuck.finished_at is not None
    assert live.status == Status.IN_PROGRESS


def test_a_conversion_of_a_dead_process_on_this_host_is_failed_at_once(export):
    child = subprocess.Popen(["true"])
    child.wait()  # its pid is now free: the owner is gone
    running = conversion(
        export,
        status=Status.IN_PROGRESS,
        lease_owner=f"{socket.gethostname()}:{child.pid}:abc",
        lease_expires_at=timezone.now() + timedelta(seconds=60),
    )
    jobs_recover()
    running.refresh_from_db()
    assert running.status == Status.FAILED
    assert str(child.pid) in running.traceback
    assert "Convert again" in running.traceback


def test_the_sweep_requeues_conversions_waiting_too_long(export, monkeypatch):
    use_converter(monkeypatch, "copy_ids")
    waiting = conversion(export)
    ConvertedFormat.objects.filter(pk=waiting.pk).update(created_at=timezone.now() - timedelta(seconds=120))
    just_made = conversion(export, "TSV")
    assert jobs_recover(requeue_older_than=60)["requeued"] == 1
    waiting.refresh_from_db()
    just_made.refresh_from_db()
    assert waiting.status == Status.COMPLETED
    assert just_made.status == Status.CREATED


def test_a_swept_conversion_stops_and_leaves_no_file(export, monkeypatch, settings):
    monkeypatch.setattr(converting, "renew_interval", lambda: 0.0)
    use_converter(monkeypatch, "swept_midway")
    converted = conversion(export)
    jobs.run_conversion(converted.pk)
    converted.refresh_from_db()
    assert converted.status == Status.FAILED
    assert converted.traceback == "swept"
    assert len(stored_files(settings)) == 1
    assert scratch_entries(settings) == []


def test_a_converter_that_swallows_the_lost_lease_still_stops(export, monkeypatch, settings):
    monkeypatch.setattr(converting, "renew_interval", lambda: 0.0)
    use_converter(monkeypatch, "swallows_everything")
    converted = conversion(export)
    jobs.run_conversion(converted.pk)
    converted.refresh_from_db()
    assert converted.status == Status.FAILED
    assert converted.traceback == "swept"
    assert converted.file == ""
    assert len(stored_files(settings)) == 1


def test_a_conversion_deleted_while_running_leaves_no_file(export, monkeypatch, settings):
    monkeypatch.setattr(converting, "renew_interval", lambda: 0.0)
    use_converter(monkeypatch, "deleted_midway")
    converted = conversion(export)
    jobs.run_conversion(converted.pk)
    assert not ConvertedFormat.objects.exists()
    assert len(stored_files(settings)) == 1
    assert scratch_entries(settings) == []


def test_a_missing_snapshot_file_fails_with_a_reason(export, monkeypatch):
    use_converter(monkeypatch, "copy_ids")
    storage.remove(export.file)
    converted = conversion(export)
    jobs.run_conversion(converted.pk)
    converted.refresh_from_db()
    assert converted.status == Status.FAILED
    assert converted.traceback == "The snapshot's file is missing from storage; create a new snapshot."


def test_a_snapshot_that_is_not_completed_is_not_converted(project, user, monkeypatch):
    use_converter(monkeypatch, "copy_ids")
    export = Export.objects.create(project=project, created_by=user)
    converted = conversion(export)
    jobs.run_conversion(converted.pk)
    converted.refresh_from_db()
    assert converted.status == Status.FAILED
    assert converted.traceback == "The snapshot is not completed (status: created); nothing to convert."
    assert "context" not in SEEN


def test_an_unknown_format_fails_with_a_reason(export):
    converted = conversion(export, "FOO")
    jobs.run_conversion(converted.pk)
    converted.refresh_from_db()
    assert converted.status == Status.FAILED
    assert converted.traceback == "FOO is not a supported export format."
    assert_nothing_running()


class NoPathStorage(Storage):
    """A storage without local paths, like an object store (files kept in a folder behind its back)."""

    def __init__(self, location: str):
        self.inner = FileSystemStorage(location=location)

    def _open(self, name, mode="rb"):
        return self.inner._open(name, mode)

    def _save(self, name, content):
        return self.inner._save(name, content)

    def exists(self, name):
        return self.inner.exists(name)

    def delete(self, name):
        self.inner.delete(name)

    def size(self, name):
        return self.inner.size(name)

    def listdir(self, path):
        return self.inner.listdir(path)


def test_a_snapshot_in_a_storage_without_paths_is_copied_first(export, monkeypatch, settings, tmp_path):
    use_converter(monkeypatch, "copy_ids")
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": f"{__name__}.NoPathStorage",
            "OPTIONS": {"location": str(Path(settings.DATA_DIR) / "exports")},
        },
    }
    converted = conversion(export)
    jobs.run_conversion(converted.pk)
    converted.refresh_from_db()
    assert converted.status == Status.COMPLETED, converted.traceback
    ids = sorted(export.project.tasks.values_list("id", flat=True))
    with storage.export_storage().open(converted.file, "rb") as stored:
        assert stored.read().decode() == "".join(f"{i}\n" for i in ids)
    assert scratch_entries(settings) == []  # the copy is gone too


def test_the_sweep_removes_abandoned_conversion_folders(settings):
    folder = storage.scratch_folder()
    old = folder / f"{converting.CONVERSION_SCRATCH_PREFIX}old"
    fresh = folder / f"{converting.CONVERSION_SCRATCH_PREFIX}fresh"
    for path in (old, fresh):
        path.mkdir()
        (path / "part.bin").write_bytes(b"x")
    stale = time.time() - 10 * settings.EXPORT_LEASE_SECONDS
    os.utime(old, (stale, stale))
    jobs_recover()
    assert not old.exists()
    assert fresh.exists()


def test_a_real_csv_conversion(export):
    try:
        registry.get_format("CSV").load()
    except (ImportError, AttributeError):
        pytest.skip("the CSV converter is not there yet")
    converted = conversion(export)
    jobs.run_conversion(converted.pk)
    converted.refresh_from_db()
    assert converted.status == Status.COMPLETED, converted.traceback
    assert storage.export_storage().exists(converted.file)
    assert_nothing_running()


def test_a_concurrent_request_for_a_new_format_is_refused(export):
    """Two requests read the snapshot with no CSV yet; the unique constraint lets only the first one in."""
    stale = Export.objects.prefetch_related("converted_formats").get(pk=export.pk)
    assert list(stale.converted_formats.all()) == []
    conversion(export)  # the other request's row
    with pytest.raises(ConversionRejected, match="Conversion to CSV already started"):
        export_convert(export=stale, export_type="CSV")
    assert ConvertedFormat.objects.count() == 1


def test_a_concurrent_retry_of_a_failed_format_is_refused(export):
    failed = conversion(export, status=Status.FAILED, traceback="boom")
    stale = Export.objects.prefetch_related("converted_formats").get(pk=export.pk)
    assert [cf.status for cf in stale.converted_formats.all()] == [Status.FAILED]
    assert ConvertedFormat.objects.transition(failed.pk, Status.CREATED)  # the other request's retry
    with pytest.raises(ConversionRejected, match="Conversion to CSV already started"):
        export_convert(export=stale, export_type="CSV")
