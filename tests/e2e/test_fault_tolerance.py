"""Snapshots on real Celery workers: many at once under read load, and what happens when a worker is killed or
frozen, when PostgreSQL restarts, when the export storage cannot be reached and when a job runs past its time
limit.

The rule each fault must keep: within RECOVERY_SECONDS the snapshot is completed (with a file whose md5 matches)
or failed with a reason; nothing stays in_progress and no file of a failed snapshot is stored or served.
Tests run in file order on one stack (see conftest.py).
"""

import hashlib
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings

from tests.e2e.stack import LEASE_SECONDS, free_port, pg_command, postgres_up, wait_until

pytestmark = pytest.mark.e2e

RECOVERY_SECONDS = 120
TASKS_PER_PROJECT = 2000
LABEL_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image"><Label value="Car"/><Label value="Person"/></RectangleLabels>
</View>"""


def task(index: int) -> dict:
    region = {
        "id": f"r{index}",
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": 640,
        "original_height": 480,
        "value": {"x": index % 90, "y": 5.0, "width": 10.0, "height": 20.0, "rotation": 0, "rectanglelabels": ["Car"]},
    }
    return {
        "data": {"image": f"https://example.com/img/{index}.jpg", "index": index},
        "annotations": [{"result": [region], "lead_time": 3.5}],
        "predictions": [{"model_version": "v1", "score": 0.5, "result": [region]}],
    }


@pytest.fixture(scope="module")
def projects(stack) -> list[int]:
    ids = []
    for title in ("Cars", "Streets"):
        response = stack.api("POST", "/api/projects/", json={"title": title, "label_config": LABEL_CONFIG})
        assert response.status_code == 201, response.text
        project_id = response.json()["id"]
        tasks = [task(i) for i in range(TASKS_PER_PROJECT)]
        response = stack.api("POST", f"/api/projects/{project_id}/import", json=tasks)
        assert response.status_code == 201, response.text
        assert response.json()["task_count"] == TASKS_PER_PROJECT
        ids.append(project_id)
    return ids


def create_snapshot(stack, project_id: int) -> int:
    response = stack.api("POST", f"/api/projects/{project_id}/exports/", json={})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def detail(stack, project_id: int, export_id: int) -> dict:
    response = stack.api("GET", f"/api/projects/{project_id}/exports/{export_id}")
    assert response.status_code == 200, response.text
    return response.json()


def wait_finished(stack, project_id: int, export_id: int, timeout: float = RECOVERY_SECONDS) -> dict:
    return wait_until(
        lambda: (body := detail(stack, project_id, export_id))["status"] in ("completed", "failed") and body,
        timeout=timeout,
        what=f"snapshot {export_id} completed or failed",
    )


def assert_completed_with_its_file(stack, project_id: int, body: dict) -> bytes:
    assert body["status"] == "completed", stack.export_row(body["id"])
    response = stack.api("GET", f"/api/projects/{project_id}/exports/{body['id']}/download")
    assert response.status_code == 200
    assert hashlib.md5(response.content).hexdigest() == body["md5"]
    assert body["counters"]["task_number"] == TASKS_PER_PROJECT
    return response.content


def assert_failed_cleanly(stack, project_id: int, export_id: int) -> str:
    """Failed with a readable reason, no file stored for it, and its download is a JSON 404."""
    row = stack.export_row(export_id)
    assert row["status"] == "failed"
    assert len(row["reason"]) > 20, row
    assert row["file"] == ""
    assert row["lease_owner"] == ""
    assert stack.stored_files(export_id) == []
    response = stack.api("GET", f"/api/projects/{project_id}/exports/{export_id}/download")
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/json")
    return row["reason"]


def running_row(stack, export_id: int) -> dict | None:
    """The row once its job has written part of the snapshot (and reported it), else None."""
    row = stack.export_row(export_id)
    assert row["status"] != "completed", "the snapshot finished before it could be interrupted"
    if row["status"] == "in_progress" and (row["counters"] or {}).get("done", 0) > 0:
        return row
    return None


def start_slow_snapshot(stack, project_id: int) -> tuple[int, dict]:
    """A snapshot that takes about 20 s (0.4 s per batch of 100 tasks), caught while it runs."""
    stack.slow_batches(0.4)
    export_id = create_snapshot(stack, project_id)
    row = wait_until(lambda: running_row(stack, export_id), timeout=60, what="the snapshot running")
    return export_id, row


def worker_running(stack, row: dict):
    """The worker whose pool process holds the lease (its owner is host:pid:run)."""
    pid = int(row["lease_owner"].split(":")[1])
    owners = [worker for worker in stack.workers.values() if worker.owns(pid)]
    assert len(owners) == 1, (row, [w.name for w in stack.workers.values()])
    return owners[0], pid


def nothing_in_progress(stack) -> bool:
    return stack.query("SELECT count(*) FROM exports_export WHERE status = 'in_progress'")[0][0] == 0


def test_ten_concurrent_snapshots_complete_under_read_load(stack, projects):
    stack.slow_batches(0)
    started: list[tuple[int, int]] = []
    read_statuses: list[int] = []
    stop = threading.Event()

    def read_details() -> None:
        while not stop.is_set():
            for project_id, export_id in list(started):
                read_statuses.append(stack.api("GET", f"/api/projects/{project_id}/exports/{export_id}").status_code)
            time.sleep(0.02)

    readers = [threading.Thread(target=read_details) for _ in range(3)]
    for reader in readers:
        reader.start()
    try:
        targets = [project_id for project_id in projects for _ in range(5)]
        with ThreadPoolExecutor(len(targets)) as pool:
            responses = list(pool.map(lambda pid: stack.api("POST", f"/api/projects/{pid}/exports/", json={}), targets))
        assert [r.status_code for r in responses] == [201] * 10
        started.extend(zip(targets, (r.json()["id"] for r in responses), strict=True))
        finished = [wait_finished(stack, project_id, export_id) for project_id, export_id in started]
    finally:
        stop.set()
        for reader in readers:
            reader.join()

    md5s = {project_id: set() for project_id in projects}
    for (project_id, _), body in zip(started, finished, strict=True):
        assert_completed_with_its_file(stack, project_id, body)
        md5s[project_id].add(body["md5"])
    assert all(len(found) == 1 for found in md5s.values()), md5s  # every snapshot of a project has the same bytes
    assert len(read_statuses) > 20
    assert [code for code in read_statuses if code >= 500] == []
    # Both workers took part: each took at most two jobs at a time (prefetch 1, concurrency 2).
    for worker in stack.workers.values():
        assert "Task exports.run_export[" in worker.log_text(), worker.name


def test_killed_worker_its_snapshot_fails_with_a_reason_in_time(stack, projects):
    project_id = projects[0]
    export_id, row = start_slow_snapshot(stack, project_id)
    worker, _ = worker_running(stack, row)

    worker.kill()  # SIGKILL to the worker and its pool processes: no chance to clean up or acknowledge
    killed_at = time.monotonic()
    wait_finished(stack, project_id, export_id)
    elapsed = time.monotonic() - killed_at

    reason = assert_failed_cleanly(stack, project_id, export_id)
    print(f"killed worker: failed {elapsed:.1f} s after the kill: {reason}")
    assert elapsed < RECOVERY_SECONDS
    # Found by its dead process (same host), or by its expired lease where the dead process is not yet reaped.
    assert "stopped before it finished" in reason or "lease" in reason, reason
    assert nothing_in_progress(stack)

    stack.start_worker(worker.name)
    stack.slow_batches(0)
    again = create_snapshot(stack, project_id)
    assert_completed_with_its_file(stack, project_id, wait_finished(stack, project_id, again))


def test_frozen_worker_loses_its_snapshot_to_the_lease_and_keeps_no_file(stack, projects):
    """A worker that stops answering (SIGSTOP; like a host cut off) is found by its expired lease alone."""
    project_id = projects[1]
    export_id, row = start_slow_snapshot(stack, project_id)
    worker, _ = worker_running(stack, row)

    worker.signal_group(signal.SIGSTOP)
    frozen_at = time.monotonic()
    try:
        wait_finished(stack, project_id, export_id)
        elapsed = time.monotonic() - frozen_at
    finally:
        worker.signal_group(signal.SIGCONT)

    reason = assert_failed_cleanly(stack, project_id, export_id)
    print(f"frozen worker: failed {elapsed:.1f} s after the freeze: {reason}")
    assert LEASE_SECONDS - 2 < elapsed < RECOVERY_SECONDS
    assert "lease" in reason
    # Woken up, the job finds its lease gone and throws its work away instead of completing the snapshot.
    wait_until(
        lambda: f"Export {export_id}: lease lost" in worker.log_text(), timeout=60, what="the woken job giving up"
    )
    stack.slow_batches(0)
    time.sleep(1)
    assert_failed_cleanly(stack, project_id, export_id)
    assert nothing_in_progress(stack)


def test_killed_pool_process_its_snapshot_fails_and_the_worker_carries_on(stack, projects):
    """Only the process running the job dies (as under the OOM killer): its message is given back, found claimed."""
    project_id = projects[0]
    export_id, row = start_slow_snapshot(stack, project_id)
    worker, pid = worker_running(stack, row)

    subprocess.run(["kill", "-9", str(pid)], check=True)
    killed_at = time.monotonic()
    wait_finished(stack, project_id, export_id)

    elapsed = time.monotonic() - killed_at
    reason = assert_failed_cleanly(stack, project_id, export_id)
    print(f"killed pool process: failed {elapsed:.1f} s after the kill: {reason}")
    assert elapsed < RECOVERY_SECONDS
    assert "stopped before it finished" in reason
    assert worker.alive()
    wait_until(lambda: "WorkerLostError" in worker.log_text(), timeout=30, what="the worker noticing its lost process")
    stack.slow_batches(0)
    again = create_snapshot(stack, project_id)
    assert_completed_with_its_file(stack, project_id, wait_finished(stack, project_id, again))
    assert nothing_in_progress(stack)


def test_postgres_restart_during_a_snapshot(stack, projects):
    command = pg_command("restart")
    if not command:
        pytest.skip("no pg_ctlcluster here to restart PostgreSQL with (set E2E_PG_RESTART)")
    project_id = projects[1]
    export_id, _ = start_slow_snapshot(stack, project_id)

    restarted = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    restarted_at = time.monotonic()
    assert restarted.returncode == 0, restarted.stderr
    wait_until(postgres_up, timeout=60, what="PostgreSQL back")
    stack.slow_batches(0)
    body = wait_until(
        lambda: stack.export_row(export_id)["status"] in ("completed", "failed") and stack.export_row(export_id),
        timeout=RECOVERY_SECONDS,
        what="the snapshot completed or failed after the restart",
    )

    elapsed = time.monotonic() - restarted_at
    print(f"PostgreSQL restart: {body['status']} {elapsed:.1f} s after the restart: {body['reason']}")
    assert elapsed < RECOVERY_SECONDS
    if body["status"] == "completed":
        assert_completed_with_its_file(stack, project_id, detail(stack, project_id, export_id))
    else:
        assert_failed_cleanly(stack, project_id, export_id)
    assert nothing_in_progress(stack)
    # Web server and workers use the database again without a restart of their own.
    again = create_snapshot(stack, project_id)
    assert_completed_with_its_file(stack, project_id, wait_finished(stack, project_id, again))


def test_unreachable_storage_fails_the_snapshot_with_a_reason(stack, projects):
    if getattr(settings, "EXPORT_STORAGE", None) is None:
        pytest.skip("this build has no S3 export storage")
    closed = free_port()  # nothing listens there
    broken = {
        "AWS_STORAGE_BUCKET_NAME": "e2e-unreachable",
        "AWS_S3_ENDPOINT_URL": f"http://127.0.0.1:{closed}",
        "AWS_S3_REGION_NAME": "us-east-1",
        "AWS_ACCESS_KEY_ID": "e2e",
        "AWS_SECRET_ACCESS_KEY": "e2e-secret",
        "AWS_S3_MAX_ATTEMPTS": "2",
        "AWS_S3_CONNECT_TIMEOUT": "2",
    }
    stack.only_worker("s3-down", env=broken, concurrency=1)
    stack.slow_batches(0)
    project_id = projects[0]
    export_id = create_snapshot(stack, project_id)
    started = time.monotonic()
    wait_finished(stack, project_id, export_id)

    elapsed = time.monotonic() - started
    reason = assert_failed_cleanly(stack, project_id, export_id)
    print(f"unreachable storage: failed {elapsed:.1f} s after the request: {reason}")
    assert elapsed < RECOVERY_SECONDS
    assert str(closed) in reason or "storage" in reason.lower(), reason


def test_a_job_over_the_time_limit_fails_with_a_reason(stack, projects):
    stack.only_worker("time-limited", env={"EXPORT_TIME_LIMIT": "3"}, concurrency=1)
    project_id = projects[1]
    export_id, _ = start_slow_snapshot(stack, project_id)
    started = time.monotonic()
    wait_finished(stack, project_id, export_id)

    elapsed = time.monotonic() - started
    reason = assert_failed_cleanly(stack, project_id, export_id)
    print(f"time limit: failed {elapsed:.1f} s after it started running: {reason}")
    assert elapsed < RECOVERY_SECONDS
    assert "longer than its time limit (3 s)" in reason, reason


def test_nothing_is_left_running_or_half_written(stack, projects):
    stack.only_worker("w1")
    stack.start_worker("w2")
    assert nothing_in_progress(stack)
    failed = [row[0] for row in stack.query("SELECT id FROM exports_export WHERE status = 'failed'")]
    assert failed  # the faults above did fail snapshots
    for export_id in failed:
        assert stack.stored_files(export_id) == []
    # Scratch files of killed jobs are removed by the workers' sweep once nobody wrote to them for 2 leases.
    scratch = stack.data_dir / "tmp"
    wait_until(
        lambda: not list(scratch.glob("export-*.partial")),
        timeout=4 * LEASE_SECONDS,
        what="abandoned scratch files removed",
    )
