"""Export benchmark: one command, figures for the README.

    .venv/bin/python bench/run.py --tasks 10000 100000 1000000

For each size it fills a project (bench/generate.py; kept between runs), starts gunicorn, creates a snapshot
through the API, polls it to completion and reports tasks/s, bytes and the peak RSS of the worker that
wrote the file. Then it measures the import rate through the API, and GET-snapshot latency and
requests/s with 8 concurrent clients (wrk when installed: `apt-get install wrk`; Python threads otherwise),
and counts the SQL queries of one GET. PostgreSQL by default
(`--database-url`); the database is created when missing.
"""

import argparse
import http.client
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/lsbench"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE))
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--import-tasks", type=int, default=20_000, help="tasks per import request")
    parser.add_argument("--get-requests", type=int, default=4000, help="GET snapshot requests in the load test")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn workers for the GET load test")
    parser.add_argument(
        "--parts",
        type=int,
        nargs="+",
        default=[1],
        help="snapshot each size written as N parallel parts (EXPORT_PARTS), once per value: e.g. --parts 1 2",
    )
    parser.add_argument(
        "--part-workers",
        choices=["threads", "processes"],
        default="threads",
        help="where the parts run: the web process's job pool (threads), or one warm worker process per part "
        "(processes: what Celery workers do)",
    )
    parser.add_argument("--snapshots-only", action="store_true", help="skip the import and GET measurements")
    parser.add_argument(
        "--incremental",
        type=int,
        nargs="+",
        default=[],
        metavar="CHANGED",
        help="after the last snapshot, change CHANGED tasks and time a snapshot `since_export` it, once per value "
        "(the changes are undone afterwards, so later runs read the same data)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args()


def ensure_database(url: str) -> None:
    parsed = urlparse(url)
    if parsed.scheme not in ("postgres", "postgresql"):
        return
    import psycopg

    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def django_setup(env: dict) -> None:
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def bench_user():
    from rest_framework.authtoken.models import Token

    from users.services import user_create_or_update

    user, token = user_create_or_update(email="bench@example.com", password="bench-password", organization="Bench")
    assert isinstance(token, Token)
    return user, token.key


def filled_project(user, count: int):
    """The benchmark project of `count` tasks, filled once and reused by later runs."""
    import generate
    from django.db import connection

    from projects.models import Project
    from tests.factories import IMAGE_CONFIG

    project, _ = Project.objects.get_or_create(
        organization=user.active_organization,
        title=f"bench-{count}",
        defaults={"created_by": user, "label_config": IMAGE_CONFIG},
    )
    missing = count - project.tasks.count()
    if missing > 0:
        started = time.monotonic()
        generate.fill(project, missing, user_id=user.pk)
        print(f"  filled {missing} tasks in {time.monotonic() - started:.1f}s", flush=True)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
    return project


class Server:
    """gunicorn serving the project on 127.0.0.1, stopped on exit."""

    def __init__(self, env: dict, port: int, workers: int, threads: int = 4):
        self.port = port
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                *(["--worker-class", "gthread", "--threads", str(threads)] if threads > 1 else []),
                "--timeout",
                "600",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env={**os.environ, **env},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/api/nope")
                break
            except OSError:
                time.sleep(0.2)

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def call(port: int, method: str, path: str, token: str, body=None, raw: bytes | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    headers = {"Authorization": f"Token {token}"}
    payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if payload is not None:
        headers["Content-Type"] = "application/json"
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data, dict(response.getheaders())


def measure_snapshot(
    env: dict, port: int, token: str, project_id: int, tasks: int, parts: int = 1, body: dict | None = None
) -> dict:
    if parts > 1:  # every snapshot split, by as many jobs as the in-process pool runs at once
        env = {**env, "EXPORT_PARTS": str(parts), "EXPORT_PARALLEL_MIN_TASKS": "0", "JOBS_THREADS": str(parts)}
    server = Server(env, port, workers=1)
    try:
        call(port, "GET", f"/api/projects/{project_id}/exports/", token)  # warm up: imports, first request
        (worker,) = server.worker_pids()
        before = peak_rss_mb(worker)
        started = time.monotonic()
        status, answer, _ = call(port, "POST", f"/api/projects/{project_id}/exports/", token, body or {})
        assert status == 201, answer
        export = json.loads(answer)
        while export["status"] not in ("completed", "failed"):
            time.sleep(0.2)
            export = json.loads(call(port, "GET", f"/api/projects/{project_id}/exports/{export['id']}", token)[1])
        wall = time.monotonic() - started
        assert export["status"] == "completed", export
        after = peak_rss_mb(worker)
        _, _, headers = call(port, "HEAD", f"/api/projects/{project_id}/exports/{export['id']}/download", token)
        return {
            "tasks": export["counters"]["task_number"],
            "parts": parts,
            "md5": export["md5"],
            "seconds": round(wall, 2),
            "tasks_per_second": round(tasks / wall),
            "bytes": int(headers["Content-Length"]),
            "peak_rss_mb": round(after, 1),
            "rss_growth_mb": round(after - before, 1),
            "export_id": export["id"],
        }
    finally:
        server.stop()


def measure_incremental(env: dict, port: int, token: str, project, tasks: int, base_id: int, changed: int) -> dict:
    """Change `changed` tasks spread over the project (their `meta`), time a snapshot `since_export` the base, then
    put the tasks back as they were (a queryset update leaves `updated_at` alone, so the bytes come back too)."""
    from projects.models import Task

    ids = list(project.tasks.order_by("pk").values_list("pk", flat=True))
    chosen = ids[:: max(1, len(ids) // changed)][:changed] if changed else []
    before = dict(Task.objects.filter(pk__in=chosen).values_list("pk", "meta"))
    Task.objects.filter(pk__in=chosen).update(meta={"bench_changed": True})
    try:
        figures = measure_snapshot(env, port, token, project.pk, tasks, body={"since_export": base_id})
    finally:
        for pk, meta in before.items():
            Task.objects.filter(pk=pk).update(meta=meta)
    assert figures["tasks"] == len(chosen), figures
    return {"changed": len(chosen), **figures}


PART_WORKER = """
import json, os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()
from exports.parallel import run_export_part
print("ready", flush=True)
export_id, part = json.loads(sys.stdin.readline())
run_export_part(export_id, part)
"""


def measure_snapshot_processes(env: dict, project_id: int, tasks: int, parts: int) -> dict:
    """A split snapshot whose parts run in separate, already started worker processes (as Celery workers would).

    This process claims and plans the snapshot (`run_export` with the parts held back), then hands one part
    to each worker; the wall time runs from the claim to the completed row.
    """
    from django.conf import settings

    from exports import jobs, parallel
    from exports.models import Export

    workers = [
        subprocess.Popen(
            [sys.executable, "-c", PART_WORKER],
            cwd=ROOT,
            env={**os.environ, **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(parts)
    ]
    for worker in workers:
        assert worker.stdout.readline().strip() == "ready"
    held: list[tuple] = []
    submit = parallel.queue.submit
    settings.EXPORT_PARTS, settings.EXPORT_PARALLEL_MIN_TASKS = parts, 0
    parallel.queue.submit = lambda job, *args: held.append(args)
    try:
        export = Export.objects.create(project_id=project_id, title="bench")
        started = time.monotonic()
        jobs.run_export(export.pk)
        assert len(held) == parts, held
        for worker, args in zip(workers, held, strict=True):
            worker.stdin.write(json.dumps(args) + "\n")
            worker.stdin.flush()
        while export.status not in ("completed", "failed"):
            time.sleep(0.2)
            export.refresh_from_db()
        wall = time.monotonic() - started
        for worker in workers:
            worker.wait(timeout=600)
    finally:
        parallel.queue.submit = submit
        settings.EXPORT_PARTS = 1
    assert export.status == "completed", export.reason
    return {
        "tasks": export.counters["task_number"],
        "parts": parts,
        "part_workers": "processes",
        "md5": export.md5,
        "seconds": round(wall, 2),
        "tasks_per_second": round(tasks / wall),
        "export_id": export.pk,
    }


def import_body(count: int) -> bytes:
    """The JSON body of the import benchmarks: `count` tasks, each with one annotation (three rectangles and a
    choice) and one prediction, as the filled projects hold."""
    import generate

    payload = [
        {
            "data": {"image": f"https://example.com/img/{i}.jpg"},
            "annotations": [{"result": generate.annotation_result(i), "lead_time": 12.5}],
            "predictions": [{"result": generate.prediction_result(i), "score": 0.87, "model_version": "bench-v1"}],
        }
        for i in range(count)
    ]
    return json.dumps(payload).encode()


def measure_import(env: dict, port: int, token: str, user, count: int) -> dict:
    from projects.models import Project

    project = Project.objects.create(organization=user.active_organization, created_by=user, title="bench-import")
    raw = import_body(count)
    server = Server(env, port, workers=1)
    try:
        started = time.monotonic()
        status, body, _ = call(port, "POST", f"/api/projects/{project.pk}/import", token, raw=raw)
        elapsed = time.monotonic() - started
        assert status == 201, body[:500]
        return {"tasks": count, "seconds": round(elapsed, 2), "tasks_per_second": round(count / elapsed)}
    finally:
        server.stop()
        project.delete()


def measure_get_wrk(env: dict, port: int, token: str, path: str, clients: int, workers: int) -> dict:
    """The load from wrk (a native client), so the client does not eat the server's CPU."""
    server = Server(env, port, workers=workers, threads=1)
    try:
        for _ in range(50):
            call(port, "GET", path, token)
        command = ["wrk", "-t2", f"-c{clients}", "-d15s", "--latency", "-H", f"Authorization: Token {token}"]
        output = subprocess.run(
            [*command, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True
        ).stdout
    finally:
        server.stop()

    def milliseconds(text: str) -> float:
        for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
            if text.endswith(unit):
                return round(float(text[: -len(unit)]) * factor, 2)
        return float(text)

    figures = {"client": "wrk", "clients": clients, "web_workers": workers, "errors": 0}
    for line in output.splitlines():
        parts = line.split()
        if parts[:1] == ["50%"]:
            figures["median_ms"] = milliseconds(parts[1])
        elif parts[:1] == ["99%"]:
            figures["p99_ms"] = milliseconds(parts[1])
        elif line.startswith("Requests/sec:"):
            figures["requests_per_second"] = round(float(parts[1]))
        elif "requests in" in line:
            figures["requests"] = int(parts[0])
        elif line.strip().startswith("Non-2xx"):
            figures["errors"] = int(parts[-1])
    return figures


def measure_get(
    env: dict, port: int, token: str, project_id: int, export_id: int, total: int, clients: int, workers: int
) -> dict:
    path = f"/api/projects/{project_id}/exports/{export_id}"
    if shutil.which("wrk"):
        return measure_get_wrk(env, port, token, path, clients, workers)
    server = Server(env, port, workers=workers, threads=2)
    latencies: list[float] = []
    lock = threading.Lock()
    errors = []

    def client(count: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        for _ in range(count):
            started = time.perf_counter()
            try:
                connection.request("GET", path, headers={"Authorization": f"Token {token}"})
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    errors.append(response.status)
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            except (http.client.HTTPException, OSError) as exc:
                errors.append(repr(exc))
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    try:
        for _ in range(50):
            call(port, "GET", path, token)
        threads = [threading.Thread(target=client, args=(total // clients,)) for _ in range(clients)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
    finally:
        server.stop()
    latencies.sort()
    return {
        "client": "python threads",
        "requests": len(latencies),
        "clients": clients,
        "errors": len(errors),
        "requests_per_second": round(len(latencies) / elapsed),
        "median_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
    }


def count_get_queries(user, project_id: int, export_id: int) -> int:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from rest_framework.authtoken.models import Token

    client = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.get(user=user).key}")
    client.get(f"/api/projects/{project_id}/exports/{export_id}")  # the process's first request also recovers jobs
    with CaptureQueriesContext(connection) as captured:
        response = client.get(f"/api/projects/{project_id}/exports/{export_id}")
    assert response.status_code == 200
    return len(captured)


def main() -> None:
    args = parse_args()
    ensure_database(args.database_url)
    data_dir = Path(tempfile.mkdtemp(prefix="lsbench-"))
    env = {
        "DATABASE_URL": args.database_url,
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(32),
        "DATA_DIR": str(data_dir),
        "JOBS_BACKEND": "thread",
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
    }
    django_setup(env)
    user, token = bench_user()
    results: dict = {"database": urlparse(args.database_url).scheme, "snapshots": [], "cpus": os.cpu_count()}
    last = None
    for count in args.tasks:
        print(f"snapshot of {count} tasks", flush=True)
        project = filled_project(user, count)
        for parts in args.parts:
            if args.part_workers == "processes" and parts > 1:
                figures = measure_snapshot_processes(env, project.pk, count, parts)
            else:
                figures = measure_snapshot(env, args.port, token, project.pk, count, parts)
            print(f"  {figures}", flush=True)
            results["snapshots"].append(figures)
            last = (project.pk, figures["export_id"])
    if args.incremental and last:
        results["incremental"] = []
        for changed in args.incremental:
            print(f"incremental snapshot, {changed} of {count} tasks changed", flush=True)
            figures = measure_incremental(env, args.port, token, project, count, last[1], changed)
            print(f"  {figures}", flush=True)
            results["incremental"].append(figures)
    if args.snapshots_only:
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        print(json.dumps(results, indent=2))
        return
    print(f"import of {args.import_tasks} tasks", flush=True)
    results["import"] = measure_import(env, args.port, token, user, args.import_tasks)
    print(f"  {results['import']}", flush=True)
    if last:
        print(f"GET snapshot, {args.clients} clients", flush=True)
        results["get_snapshot"] = measure_get(
            env, args.port, token, *last, args.get_requests, args.clients, args.web_workers
        )
        results["get_snapshot"]["sql_queries"] = count_get_queries(user, *last)
        print(f"  {results['get_snapshot']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
