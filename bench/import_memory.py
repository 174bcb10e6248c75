"""Import benchmark: the memory and rate of one large import through the real server, on PostgreSQL and SQLite,
and optionally Label Studio 1.23.2 importing the same body on PostgreSQL.

    .venv/bin/python bench/import_memory.py --tasks 100000
    .venv/bin/python bench/import_memory.py --tasks 100000 --label-studio

For each database it starts gunicorn (one worker, as bench/run.py), warms the worker up with a 10-task import,
then posts the body (`bench/run.py`'s import data: each task with one annotation of three rectangles and a choice,
and one prediction) in one `POST /api/projects/{id}/import`. It reports the wall time and tasks/s, and the
resident memory of the worker sampled every 20 ms: before the request, its peak, and the growth. With
`--label-studio` it starts Label Studio 1.23.2 (tests/e2e/labelstudio.py: its own venv and a fresh PostgreSQL
database), posts the same body to its import endpoint, measures the same way (its whole process tree) and prints
how many times faster the service is on PostgreSQL.

Each database is measured in a child process of this script (Django binds one database per process).
"""

import argparse
import http.client
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from memory import PeakRss, process_tree  # noqa: E402

DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/lsbench_import"
LABEL_STUDIO_DATABASE = "lsharness_import_bench"


def post(port: int, path: str, headers: dict, body: bytes) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    connection.request("POST", path, body=body, headers={**headers, "Content-Type": "application/json"})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data


def timed_import(port: int, path: str, headers: dict, body: bytes, tasks: int, pids: list[int]) -> dict:
    with PeakRss(pids) as memory:
        started = time.monotonic()
        status, answer = post(port, path, headers, body)
        seconds = time.monotonic() - started
    assert status == 201, answer[:500]
    imported = json.loads(answer)
    assert imported["task_count"] == tasks, imported
    return {
        "tasks": tasks,
        "body_mb": round(len(body) / 1e6, 1),
        "seconds": round(seconds, 2),
        "tasks_per_second": round(tasks / seconds),
        **memory.figures(),
    }


def measure_service(database_url: str, tasks: int, port: int) -> dict:
    """One database: migrate, start gunicorn, warm up, import `tasks` once (runs in its own process)."""
    import run

    run.ensure_database(database_url)
    data_dir = Path(tempfile.mkdtemp(prefix="lsbench-import-"))
    env = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(32),
        "DATA_DIR": str(data_dir),
        "JOBS_BACKEND": "thread",
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
    }
    run.django_setup(env)
    from projects.models import Project
    from projects.services import project_delete
    from tests.factories import IMAGE_CONFIG

    user, token = run.bench_user()
    headers = {"Authorization": f"Token {token}"}
    projects = [
        Project.objects.create(
            organization=user.active_organization, created_by=user, title=title, label_config=IMAGE_CONFIG
        )
        for title in ("bench-import-warm-up", "bench-import")
    ]
    body = run.import_body(tasks)
    server = run.Server(env, port, workers=1)
    try:
        (worker,) = server.worker_pids()
        warm_up = run.import_body(10)
        status, answer = post(port, f"/api/projects/{projects[0].pk}/import", headers, warm_up)
        assert status == 201, answer[:500]
        figures = timed_import(port, f"/api/projects/{projects[1].pk}/import", headers, body, tasks, [worker])
    finally:
        server.stop()
        for project in projects:
            project_delete(project=project)
    from django.db import connection

    return {"database": connection.vendor, **figures}


def measure_label_studio(tasks: int) -> dict:
    """Label Studio 1.23.2 on PostgreSQL importing the same body (its import answers once the tasks are in)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")  # the body builder imports the models
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(32))
    os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="lsbench-import-"))
    import django

    django.setup()
    import run

    from tests.e2e import labelstudio as lsh
    from tests.factories import IMAGE_CONFIG

    body = run.import_body(tasks)
    ls = lsh.start_label_studio(database=LABEL_STUDIO_DATABASE)
    try:
        admin = ls.client(token=ls.admin.token)
        headers = {"Authorization": f"Token {ls.admin.token}"}
        warm_up = admin.create_project("Warm-up", IMAGE_CONFIG)["id"]
        status, answer = post(ls.port, f"/api/projects/{warm_up}/import", headers, run.import_body(10))
        assert status == 201, answer[:500]
        project = admin.create_project("Bench import", IMAGE_CONFIG)["id"]
        pids = process_tree(ls.process.pid)
        figures = timed_import(ls.port, f"/api/projects/{project}/import", headers, body, tasks, pids)
    finally:
        ls.stop(drop=True)
    return {"database": "postgresql", "server": "Label Studio 1.23.2", **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument(
        "--database-url",
        nargs="+",
        default=None,
        help=f"databases to measure, one after the other (default: {DEFAULT_POSTGRES} and a SQLite file)",
    )
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--label-studio", action="store_true", help="also measure Label Studio 1.23.2 (PostgreSQL)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure this database in this process
    args = parser.parse_args()

    if args.one:
        print(json.dumps(measure_service(args.one, args.tasks, args.port)))
        return

    sqlite = f"sqlite:///{tempfile.mkdtemp(prefix='lsbench-import-sqlite-')}/bench.sqlite3"
    results: dict = {"tasks": args.tasks, "cpus": os.cpu_count(), "service": []}
    for url in args.database_url or [DEFAULT_POSTGRES, sqlite]:
        print(f"service, {url.split(':', 1)[0]}: importing {args.tasks} tasks", flush=True)
        child = subprocess.run(
            [sys.executable, __file__, "--one", url, "--tasks", str(args.tasks), "--port", str(args.port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if child.returncode:
            sys.exit(f"measurement failed:\n{child.stdout}\n{child.stderr}")
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"  {figures}", flush=True)
        results["service"].append(figures)
    if args.label_studio:
        print(f"Label Studio 1.23.2, postgresql: importing {args.tasks} tasks", flush=True)
        results["label_studio"] = measure_label_studio(args.tasks)
        print(f"  {results['label_studio']}", flush=True)
        postgres = [figures for figures in results["service"] if figures["database"] == "postgresql"]
        if postgres:
            ratio = results["label_studio"]["seconds"] / postgres[0]["seconds"]
            results["speedup_postgresql"] = round(ratio, 1)
            print(f"the service imports {ratio:.1f}x faster than Label Studio on PostgreSQL", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
