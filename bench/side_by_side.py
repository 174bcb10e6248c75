"""Label Studio 1.23.2 under bench/run.py's workload, for `bench/run.py --label-studio`.

Label Studio runs as its users start it (`label-studio start`, Django's threaded development server, no Redis, so
an export is written inside its POST), from its own venv (tests/e2e/labelstudio.py), on the same kind of database
as the service it is compared with: a fresh PostgreSQL database copied from the migrated template, or a SQLite
file in a temp folder (`DJANGO_DB=sqlite`; Label Studio migrates it at start, about 20 s). Its project has the
service's image config and is filled straight into its tables with the rows bench/generate.py writes for the
service: each task one annotation (three rectangles and a choice) and one prediction, the same JSON.

Runs inside bench/run.py's configured Django process (the rows come from bench/generate.py, which imports the
service's models).
"""

import json
import shutil
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import generate
import psycopg
import run

from tests.e2e import labelstudio as lsh
from tests.factories import IMAGE_CONFIG

LS_DATABASE = "lsharness_run_bench"
CHUNK = 20_000

TASK_COLUMNS = [
    "id",
    "data",
    "meta",
    "created_at",
    "updated_at",
    "is_labeled",
    "overlap",
    "total_annotations",
    "cancelled_annotations",
    "total_predictions",
    "comment_count",
    "unresolved_comment_count",
    "project_id",
    "inner_id",
    "allow_skip",
]
ANNOTATION_COLUMNS = [
    "id",
    "result",
    "was_cancelled",
    "ground_truth",
    "created_at",
    "updated_at",
    "result_count",
    "task_id",
    "project_id",
    "completed_by_id",
    "lead_time",
    "bulk_created",
]
PREDICTION_COLUMNS = [
    "id",
    "result",
    "score",
    "model_version",
    "created_at",
    "updated_at",
    "task_id",
    "project_id",
    "mislabeling",
]


def start(vendor: str) -> lsh.LabelStudio:
    """Label Studio on a fresh database of the kind `vendor` names ("postgresql" or "sqlite")."""
    if vendor == "postgresql":
        return lsh.start_label_studio(database=LS_DATABASE)
    path = Path(tempfile.mkdtemp(prefix="lsbench-ls-sqlite-")) / "label_studio.sqlite3"
    # fresh=False: no PostgreSQL database is made; DJANGO_DB=sqlite makes Label Studio ignore the POSTGRE_* names.
    return lsh.start_label_studio(
        database=LS_DATABASE,
        fresh=False,
        extra_env={"DJANGO_DB": "sqlite", "DATABASE_NAME": str(path)},
        timeout=600,
    )


def rows(project_id: int, user_id: int, first_id: int, count: int, now) -> tuple[list, list, list]:
    """Label Studio's rows for tasks first_id..first_id+count-1 (task, annotation and prediction share the id)."""
    tasks, annotations, predictions = [], [], []
    for pk in range(first_id, first_id + count):
        data = json.dumps({"image": f"https://example.com/img/{pk}.jpg"})
        tasks.append((pk, data, "{}", now, now, True, 1, 1, 0, 1, 0, 0, project_id, pk, True))
        result = json.dumps(generate.annotation_result(pk))
        annotations.append((pk, result, False, False, now, now, 4, pk, project_id, user_id, 12.5, False))
        predictions.append(
            (pk, json.dumps(generate.prediction_result(pk)), 0.87, "bench-v1", now, now, pk, project_id, 0)
        )
    return tasks, annotations, predictions


def fill(ls: lsh.LabelStudio, project_id: int, count: int) -> float:
    """Write `count` tasks into the (empty) project's tables; returns the seconds it took."""
    assert ls.admin is not None
    started = time.monotonic()
    tables = (("task", TASK_COLUMNS), ("task_completion", ANNOTATION_COLUMNS), ("prediction", PREDICTION_COLUMNS))
    if ls.env["DJANGO_DB"] == "sqlite":
        with sqlite3.connect(ls.env["DATABASE_NAME"], timeout=60) as conn:
            for start_id in range(1, count + 1, CHUNK):
                # Django keeps SQLite datetimes as naive UTC text
                now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ")
                chunk = rows(project_id, ls.admin.id, start_id, min(CHUNK, count + 1 - start_id), now)
                for (table, columns), values in zip(tables, chunk, strict=True):
                    marks = ", ".join("?" * len(columns))
                    conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", values)
            conn.execute("ANALYZE")
        return time.monotonic() - started
    with psycopg.connect(ls.database_url, autocommit=True) as conn:
        for start_id in range(1, count + 1, CHUNK):
            chunk = rows(project_id, ls.admin.id, start_id, min(CHUNK, count + 1 - start_id), datetime.now(UTC))
            with conn.transaction():
                for (table, columns), values in zip(tables, chunk, strict=True):
                    with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in values:
                            copy.write_row(row)
        for table, _ in tables:
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.execute("ANALYZE")
    return time.monotonic() - started


def measure(
    vendor: str, *, tasks: int, import_tasks: int, poll_interval: float, clients: int, get_requests: int, full: bool
) -> dict:
    """Export `tasks` tasks while polling, import `import_tasks` in one request, and load GET snapshot with wrk."""
    ls = start(vendor)
    try:
        assert ls.admin is not None
        token = ls.admin.token
        admin = ls.client(token=token)
        project = admin.create_project("Bench export", IMAGE_CONFIG)["id"]
        seconds = fill(ls, project, tasks)
        print(f"  Label Studio: filled {tasks} tasks into its tables in {seconds:.1f}s", flush=True)
        results: dict = {"server": f"Label Studio {lsh.LS_VERSION} (label-studio start)", "database": vendor}

        run.call(ls.port, "GET", f"/api/projects/{project}/exports/", token)  # warm up, as for the service
        load = run.load_average()
        snapshot = run.timed_snapshot(ls.port, token, project, poll_interval)
        results["snapshot"] = {"load": load, **snapshot, "tasks_per_second": round(tasks / snapshot["seconds"])}
        print(f"  Label Studio snapshot: {results['snapshot']}", flush=True)
        if not full:
            return results

        warm_up = admin.create_project("Warm-up", IMAGE_CONFIG)["id"]
        status, answer, _ = run.call(ls.port, "POST", f"/api/projects/{warm_up}/import", token, raw=run.import_body(10))
        assert status == 201, answer[:500]
        target = admin.create_project("Bench import", IMAGE_CONFIG)["id"]
        body = run.import_body(import_tasks)
        results["import"] = {"load": run.load_average(), **run.timed_import(ls.port, token, target, body, import_tasks)}
        print(f"  Label Studio import: {results['import']}", flush=True)

        path = f"/api/projects/{project}/exports/{snapshot['export_id']}"
        results["get_snapshot"] = {
            "load": run.load_average(),
            **run.get_load(ls.port, token, path, clients, get_requests),
            "web_workers": "1 process, a thread per request",
        }
        print(f"  Label Studio GET snapshot: {results['get_snapshot']}", flush=True)
    finally:
        ls.stop(drop=True)
        if vendor != "postgresql":
            shutil.rmtree(Path(ls.env["DATABASE_NAME"]).parent, ignore_errors=True)
    return results
