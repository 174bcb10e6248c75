import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from exports import jobs
from exports.models import ConvertedFormat, Export, Status
from exports.recovery import jobs_recover
from exports.retention import exports_purge
from tests.factories import fill_project, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(user):
    project = make_project(user=user)
    fill_project(project, user=user, count=3)
    return project


def stored_files(settings) -> set[Path]:
    root = Path(settings.DATA_DIR) / "exports"
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def completed_export(project, user, *, age_days: float, convert_to: str = "") -> Export:
    export = Export.objects.create(project=project, created_by=user, title=f"{age_days} days old")
    jobs.run_export(export.pk)
    if convert_to:
        converted = ConvertedFormat.objects.create(export=export, export_type=convert_to)
        jobs.run_conversion(converted.pk)
        assert ConvertedFormat.objects.get(pk=converted.pk).status == Status.COMPLETED
    Export.objects.filter(pk=export.pk).update(created_at=timezone.now() - timedelta(days=age_days))
    export.refresh_from_db()
    assert export.status == Status.COMPLETED
    return export


def in_progress_export(project, user, *, age_days: float) -> Export:
    export = Export.objects.create(project=project, created_by=user)
    assert Export.objects.transition(export.pk, Status.IN_PROGRESS, lease_owner="elsewhere:1:1")
    Export.objects.filter(pk=export.pk).update(
        created_at=timezone.now() - timedelta(days=age_days), lease_expires_at=timezone.now() + timedelta(hours=1)
    )
    return export


def test_the_sweep_purges_old_snapshots_and_their_files(project, user, settings, django_capture_on_commit_callbacks):
    """With EXPORT_RETENTION_DAYS the periodic sweep removes older snapshots, their conversions and files; newer
    snapshots and those still being written stay."""
    baseline = stored_files(settings)
    new = completed_export(project, user, age_days=1)
    kept_files = stored_files(settings)
    old = completed_export(project, user, age_days=10, convert_to="CSV")
    running = in_progress_export(project, user, age_days=10)
    assert len(stored_files(settings) - kept_files) == 3  # the old snapshot, its task index and its conversion

    settings.EXPORT_RETENTION_DAYS = 7
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_recover()["purged"] == 1

    assert set(Export.objects.values_list("pk", flat=True)) == {new.pk, running.pk}
    assert not ConvertedFormat.objects.filter(export_id=old.pk).exists()
    assert stored_files(settings) == kept_files

    Export.objects.filter(pk=new.pk).update(created_at=timezone.now() - timedelta(days=8))
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_recover()["purged"] == 1
    assert stored_files(settings) == baseline
    assert list(Export.objects.values_list("pk", flat=True)) == [running.pk]


def test_without_a_retention_period_snapshots_are_kept_forever(project, user, settings):
    settings.EXPORT_RETENTION_DAYS = None
    old = completed_export(project, user, age_days=3650)
    assert jobs_recover()["purged"] == 0
    assert Export.objects.filter(pk=old.pk).exists()


def test_a_snapshot_with_a_conversion_being_written_is_kept(project, user):
    old = completed_export(project, user, age_days=30)
    converted = ConvertedFormat.objects.create(export=old, export_type="CSV")
    assert ConvertedFormat.objects.transition(converted.pk, Status.IN_PROGRESS, lease_owner="elsewhere:1:1")
    assert exports_purge(older_than_days=7) == []
    assert Export.objects.filter(pk=old.pk).exists()


@pytest.mark.parametrize("days", [-1, float("nan"), float("inf")])
def test_purge_refuses_a_meaningless_age(days):
    with pytest.raises(ValueError, match="number of days"):
        exports_purge(older_than_days=days)


def test_the_command_dry_run_lists_and_keeps(project, user, settings, capsys):
    old = completed_export(project, user, age_days=10)
    new = completed_export(project, user, age_days=1)
    files = stored_files(settings)
    call_command("purge_exports", "--older-than", "7", "--dry-run")
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"Would remove export #{old.pk} of project {project.pk}")
    assert out[-1] == "Would remove 1 snapshot(s) older than 7 day(s)."
    assert len(out) == 2
    assert set(Export.objects.values_list("pk", flat=True)) == {old.pk, new.pk}
    assert stored_files(settings) == files


def test_the_command_removes_and_counts(project, user, settings, capsys, django_capture_on_commit_callbacks):
    baseline = stored_files(settings)
    old = [completed_export(project, user, age_days=days, convert_to="CSV") for days in (2, 3)]
    with django_capture_on_commit_callbacks(execute=True):
        call_command("purge_exports", "--older-than", "1.5")
    out = capsys.readouterr().out.splitlines()
    assert out == [
        *(line for line in out if line.startswith("Removed export #")),
        "Removed 2 snapshot(s) older than 1.5 day(s).",
    ]
    assert {line.split()[2] for line in out[:-1]} == {f"#{export.pk}" for export in old}
    assert not Export.objects.exists()
    assert stored_files(settings) == baseline


def test_the_command_with_nothing_to_remove(project, user, capsys):
    completed_export(project, user, age_days=1)
    call_command("purge_exports", "--older-than", "30")
    assert capsys.readouterr().out.splitlines() == ["Removed 0 snapshot(s) older than 30 day(s)."]


@pytest.mark.parametrize("value", ["soon", "-2", "nan", "inf"])
def test_the_command_rejects_bad_input(value):
    with pytest.raises(CommandError, match="--older-than must be a number of days"):
        call_command("purge_exports", "--older-than", value)


def test_the_command_exits_non_zero_with_one_line(tmp_path):
    """Run as a process: a bad age is one line on stderr and exit status 1."""
    env = {**os.environ, "SECRET_KEY": "x", "DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "manage.py", "purge_exports", "--older-than", "soon"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "CommandError: --older-than must be a number of days, 0 or more (not 'soon')."
    ]
