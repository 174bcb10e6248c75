"""`manage.py export_project`: one export of a project to a file or stdout, through the easy export functions."""

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from exports.converters import tabular
from exports.converters.registry import ConversionError
from projects.services import tasks_import
from tests.factories import make_project, task_payload

pytestmark = pytest.mark.django_db


class TtyStringIO(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def project(user):
    """Tasks 0-1 annotated, 2 only a cancelled annotation, 3-4 without any."""
    project = make_project(user=user, title="Command")
    payload = [
        task_payload(0, annotations=2),
        task_payload(1),
        task_payload(2, cancelled=True),
        task_payload(3, annotations=0),
        task_payload(4, annotations=0),
    ]
    tasks_import(project=project, user=user, payload=payload)
    return project


def run(*args: str, stdout=None, stderr=None) -> tuple[str, str]:
    out, err = stdout or io.StringIO(), stderr or io.StringIO()
    call_command("export_project", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def easy_export(client, project, query: str) -> bytes:
    response = client.get(f"{reverse('project-export', kwargs={'pk': project.pk})}?{query}")
    assert response.status_code == 200
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_json_to_a_file_is_the_easy_export_of_all_tasks(project, api_client, tmp_path):
    target = tmp_path / "out.json"
    stdout, stderr = run("--project", str(project.pk), "--output", str(target))
    mine = json.loads(target.read_bytes())
    api = json.loads(easy_export(api_client, project, "export_type=JSON&download_all_tasks=true"))
    assert len(mine) == 5
    assert mine == api
    assert f"Wrote project {project.pk} as JSON to {target}" in stdout
    assert stderr == ""  # not a terminal: no progress bar
    assert [path.name for path in tmp_path.iterdir() if path.name.endswith(".part")] == []


@pytest.mark.parametrize("flag", ["--only-with-annotations", "--only-annotated"])
def test_only_with_annotations_is_the_api_default(project, api_client, tmp_path, flag):
    target = tmp_path / "out.json"
    run("--project", str(project.pk), "--output", str(target), flag)
    mine = json.loads(target.read_bytes())
    assert len(mine) == 3
    assert mine == json.loads(easy_export(api_client, project, "export_type=JSON"))


def test_json_min_to_stdout(project, api_client):
    for output in ([], ["--output", "-"]):
        stdout, stderr = run("--project", str(project.pk), "--format", "JSON_MIN", *output)
        assert json.loads(stdout) == json.loads(
            easy_export(api_client, project, "export_type=JSON_MIN&download_all_tasks=true")
        )
        assert stderr == ""


def test_ids(project, tmp_path):
    ids = sorted(project.tasks.values_list("id", flat=True))[:2]
    target = tmp_path / "out.json"
    run("--project", str(project.pk), "--output", str(target), "--ids", ",".join(map(str, ids)))
    assert [task["id"] for task in json.loads(target.read_bytes())] == ids


@pytest.mark.parametrize(("export_format", "delimiter"), [("CSV", ","), ("TSV", "\t")])
def test_csv_parses(project, api_client, tmp_path, export_format, delimiter):
    target = tmp_path / "out.csv"
    run("--project", str(project.pk), "--format", export_format, "--output", str(target))
    rows = list(csv.DictReader(io.StringIO(target.read_text("utf-8"), newline=""), delimiter=delimiter))
    # One row per annotation that is not cancelled (three), plus one for each task without annotations (two).
    assert len(rows) == 5
    assert {row["image"] for row in rows} == {f"https://example.com/img/{n}.jpg" for n in (0, 1, 3, 4)}
    api = easy_export(
        api_client, project, f"export_type={export_format}&download_all_tasks=true&download_resources=false"
    )
    assert target.read_bytes() == api


def test_zip_format_to_stdout_bytes(project):
    """A binary format goes to stdout's bytes as they are."""
    buffer = io.BytesIO()

    class Stdout(io.StringIO):
        pass

    out = Stdout()
    out.buffer = buffer  # type: ignore[attr-defined]
    run("--project", str(project.pk), "--format", "YOLO", "--no-download-resources", stdout=out)
    assert buffer.getvalue().startswith(b"PK")
    assert out.getvalue() == ""


def test_progress_bar_only_on_a_terminal(project, tmp_path):
    target = tmp_path / "out.json"
    _stdout, quiet = run("--project", str(project.pk), "--output", str(target))
    assert quiet == ""
    tty = TtyStringIO()
    run("--project", str(project.pk), "--output", str(target), stderr=tty)
    assert f"Project {project.pk} JSON" in tty.getvalue()


def test_unknown_project(db, tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(CommandError, match=r"^Project 999999 does not exist\.$"):
        run("--project", "999999", "--output", str(target))
    assert not target.exists()


def test_unknown_format(project):
    with pytest.raises(CommandError, match="BOGUS is not supported export format. Valid: JSON, JSON_MIN, CSV"):
        run("--project", str(project.pk), "--format", "BOGUS")


def test_format_disabled_for_the_label_config(project):
    with pytest.raises(CommandError, match="CONLL2003 is not supported for this project's labeling config"):
        run("--project", str(project.pk), "--format", "CONLL2003")


def test_conversion_error_leaves_no_file(project, tmp_path, monkeypatch):
    def fail(source, out, context):
        raise ConversionError("task 7: bad\nvalue")

    monkeypatch.setattr(tabular, "convert_csv", fail)
    target = tmp_path / "out.csv"
    with pytest.raises(CommandError) as caught:
        run("--project", str(project.pk), "--format", "CSV", "--output", str(target))
    assert str(caught.value) == "Conversion to CSV failed: task 7: bad value"
    assert not any(path.name.startswith(".out.csv") for path in tmp_path.iterdir())
    assert not target.exists()


def test_unwritable_output(project, tmp_path):
    with pytest.raises(CommandError, match="^Cannot write the export: "):
        run("--project", str(project.pk), "--output", str(tmp_path / "missing" / "out.json"))


def test_bad_ids(project):
    with pytest.raises(CommandError, match="is not a task id"):
        run("--project", str(project.pk), "--ids", "1,x")


@pytest.mark.skipif(
    django_settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3", reason="uses its own SQLite file"
)
def test_real_process_exit_code_and_stderr(tmp_path):
    """Through manage.py in a real process, on a database of its own: a failure is exit 1 and one stderr line;
    a success writes the file and nothing to stderr when it is not a terminal."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "SECRET_KEY": "x", "DATA_DIR": str(tmp_path / "data")}
    env.pop("DATABASE_URL", None)

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=root, env=env, capture_output=True, text=True, timeout=120
        )

    assert manage("migrate", "--verbosity", "0").returncode == 0
    failed = manage("export_project", "--project", "424242")
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert failed.stderr.strip().splitlines() == ["CommandError: Project 424242 does not exist."]
