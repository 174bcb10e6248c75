"""Jobs on Celery: sent to the broker only after commit, run by a real worker (in a thread of this process, against
the Redis on 127.0.0.1:6379; skipped when it is not reachable), retried on database errors, swept by every worker."""

import base64
import hashlib
import json
import logging
import os
import socket
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import OperationalError, transaction
from django.urls import reverse
from django.utils import timezone
from kombu import pools
from kombu.exceptions import OperationalError as KombuOperationalError

from config.celery import app
from exports import jobs, queue, recovery, tasks
from exports.models import Export, JobQuerySet, Status
from exports.recovery import jobs_recover
from exports.services import export_create
from tests.exports.helpers import detail_url, download_url, list_url
from tests.factories import fill_project, make_project

BROKER_URL = os.environ.get("TEST_CELERY_BROKER_URL", "redis://127.0.0.1:6379/14")
QUEUE = "celery"  # Celery's default queue: the Redis list the messages wait in

pytestmark = pytest.mark.django_db(transaction=True)


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 6379), timeout=1):
            return True
    except OSError:
        return False


def use_broker(url: str) -> None:
    """Point the project's Celery app at `url`, dropping connections made to the previous one."""
    app.conf.broker_url = url
    pools.reset()  # kombu's process-wide pools of connections and producers, keyed by broker
    app._after_fork()  # forgets the app's own handles on those pools


@pytest.fixture
def redis():
    if not reachable(BROKER_URL):
        pytest.skip(f"Redis is not reachable at {BROKER_URL}")
    import redis as redis_client

    client = redis_client.Redis.from_url(BROKER_URL)
    client.flushdb()
    previous = app.conf.broker_url
    use_broker(BROKER_URL)
    yield client
    use_broker(previous)
    client.flushdb()
    client.close()


@pytest.fixture
def celery_backend(settings, redis, monkeypatch):
    settings.JOBS_BACKEND = "celery"
    monkeypatch.setattr(recovery, "_started", True)  # no web sweeper thread from this test's requests
    return redis


@pytest.fixture
def worker(celery_backend):
    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30) as running:
        yield running


@pytest.fixture
def project(user):
    project = make_project(user=user)
    fill_project(project, user=user, count=7)
    return project


def queued(redis) -> list[tuple[str, list]]:
    """The task name and arguments of every message waiting in the queue, oldest first."""
    messages = [json.loads(raw) for raw in reversed(redis.lrange(QUEUE, 0, -1))]
    return [(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[0]) for m in messages]


def wait_for(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not true within {timeout} s")


def finished(export_id: int):
    export = Export.objects.get(pk=export_id)
    return export if export.status in (Status.COMPLETED, Status.FAILED) else None


def test_every_job_has_a_late_acked_task_with_bounded_retries(settings):
    for name in ("run_export", "run_conversion"):
        task = tasks.task_for(getattr(jobs, name))
        assert task.name == f"exports.{name}"
        assert task.acks_late is True
        assert task.reject_on_worker_lost is True
        assert task.ignore_result is True
        assert task.max_retries == 3
        assert OperationalError in task.autoretry_for

    def no_such_job(pk):
        return pk

    with pytest.raises(LookupError, match="no_such_job_task"):
        tasks.task_for(no_such_job)
    conf = app.conf
    assert conf.worker_prefetch_multiplier == 1
    assert (conf.task_serializer, conf.accept_content) == ("json", ["json"])
    assert conf.task_soft_time_limit == settings.EXPORT_TIME_LIMIT < conf.task_time_limit
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit


def test_a_snapshot_is_sent_only_after_commit_and_a_worker_completes_it(celery_backend, project, user, settings):
    redis = celery_backend
    with transaction.atomic():
        export = export_create(project=project, created_by=user)
        assert redis.llen(QUEUE) == 0
    assert queued(redis) == [("exports.run_export", [export.pk])]
    headers = json.loads(redis.lindex(QUEUE, 0))["headers"]
    assert headers["timelimit"] == [None, None]  # the worker's own EXPORT_TIME_LIMIT applies
    assert Export.objects.get(pk=export.pk).status == Status.CREATED

    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
        done = wait_for(lambda: finished(export.pk))

    assert done.status == Status.COMPLETED, done.reason
    assert done.counters["task_number"] == 7
    content = (Path(settings.DATA_DIR) / "exports" / done.file).read_bytes()
    assert hashlib.md5(content).hexdigest() == done.md5
    assert redis.llen(QUEUE) == 0


def test_a_rolled_back_snapshot_is_never_sent(celery_backend, project, user):
    def failing_request():
        with transaction.atomic():
            export_create(project=project, created_by=user)
            raise RuntimeError("the request failed after creating the snapshot")

    with pytest.raises(RuntimeError):
        failing_request()
    assert Export.objects.count() == 0
    assert celery_backend.llen(QUEUE) == 0


def test_snapshot_and_conversion_through_the_api_run_on_the_worker(worker, api_client, project):
    response = api_client.post(list_url(project), {}, format="json")
    assert response.status_code == 201, response.content
    export_id = response.json()["id"]
    done = wait_for(lambda: finished(export_id))
    assert done.status == Status.COMPLETED, done.reason
    body = b"".join(api_client.get(download_url(project, export_id)).streaming_content)
    assert hashlib.md5(body).hexdigest() == done.md5

    convert = reverse("project-exports-convert", kwargs={"pk": project.pk, "export_pk": export_id})
    response = api_client.post(convert, {"export_type": "JSON_MIN"}, format="json")
    assert response.status_code == 200, response.content

    def converted():
        formats = api_client.get(detail_url(project, export_id)).json()["converted_formats"]
        return formats if formats and formats[0]["status"] in ("completed", "failed") else None

    formats = wait_for(converted)
    assert formats[0]["status"] == "completed", formats
    response = api_client.get(download_url(project, export_id), {"exportType": "JSON_MIN"})
    assert response.status_code == 200
    rows = json.loads(b"".join(response.streaming_content))
    assert len(rows) == 7


def test_a_split_snapshot_runs_its_parts_as_tasks(worker, project, user, settings):
    """The parts of a split snapshot (a dict argument each) travel through the broker as JSON and are joined."""
    settings.EXPORT_PARTS = 3
    settings.EXPORT_PARALLEL_MIN_TASKS = 2
    export = export_create(project=project, created_by=user)
    done = wait_for(lambda: finished(export.pk))
    assert done.status == Status.COMPLETED, done.reason

    settings.EXPORT_PARTS = 1
    whole = export_create(project=project, created_by=user)
    single = wait_for(lambda: finished(whole.pk))
    assert single.md5 == done.md5
    assert done.counters["task_number"] == 7


def test_a_database_error_at_the_claim_is_retried(worker, project, user, monkeypatch):
    claims = []
    real_transition = JobQuerySet.transition

    def flaky_transition(self, pk, to, **kwargs):
        if to == Status.IN_PROGRESS:
            claims.append(time.monotonic())
            if len(claims) == 1:
                raise OperationalError("the database system is starting up")
        return real_transition(self, pk, to, **kwargs)

    monkeypatch.setattr(JobQuerySet, "transition", flaky_transition)
    export = export_create(project=project, created_by=user)

    done = wait_for(lambda: finished(export.pk))

    assert done.status == Status.COMPLETED, done.reason
    assert len(claims) == 2
    assert claims[1] - claims[0] >= 1.5  # sent again after a 2 s back-off, not at once


def test_an_unreachable_broker_leaves_the_snapshot_for_the_sweep(celery_backend, api_client, project, caplog):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    use_broker(f"redis://127.0.0.1:{port}/0")

    with caplog.at_level(logging.ERROR, logger="exports.queue"):
        response = api_client.post(list_url(project), {}, format="json")

    assert response.status_code == 201, response.content
    export_id = response.json()["id"]
    assert Export.objects.get(pk=export_id).status == Status.CREATED
    assert "sweep will requeue it" in caplog.text
    with pytest.raises(KombuOperationalError):  # a direct submit (sweep, split snapshot) is told
        queue.submit(jobs.run_export, export_id)

    use_broker(BROKER_URL)
    assert jobs_recover(requeue_older_than=0)["requeued"] == 1
    assert queued(celery_backend) == [("exports.run_export", [export_id])]


def test_each_worker_sweeps_dead_and_forgotten_jobs(celery_backend, project, user, settings):
    settings.JOBS_SWEEP_SECONDS = 0.2
    settings.JOBS_REQUEUE_SECONDS = 60
    dead = Export.objects.create(
        project=project,
        created_by=user,
        status=Status.IN_PROGRESS,
        lease_owner="another-host:123:abc",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    forgotten = Export.objects.create(project=project, created_by=user)
    Export.objects.filter(pk=forgotten.pk).update(created_at=timezone.now() - timedelta(seconds=120))
    waiting = Export.objects.create(project=project, created_by=user)

    tasks._start_sweeper()  # what the worker_ready signal does
    try:
        swept = wait_for(lambda: Export.objects.filter(pk=dead.pk, status=Status.FAILED).first(), timeout=10)
        wait_for(lambda: celery_backend.llen(QUEUE) > 0, timeout=10)
    finally:
        tasks._stop_sweeper()

    assert "lease" in swept.reason
    assert swept.lease_owner == ""
    sent = {args[0] for name, args in queued(celery_backend) if name == "exports.run_export"}
    assert forgotten.pk in sent
    assert waiting.pk not in sent  # waiting less than JOBS_REQUEUE_SECONDS: still in the queue, not resent


def test_the_web_process_fails_dead_jobs_but_leaves_requeueing_to_workers(celery_backend, project, user, monkeypatch):
    interval = 0.2
    monkeypatch.setattr(recovery, "SWEEP_SECONDS", interval)
    monkeypatch.setattr(recovery, "_started", False)
    monkeypatch.setattr(recovery, "_web_sweeper", None)
    dead = Export.objects.create(
        project=project,
        created_by=user,
        status=Status.IN_PROGRESS,
        lease_owner="another-host:123:abc",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    forgotten = Export.objects.create(project=project, created_by=user)
    Export.objects.filter(pk=forgotten.pk).update(created_at=timezone.now() - timedelta(days=1))

    recovery.start_embedded_runner()  # what a web process's first request does
    try:
        swept = wait_for(lambda: Export.objects.filter(pk=dead.pk, status=Status.FAILED).first(), timeout=10)
        time.sleep(5 * interval)  # several more sweeps, none of which may requeue
    finally:
        recovery._web_sweeper.set()

    assert "lease" in swept.reason
    assert celery_backend.llen(QUEUE) == 0
    assert Export.objects.get(pk=forgotten.pk).status == Status.CREATED


def test_without_a_broker_jobs_do_not_touch_celery(settings, project, user, monkeypatch):
    """The default backends never send to Celery."""

    def no_celery(job, *args):
        raise AssertionError("Celery was used")

    monkeypatch.setattr(queue, "send_to_celery", no_celery)
    settings.JOBS_BACKEND = "sync"
    export = export_create(project=project, created_by=user)
    assert Export.objects.get(pk=export.pk).status == Status.COMPLETED
