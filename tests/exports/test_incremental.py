"""Incremental snapshots (`since_export`): only tasks created or changed since the base read them, the ids of tasks
deleted since, and 400s for a base that cannot serve (exports/increments.py)."""

import io
import json
import threading

import orjson
import pytest
from django.db import connection

from exports import jobs, storage
from exports.files import deleted_ids_file_name
from exports.increments import INDEX_RECORD, ChangedTasks, IndexReader, IndexWriter, deleted_ids
from exports.models import Export, Status
from exports.snapshot import SnapshotWriter
from projects.models import Annotation, AnnotationDraft, Prediction, Task
from tests.exports.helpers import create_export, detail_url, download_url, list_url
from tests.factories import fill_project, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(user):
    project = make_project(user=user)
    fill_project(project, user=user, count=8)
    return project


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def tasks_of(api_client, project, export_id: int) -> dict[int, dict]:
    response = api_client.get(download_url(project, export_id))
    assert response.status_code == 200
    return {task["id"]: task for task in json.loads(body_of(response))}


def snapshot(api_client, project, capture, **body) -> dict:
    created = create_export(api_client, project, capture, body)
    answer = api_client.get(detail_url(project, created["id"])).json()
    assert answer["status"] == "completed", Export.objects.get(pk=created["id"]).reason
    return answer


def test_the_index_round_trips_in_chunks_of_any_size():
    out = io.BytesIO()
    index = IndexWriter(out)
    records = [(task_id, task_id.to_bytes(8, "big")) for task_id in (3, 7, 10**12)]
    for task_id, digest in records:
        index.add(task_id, digest)
    index.flush()
    data = out.getvalue()
    assert len(data) == 3 * INDEX_RECORD.size
    chunks = [data[k : k + 5] for k in range(0, len(data), 5)]
    assert list(IndexReader(chunks)) == records
    with pytest.raises(ValueError, match="inside a record"):
        list(IndexReader([data[:-1]]))


def test_changed_tasks_and_deleted_ids_walk_in_id_order():
    base = [(1, b"a" * 8), (2, b"b" * 8), (4, b"d" * 8), (6, b"f" * 8)]
    changes = ChangedTasks(base)
    # 1 unchanged, 2 changed, 3 new, 4 unchanged, 7 new (6 was deleted).
    assert [changes.changed(*item) for item in [(1, b"a" * 8), (2, b"x" * 8), (3, b"c" * 8), (4, b"d" * 8)]] == [
        False,
        True,
        True,
        False,
    ]
    assert changes.changed(7, b"g" * 8)
    assert list(deleted_ids(base, [1, 3, 4, 7])) == [2, 6]
    assert list(deleted_ids(base, [])) == [1, 2, 4, 6]


def test_holds_only_created_and_changed_tasks_and_lists_the_deleted(
    api_client, project, user, django_capture_on_commit_callbacks
):
    base = snapshot(api_client, project, django_capture_on_commit_callbacks)
    assert "since_export" not in base  # a full snapshot shows exactly Label Studio's fields
    ids = sorted(Task.objects.filter(project=project).values_list("pk", flat=True))
    # One change of each kind, each on its own task; ids[0] is left alone.
    Task.objects.filter(pk=ids[1]).update(data={"image": "https://example.com/changed.jpg"})
    Annotation.objects.filter(task_id=ids[2]).delete()
    Annotation.objects.create(task_id=ids[3], project=project, completed_by=user, result=[])
    Prediction.objects.filter(task_id=ids[4]).delete()
    AnnotationDraft.objects.create(task_id=ids[5], user=user, result=[])
    Task.objects.filter(pk=ids[6]).delete()
    new_id = fill_project(project, user=user, count=1)[0]

    increment = snapshot(api_client, project, django_capture_on_commit_callbacks, since_export=base["id"])
    assert increment["since_export"] == base["id"]
    held = tasks_of(api_client, project, increment["id"])
    assert sorted(held) == [ids[1], ids[2], ids[3], ids[4], ids[5], new_id]
    assert held[ids[1]]["data"] == {"image": "https://example.com/changed.jpg"}
    assert held[ids[2]]["annotations"] == []
    assert increment["counters"]["task_number"] == 6
    assert increment["counters"]["deleted_task_ids_count"] == 1
    assert increment["counters"]["annotation_number"] == sum(len(task["annotations"]) for task in held.values())

    deleted = api_client.get(download_url(project, increment["id"]), {"exportType": "DELETED_IDS"})
    assert deleted.status_code == 200
    assert json.loads(body_of(deleted)) == [ids[6]]
    assert deleted["Content-Disposition"].endswith('-deleted-ids.json"')
    listed = api_client.get(list_url(project)).json()
    assert {item["id"]: item.get("since_export") for item in listed} == {base["id"]: None, increment["id"]: base["id"]}


@pytest.mark.parametrize("only_id", [True, False])
def test_a_changed_prediction_counts_where_the_snapshot_shows_it(
    api_client, project, only_id, django_capture_on_commit_callbacks
):
    """A task is changed when what the snapshot holds of it changed: with predictions as ids (the default) an
    edit inside a prediction leaves the task's JSON as it was, with whole predictions it does not."""
    options = {"serialization_options": {"predictions": {"only_id": only_id}}}
    base = snapshot(api_client, project, django_capture_on_commit_callbacks, **options)
    task_id = Task.objects.filter(project=project).order_by("pk").values_list("pk", flat=True).first()
    Prediction.objects.filter(task_id=task_id).update(score=0.125)
    increment = snapshot(api_client, project, django_capture_on_commit_callbacks, since_export=base["id"], **options)
    held = tasks_of(api_client, project, increment["id"])
    assert sorted(held) == ([] if only_id else [task_id])
    if not only_id:
        assert [prediction["score"] for prediction in held[task_id]["predictions"]] == [0.125]


def test_a_chain_of_increments_each_against_the_one_before(
    api_client, project, user, django_capture_on_commit_callbacks
):
    first = snapshot(api_client, project, django_capture_on_commit_callbacks)
    task_id = Task.objects.filter(project=project).order_by("pk").values_list("pk", flat=True).first()
    Task.objects.filter(pk=task_id).update(meta={"round": 2})
    second = snapshot(api_client, project, django_capture_on_commit_callbacks, since_export=first["id"])
    assert sorted(tasks_of(api_client, project, second["id"])) == [task_id]
    # The second read every task, so against it nothing has changed.
    third = snapshot(api_client, project, django_capture_on_commit_callbacks, since_export=second["id"])
    assert tasks_of(api_client, project, third["id"]) == {}
    assert third["counters"]["task_number"] == 0
    assert third["counters"]["deleted_task_ids_count"] == 0
    deleted = api_client.get(download_url(project, third["id"]), {"exportType": "DELETED_IDS"})
    assert json.loads(body_of(deleted)) == []


def test_the_options_still_apply(api_client, project, user, django_capture_on_commit_callbacks):
    base = snapshot(api_client, project, django_capture_on_commit_callbacks)
    ids = sorted(Task.objects.filter(project=project).values_list("pk", flat=True))
    Annotation.objects.filter(task_id=ids[0]).delete()  # now unannotated, and changed
    Task.objects.filter(pk=ids[1]).update(meta={"touched": True})
    increment = snapshot(
        api_client,
        project,
        django_capture_on_commit_callbacks,
        since_export=base["id"],
        task_filter_options={"annotated": "only"},
    )
    assert sorted(tasks_of(api_client, project, increment["id"])) == [ids[1]]
    # Still in the project, only filtered out: not listed as deleted.
    assert increment["counters"]["deleted_task_ids_count"] == 0


def test_a_base_that_cannot_serve_is_a_400(
    api_client, other_client, project, user, other_user, django_capture_on_commit_callbacks
):
    other_project = make_project(user=user, title="Other")
    foreign = snapshot(api_client, other_project, django_capture_on_commit_callbacks)
    pending = Export.objects.create(project=project, created_by=user)
    failed = Export.objects.create(project=project, created_by=user)
    Export.objects.filter(pk=failed.pk).update(status=Status.FAILED)
    outsider_project = make_project(user=other_user, title="Theirs")
    outsider = snapshot(other_client, outsider_project, django_capture_on_commit_callbacks)
    cases = {
        999_999: "is not a snapshot of this project",
        foreign["id"]: "is not a snapshot of this project",
        outsider["id"]: "is not a snapshot of this project",
        pending.pk: "is not completed (status: created)",
        failed.pk: "is not completed (status: failed)",
    }
    for since, reason in cases.items():
        response = api_client.post(list_url(project), {"since_export": since}, format="json")
        assert response.status_code == 400, (since, response.content)
        body = response.json()
        assert reason in json.dumps(body["validation_errors"]["since_export"]), (since, body)
    for bad in (0, "soon", [1]):
        response = api_client.post(list_url(project), {"since_export": bad}, format="json")
        assert response.status_code == 400, (bad, response.content)
    assert Export.objects.filter(project=project).count() == 2  # none was created


def test_a_full_snapshot_has_no_deleted_ids(api_client, project, django_capture_on_commit_callbacks):
    full = snapshot(api_client, project, django_capture_on_commit_callbacks)
    response = api_client.get(download_url(project, full["id"]), {"exportType": "DELETED_IDS"})
    assert response.status_code == 404
    assert "since_export" in response.json()["detail"]


def test_a_base_deleted_before_the_job_runs_fails_the_snapshot_with_a_reason(project, user):
    base = Export.objects.create(project=project, created_by=user)
    jobs.run_export(base.pk)
    increment = Export.objects.create(project=project, created_by=user, since_export=base.pk)
    base.delete()
    jobs.run_export(increment.pk)
    increment.refresh_from_db()
    assert increment.status == Status.FAILED
    assert "since_export" in increment.reason


def test_writes_during_the_base_snapshot_are_not_lost(
    api_client, project, user, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """Tasks change while the base snapshot is being read, some already read and some not yet. Whatever the base
    saw, the increment holds every task whose current state the base does not: base + increment = now."""
    settings.EXPORT_BATCH_SIZE = 2
    ids = sorted(Task.objects.filter(project=project).values_list("pk", flat=True))
    real = SnapshotWriter.encoded_task_batches
    raced = []

    def racing(self):
        for number, batch in enumerate(real(self)):
            yield batch
            if number == 0 and not raced:
                raced.append(True)
                Task.objects.filter(pk=ids[0]).update(data={"image": "https://example.com/read-then-changed.jpg"})
                Task.objects.filter(pk=ids[-1]).update(data={"image": "https://example.com/changed-before-read.jpg"})
                Task.objects.filter(pk=ids[1]).delete()
                Annotation.objects.filter(task_id=ids[5]).delete()

    monkeypatch.setattr(SnapshotWriter, "encoded_task_batches", racing)
    base = snapshot(api_client, project, django_capture_on_commit_callbacks)
    monkeypatch.setattr(SnapshotWriter, "encoded_task_batches", real)
    assert raced
    increment = snapshot(api_client, project, django_capture_on_commit_callbacks, since_export=base["id"])
    now = snapshot(api_client, project, django_capture_on_commit_callbacks)

    merged = tasks_of(api_client, project, base["id"])
    merged.update(tasks_of(api_client, project, increment["id"]))
    deleted = json.loads(body_of(api_client.get(download_url(project, increment["id"]), {"exportType": "DELETED_IDS"})))
    for task_id in deleted:
        merged.pop(task_id, None)
    expected = tasks_of(api_client, project, now["id"])
    option = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
    assert orjson.dumps(merged, option=option) == orjson.dumps(expected, option=option)
    changed = set(tasks_of(api_client, project, increment["id"]))
    assert ids[0] in changed  # read, then changed: the base saw the old state
    assert ids[1] in deleted  # read, then deleted


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_writers_on_other_connections_lose_nothing(user, settings):
    """Writers on their own connections commit changes, new tasks and deletions all through the base snapshot and
    between the two; base + increment - deleted ids still equal the project as it ends."""
    settings.EXPORT_BATCH_SIZE = 5
    project = make_project(user=user)
    fill_project(project, user=user, count=60)
    stop, errors = threading.Event(), []

    def writer(seed: int) -> None:
        rounds = 0
        try:
            while not stop.is_set() or rounds < 3:
                rounds += 1
                ids = list(Task.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
                Task.objects.filter(pk=ids[(seed * 7 + rounds * 13) % len(ids)]).update(
                    data={"image": f"https://example.com/{seed}-{rounds}.jpg"}
                )
                if rounds % 3 == 0:
                    Task.objects.filter(pk=ids[(seed + rounds) % len(ids)]).delete()
                if rounds % 4 == 0:
                    fill_project(project, user=user, count=1)
        except Exception as exc:  # reported by the test below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(2)]
    for thread in threads:
        thread.start()
    base = Export.objects.create(project=project, created_by=user)
    jobs.run_export(base.pk)
    increment = Export.objects.create(project=project, created_by=user, since_export=base.pk)
    stop.set()
    for thread in threads:
        thread.join(30)
    jobs.run_export(increment.pk)  # after the writers stopped: it must see everything they did
    now = Export.objects.create(project=project, created_by=user)
    jobs.run_export(now.pk)
    assert not errors, errors

    def read(export_id: int, suffix: str = "") -> list:
        export = Export.objects.get(pk=export_id)
        assert export.status == Status.COMPLETED, export.reason
        name = export.file if not suffix else deleted_ids_file_name(export.file)
        return json.loads(b"".join(storage.read_chunks(name)))

    merged = {task["id"]: task for task in read(base.pk)}
    merged.update({task["id"]: task for task in read(increment.pk)})
    for task_id in read(increment.pk, "deleted"):
        del merged[task_id]
    expected = {task["id"]: task for task in read(now.pk)}
    assert sorted(merged) == sorted(expected)
    assert merged == expected
