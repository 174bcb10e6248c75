"""Export benchmark: one command, figures for the README.

    .venv/bin/python bench/run.py --tasks 20000 100000
    .venv/bin/python bench/run.py --tasks 20000 --label-studio

Both databases by default, one after the other, each in its own child process (Django binds one database per
process): PostgreSQL (`lsbench` on 127.0.0.1, created when missing) and the embedded SQLite file a default install
uses (no DATABASE_URL; DATA_DIR=bench/data/sqlite, git-ignored). `--database-url URL` runs just one (`embedded` names
the SQLite one; a sqlite:/// URL is passed on as DATABASE_URL like any other).

For each size it fills a project (bench/generate.py; kept between runs), starts gunicorn, creates a snapshot
through the API and, as clients do, polls `GET /api/projects/{id}/exports/{export_pk}` every `--poll-interval`
(50 ms) until it is completed; it reports tasks/s, bytes, the polls' latency and the peak RSS of the worker that
wrote the file. Then it measures the import rate through the API, and GET-snapshot latency and requests/s with 8
concurrent clients (wrk when installed: `apt-get install wrk`; Python threads otherwise), and counts the SQL
queries of one GET. The load average is recorded before each measurement.

`--label-studio` then runs the same workload against Label Studio 1.23.2 on the same kind of database
(bench/side_by_side.py: its own venv, `label-studio start`, its tables filled with the same tasks), at the largest
size or `--label-studio-tasks`, and prints the ratios ours/Label Studio.
"""

import argparse
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
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
EMBEDDED = "embedded"  # no DATABASE_URL: the SQLite file under DATA_DIR, as a default install runs
EMBEDDED_DATA_DIR = ROOT / "bench" / "data" / "sqlite"  # git-ignored (`data/`)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL"),
        help=f"run only this database: a postgres:// or sqlite:/// URL, or `{EMBEDDED}` (default: both "
        f"{DEFAULT_DATABASE} and the embedded SQLite file under {EMBEDDED_DATA_DIR.relative_to(ROOT)})",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=0.05,
        help="seconds between a client's GETs of the snapshot while it is written (default 0.05, as clients poll)",
    )
    parser.add_argument(
        "--label-studio",
        action="store_true",
        help="also run the workload against Label Studio 1.23.2 on the same kind of database and print ratios",
    )
    parser.add_argument(
        "--label-studio-tasks",
        type=int,
        help="snapshot size for Label Studio (default: the largest --tasks; its export at 100k takes minutes)",
    )
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
        with socket.socket() as probe:  # another server on the port would answer in our place
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                sys.exit(f"port {port} is taken (another benchmark?): choose another with --port")
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
        if self.process.poll() is not None:
            sys.exit(f"gunicorn exited with {self.process.returncode}")

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
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1800)
    headers = {"Authorization": f"Token {token}"}
    payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if payload is not None:
        headers["Content-Type"] = "application/json"
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data, dict(response.getheaders())


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, recorded before each measurement (the machine is shared)."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def timed_snapshot(port: int, token: str, project_id: int, poll_interval: float, body: dict | None = None) -> dict:
    """POST a snapshot, then GET it every `poll_interval` seconds until it is completed, as clients do.

    Works against this service and Label Studio alike (Label Studio without Redis writes the file inside the POST,
    so its client polls once)."""
    started = time.monotonic()
    status, answer, _ = call(port, "POST", f"/api/projects/{project_id}/exports/", token, body or {})
    assert status == 201, answer[:500]
    posted = time.monotonic() - started
    export = json.loads(answer)
    path = f"/api/projects/{project_id}/exports/{export['id']}"
    polls: list[float] = []
    while True:
        time.sleep(poll_interval)
        before = time.perf_counter()
        status, answer, _ = call(port, "GET", path, token)
        polls.append(time.perf_counter() - before)
        assert status == 200, answer[:500]
        export = json.loads(answer)
        if export["status"] in ("completed", "failed"):
            break
    seconds = time.monotonic() - started
    assert export["status"] == "completed", export
    polls.sort()
    return {
        "tasks": (export.get("counters") or {}).get("task_number"),
        "seconds": round(seconds, 2),
        "post_seconds": round(posted, 3),
        "poll_interval_ms": round(poll_interval * 1000),
        "polls": len(polls),
        "poll_median_ms": round(statistics.median(polls) * 1000, 2),
        "poll_max_ms": round(polls[-1] * 1000, 2),
        "md5": export.get("md5"),
        "export_id": export["id"],
    }


def measure_snapshot(
    env: dict,
    port: int,
    token: str,
    project_id: int,
    tasks: int,
    parts: int = 1,
    body: dict | None = None,
    poll_interval: float = 0.05,
) -> dict:
    if parts > 1:  # every snapshot split, by as many jobs as the in-process pool runs at once
        env = {**env, "EXPORT_PARTS": str(parts), "EXPORT_PARALLEL_MIN_TASKS": "0", "JOBS_THREADS": str(parts)}
    server = Server(env, port, workers=1)
    try:
        call(port, "GET", f"/api/projects/{project_id}/exports/", token)  # warm up: imports, first request
        (worker,) = server.worker_pids()
        before = peak_rss_mb(worker)
        load = load_average()
        figures = timed_snapshot(port, token, project_id, poll_interval, body)
        after = peak_rss_mb(worker)
        _, _, headers = call(port, "HEAD", f"/api/projects/{project_id}/exports/{figures['export_id']}/download", token)
        return {
            "load": load,
            **figures,
            "parts": parts,
            "tasks_per_second": round(tasks / figures["seconds"]),
            "bytes": int(headers["Content-Length"]),
            "peak_rss_mb": round(after, 1),
            "rss_growth_mb": round(after - before, 1),
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


def timed_import(port: int, token: str, project_id: int, raw: bytes, count: int) -> dict:
    """One `POST /api/projects/{id}/import` of `raw` (`count` tasks), timed to its answer."""
    started = time.monotonic()
    status, answer, _ = call(port, "POST", f"/api/projects/{project_id}/import", token, raw=raw)
    elapsed = time.monotonic() - started
    assert status == 201, answer[:500]
    assert json.loads(answer)["task_count"] == count, answer[:500]
    return {"tasks": count, "seconds": round(elapsed, 2), "tasks_per_second": round(count / elapsed)}


def measure_import(env: dict, port: int, token: str, user, count: int) -> dict:
    """Import `count` tasks into a project with the image config, after a 10-task import warms the worker up."""
    from projects.models import Project
    from projects.services import project_delete
    from tests.factories import IMAGE_CONFIG

    projects = [
        Project.objects.create(
            organization=user.active_organization, created_by=user, title=title, label_config=IMAGE_CONFIG
        )
        for title in ("bench-import-warm-up", "bench-import")
    ]
    raw = import_body(count)
    server = Server(env, port, workers=1)
    try:
        status, answer, _ = call(port, "POST", f"/api/projects/{projects[0].pk}/import", token, raw=import_body(10))
        assert status == 201, answer[:500]
        return {"load": load_average(), **timed_import(port, token, projects[1].pk, raw, count)}
    finally:
        server.stop()
        for project in projects:
            project_delete(project=project)


def wrk(port: int, token: str, path: str, clients: int) -> dict:
    """GET `path` from `clients` keep-alive connections for 15 s with wrk (a native client, so the load does not
    eat the server's CPU)."""
    command = ["wrk", "-t2", f"-c{clients}", "-d15s", "--latency", "-H", f"Authorization: Token {token}"]
    output = subprocess.run(
        [*command, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True
    ).stdout

    def milliseconds(text: str) -> float:
        for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
            if text.endswith(unit):
                return round(float(text[: -len(unit)]) * factor, 2)
        return float(text)

    figures = {"client": "wrk", "clients": clients, "errors": 0}
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
        elif line.strip().startswith(("Non-2xx", "Socket errors")):
            figures["errors"] += sum(int(n) for n in re.findall(r"\d+", line.split(":", 1)[1]))
    return figures


def threads_load(port: int, token: str, path: str, clients: int, total: int) -> dict:
    """GET `path` `total` times from `clients` Python threads with keep-alive connections."""
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

    threads = [threading.Thread(target=client, args=(total // clients,)) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
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


def get_load(port: int, token: str, path: str, clients: int, total: int) -> dict:
    """GET-snapshot load against a running server (this service or Label Studio), after 50 warm-up requests."""
    for _ in range(50):
        call(port, "GET", path, token)
    if shutil.which("wrk"):
        return wrk(port, token, path, clients)
    return threads_load(port, token, path, clients, total)


def measure_get(
    env: dict, port: int, token: str, project_id: int, export_id: int, total: int, clients: int, workers: int
) -> dict:
    path = f"/api/projects/{project_id}/exports/{export_id}"
    # one thread per sync worker under wrk; the Python client shares the cores, so two threads each
    server = Server(env, port, workers=workers, threads=1 if shutil.which("wrk") else 2)
    try:
        return {"load": load_average(), "web_workers": workers, **get_load(port, token, path, clients, total)}
    finally:
        server.stop()


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


def code_state() -> dict:
    """The commit measured and the files that differ from it (figures of a dirty tree say so)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.rstrip()

    changed = [line[3:] for line in git("status", "--short", "--untracked-files=no").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD"), "changed": changed}


def run_workload(args: argparse.Namespace, env: dict, vendor: str) -> dict:
    user, token = bench_user()
    results: dict = {
        "database": vendor,
        "database_url": args.database_url,
        "cpus": os.cpu_count(),
        "poll_interval_ms": round(args.poll_interval * 1000),
        "code": code_state(),
        "snapshots": [],
    }
    print(f"{vendor}: snapshots polled every {args.poll_interval * 1000:g} ms", flush=True)
    last = project = None
    for count in args.tasks:
        print(f"snapshot of {count} tasks, load {load_average()}", flush=True)
        project = filled_project(user, count)
        for parts in args.parts:
            if args.part_workers == "processes" and parts > 1:
                figures = {"load": load_average(), **measure_snapshot_processes(env, project.pk, count, parts)}
            else:
                figures = measure_snapshot(
                    env, args.port, token, project.pk, count, parts, poll_interval=args.poll_interval
                )
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
    if not args.snapshots_only:
        print(f"import of {args.import_tasks} tasks, load {load_average()}", flush=True)
        results["import"] = measure_import(env, args.port, token, user, args.import_tasks)
        print(f"  {results['import']}", flush=True)
        if last:
            print(f"GET snapshot, {args.clients} clients, load {load_average()}", flush=True)
            results["get_snapshot"] = measure_get(
                env, args.port, token, *last, args.get_requests, args.clients, args.web_workers
            )
            results["get_snapshot"]["sql_queries"] = count_get_queries(user, *last)
            print(f"  {results['get_snapshot']}", flush=True)
    if args.label_studio:
        import side_by_side

        ls_tasks = args.label_studio_tasks or max(args.tasks)
        print(f"Label Studio {vendor}: snapshot of {ls_tasks} tasks, load {load_average()}", flush=True)
        results["label_studio"] = side_by_side.measure(
            vendor,
            tasks=ls_tasks,
            import_tasks=args.import_tasks,
            poll_interval=args.poll_interval,
            clients=args.clients,
            get_requests=args.get_requests,
            full=not args.snapshots_only,
        )
        results["ours_over_label_studio"] = ratios(results)
    return results


def ratios(results: dict) -> dict:
    """Ours divided by Label Studio's: tasks/s and requests/s (above 1: ours is faster), median latency (below 1:
    ours answers sooner). The snapshot is compared at Label Studio's size when ours was measured at it."""
    theirs = results["label_studio"]
    found: dict = {}
    singles = [figures for figures in results["snapshots"] if figures.get("parts", 1) == 1]
    same = [figures for figures in singles if figures["tasks"] == theirs["snapshot"]["tasks"]]
    if same or singles:
        ours = (same or singles)[-1]
        found["snapshot_tasks_per_second"] = round(ours["tasks_per_second"] / theirs["snapshot"]["tasks_per_second"], 1)
        found["snapshot_sizes"] = [ours["tasks"], theirs["snapshot"]["tasks"]]
    if "import" in results and "import" in theirs:
        found["import_tasks_per_second"] = round(
            results["import"]["tasks_per_second"] / theirs["import"]["tasks_per_second"], 1
        )
    if "get_snapshot" in results and "get_snapshot" in theirs:
        ours, other = results["get_snapshot"], theirs["get_snapshot"]
        found["get_requests_per_second"] = round(ours["requests_per_second"] / other["requests_per_second"], 1)
        found["get_median"] = round(ours["median_ms"] / other["median_ms"], 3)
    return found


def summary(results: dict) -> str:
    """One database's figures as a small table, with Label Studio's beside them when measured."""
    theirs = results.get("label_studio")
    found = results.get("ours_over_label_studio", {})
    rows = [
        (
            f"{results['database']} ({results['database_url']})",
            "ours",
            f"Label Studio {side_by_side_version()}" if theirs else "",
            "ours/LS" if theirs else "",
        )
    ]

    def snapshot(figures: dict) -> str:
        return (
            f"{figures['tasks']:,} in {figures['seconds']} s = {figures['tasks_per_second']:,}/s "
            f"(load {figures['load'].split()[0]})"
        )

    def rate(figures: dict) -> str:
        return (
            f"{figures['tasks']:,} in {figures['seconds']} s = {figures['tasks_per_second']:,}/s "
            f"(load {figures['load'].split()[0]})"
        )

    def get(figures: dict) -> str:
        return (
            f"{figures['requests_per_second']:,} req/s, median {figures['median_ms']} ms "
            f"(load {figures['load'].split()[0]})"
        )

    poll = f"snapshot, polled every {results['poll_interval_ms']} ms"
    singles = [figures for figures in results["snapshots"] if figures.get("parts", 1) == 1]
    for index, figures in enumerate(singles):
        last = index == len(singles) - 1
        rows.append(
            (
                poll,
                snapshot(figures),
                snapshot(theirs["snapshot"]) if theirs and last else "",
                f"{found['snapshot_tasks_per_second']}x tasks/s" if theirs and last else "",
            )
        )
    if "import" in results:
        rows.append(
            (
                "import, one request",
                rate(results["import"]),
                rate(theirs["import"]) if theirs and "import" in theirs else "",
                f"{found['import_tasks_per_second']}x tasks/s" if "import_tasks_per_second" in found else "",
            )
        )
    if "get_snapshot" in results:
        clients = results["get_snapshot"]["clients"]
        rows.append(
            (
                f"GET snapshot, {clients} clients",
                get(results["get_snapshot"]),
                get(theirs["get_snapshot"]) if theirs and "get_snapshot" in theirs else "",
                f"{found['get_requests_per_second']}x req/s, {found['get_median']}x median"
                if "get_median" in found
                else "",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = ("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


def side_by_side_version() -> str:
    from tests.e2e.labelstudio import LS_VERSION

    return LS_VERSION


def measure_database(args: argparse.Namespace) -> dict:
    """Every measurement on one database, in this process."""
    env = {
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(32),
        "JOBS_BACKEND": "thread",
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
    }
    if args.database_url == EMBEDDED:
        # a default install: no DATABASE_URL, the SQLite file (WAL) in DATA_DIR, kept between runs
        os.environ.pop("DATABASE_URL", None)
        data_dir, scratch = EMBEDDED_DATA_DIR, EMBEDDED_DATA_DIR / "exports"
        data_dir.mkdir(parents=True, exist_ok=True)
    else:
        ensure_database(args.database_url)
        data_dir = scratch = Path(tempfile.mkdtemp(prefix="lsbench-"))
        env["DATABASE_URL"] = args.database_url
    env["DATA_DIR"] = str(data_dir)
    django_setup(env)
    from django.db import connection

    try:
        return run_workload(args, env, connection.vendor)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # the export files; the filled database stays


def main() -> None:
    args = parse_args()
    if args.database_url:
        results = measure_database(args)
        print(json.dumps(results, indent=2))
        print(summary(results))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        return
    combined = []
    with tempfile.TemporaryDirectory(prefix="lsbench-run-") as tmp:
        for index, url in enumerate((DEFAULT_DATABASE, EMBEDDED)):
            out = Path(tmp) / f"{index}.json"
            command = [sys.executable, __file__, *sys.argv[1:], "--database-url", url, "--json", str(out)]
            if subprocess.run(command, cwd=ROOT).returncode:
                print(f"measurements on {url} failed, see above", flush=True)
                continue
            combined.append(json.loads(out.read_text()))
    print("\n" + "\n\n".join(summary(results) for results in combined))
    if args.json:
        args.json.write_text(json.dumps(combined, indent=2))


if __name__ == "__main__":
    main()
