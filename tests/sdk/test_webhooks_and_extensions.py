"""The official SDK, unchanged, on what the service adds to Label Studio's contract: webhooks told of finished
snapshots (Label Studio's webhook resource), JSON Lines, and incremental snapshots (`since_export`, sent as an
extra body field the SDK passes through)."""

import json

import pytest
from label_studio_sdk.core.api_error import ApiError

from projects.models import Task
from tests.exports.webhook_receiver import Receiver
from tests.sdk.helpers import annotation, create_project, download, import_tasks, task, wait_completed, wait_converted


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_HOSTS = ["127.0.0.1"]
    settings.WEBHOOK_TIMEOUT = 5
    server = Receiver()
    yield server
    server.close()


def test_webhooks_through_the_sdk(ls, receiver):
    project = create_project(ls, "Hooked")
    import_tasks(ls, project.id, [task(0), task(1)])
    hook = ls.webhooks.create(
        url=receiver.url, project=project.id, send_for_all_actions=False, actions=["EXPORT_COMPLETED"]
    )
    assert hook.url == receiver.url
    assert hook.project == project.id
    assert list(hook.actions) == ["EXPORT_COMPLETED"]
    assert [item.id for item in ls.webhooks.list(project=str(project.id))] == [hook.id]

    export = wait_completed(ls, project.id, ls.projects.exports.create(id=project.id).id)
    assert len(receiver.requests) == 1
    sent = receiver.requests[0].json()
    assert sent["action"] == "EXPORT_COMPLETED"
    assert (sent["project"]["id"], sent["export"]["id"], sent["export"]["md5"]) == (project.id, export.id, export.md5)
    assert ls.webhooks.get(id=hook.id).model_extra["last_delivery_status"] == 200

    updated = ls.webhooks.update(id=hook.id, url=receiver.url, is_active=False)
    assert updated.is_active is False
    wait_completed(ls, project.id, ls.projects.exports.create(id=project.id).id)
    assert len(receiver.requests) == 1  # switched off: not told again

    ls.webhooks.delete(id=hook.id)
    assert ls.webhooks.list(project=str(project.id)) == []
    with pytest.raises(ApiError) as caught:
        ls.webhooks.get(id=hook.id)
    assert caught.value.status_code == 404


def test_jsonl_and_an_incremental_snapshot_through_the_sdk(ls):
    project = create_project(ls, "Lines")
    task_ids = import_tasks(ls, project.id, [task(0), task(1, annotations=[annotation(cancelled=True)])]).model_extra[
        "task_ids"
    ]
    base = wait_completed(ls, project.id, ls.projects.exports.create(id=project.id).id)

    ls.projects.exports.convert(id=project.id, export_pk=base.id, export_type="JSONL")
    wait_converted(ls, project.id, base.id, "JSONL")
    lines = download(ls, project.id, base.id, export_type="JSONL").splitlines()
    assert [json.loads(line) for line in lines] == json.loads(download(ls, project.id, base.id))

    Task.objects.filter(pk=task_ids[0]).delete()  # the contract has no task deletion; the database has
    import_tasks(ls, project.id, [task(2)])
    created = ls.projects.exports.create(
        id=project.id, request_options={"additional_body_parameters": {"since_export": base.id}}
    )
    increment = wait_completed(ls, project.id, created.id)
    assert increment.model_extra["since_export"] == base.id
    assert increment.counters["task_number"] == 1
    assert [item["data"] for item in json.loads(download(ls, project.id, increment.id))] == [task(2)["data"]]
    assert json.loads(download(ls, project.id, increment.id, export_type="DELETED_IDS")) == [task_ids[0]]
