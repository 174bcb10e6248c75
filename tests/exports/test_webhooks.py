"""Webhook deliveries against a real HTTP receiver on 127.0.0.1: sent after the snapshot's or conversion's status
change commits, signed, retried with backoff, refused for unlisted private targets, recorded on the webhook, and
never a reason for an export to fail."""

import hashlib
import hmac
import threading

import pytest
from django.urls import reverse

from exports import converting, queue, webhooks
from exports.converters.registry import ConversionError
from exports.models import Export, Status, Webhook
from exports.snapshot import SnapshotWriter
from tests.exports.helpers import create_export, detail_url
from tests.exports.webhook_receiver import Receiver
from tests.factories import fill_project, make_project

pytestmark = pytest.mark.django_db

SECRET = "s3cret-key"


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_HOSTS = ["127.0.0.1"]
    settings.WEBHOOK_TIMEOUT = 5
    settings.WEBHOOK_ATTEMPTS = 5
    settings.WEBHOOK_RETRY_SECONDS = 0.01
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def project(user):
    project = make_project(user=user, title="Hooked project")
    fill_project(project, user=user, count=3)
    return project


def add_webhook(client, url: str, **body) -> dict:
    response = client.post(reverse("webhook-list"), {"url": url, **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def webhook_state(client, webhook: dict) -> dict:
    return client.get(reverse("webhook-detail", kwargs={"pk": webhook["id"]})).json()


def signature(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def convert(client, project, export_id: int, capture, export_type: str = "CSV"):
    url = reverse("project-exports-convert", kwargs={"pk": project.pk, "export_pk": export_id})
    with capture(execute=True):
        response = client.post(url, {"export_type": export_type}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_export_completed_is_delivered_signed_with_the_snapshot(
    api_client, project, receiver, django_capture_on_commit_callbacks
):
    hook = add_webhook(api_client, receiver.url, secret=SECRET, headers={"X-Team": "data"})
    export = create_export(api_client, project, django_capture_on_commit_callbacks)

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert request.path == "/hook"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Team"] == "data"
    assert request.headers["X-Webhook-Signature"] == signature(request.body)
    body = request.json()
    assert list(body) == ["action", "project", "export"]
    assert body["action"] == "EXPORT_COMPLETED"
    assert body["project"] == {"id": project.pk, "title": "Hooked project"}
    assert body["export"] == api_client.get(detail_url(project, export["id"])).json()
    assert body["export"]["status"] == "completed"
    state = webhook_state(api_client, hook)
    assert state["last_delivery_status"] == 200
    assert state["last_delivery_error"] is None
    assert state["last_delivery_at"] is not None


def test_conversion_completed_carries_the_converted_format(
    api_client, project, receiver, django_capture_on_commit_callbacks
):
    export = create_export(api_client, project, django_capture_on_commit_callbacks)
    add_webhook(api_client, receiver.url, secret=SECRET, send_for_all_actions=False, actions=["CONVERSION_COMPLETED"])
    started = convert(api_client, project, export["id"], django_capture_on_commit_callbacks)

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert request.headers["X-Webhook-Signature"] == signature(request.body)
    body = request.json()
    assert body["action"] == "CONVERSION_COMPLETED"
    assert body["converted_format"] == {
        "id": started["converted_format"],
        "status": "completed",
        "export_type": "CSV",
        "traceback": None,
    }
    assert body["export"] == api_client.get(detail_url(project, export["id"])).json()
    assert body["export"]["converted_formats"] == [body["converted_format"]]


def test_export_failed_is_delivered(api_client, project, receiver, django_capture_on_commit_callbacks, monkeypatch):
    def broken(self, *args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(SnapshotWriter, "write", broken)
    add_webhook(api_client, receiver.url, secret=SECRET)
    export = create_export(api_client, project, django_capture_on_commit_callbacks)

    assert Export.objects.get(pk=export["id"]).status == Status.FAILED
    assert [request.json()["action"] for request in receiver.requests] == ["EXPORT_FAILED"]
    request = receiver.requests[0]
    assert request.headers["X-Webhook-Signature"] == signature(request.body)
    assert request.json()["export"]["status"] == "failed"


def test_conversion_failed_is_delivered(api_client, project, receiver, django_capture_on_commit_callbacks, monkeypatch):
    export = create_export(api_client, project, django_capture_on_commit_callbacks)

    def broken(*args, **kwargs):
        raise ConversionError("Task 1 cannot be written as CSV")

    monkeypatch.setattr(converting, "convert_snapshot", broken)
    add_webhook(api_client, receiver.url)
    convert(api_client, project, export["id"], django_capture_on_commit_callbacks)

    body = receiver.requests[0].json()
    assert body["action"] == "CONVERSION_FAILED"
    assert body["converted_format"]["status"] == "failed"
    assert body["converted_format"]["traceback"] == "Task 1 cannot be written as CSV"


def test_without_a_secret_no_signature_is_sent(api_client, project, receiver, django_capture_on_commit_callbacks):
    add_webhook(api_client, receiver.url)
    create_export(api_client, project, django_capture_on_commit_callbacks)
    assert receiver.requests[0].headers["X-Webhook-Signature"] is None


def test_without_payload_only_the_action_and_ids_are_sent(
    api_client, project, receiver, django_capture_on_commit_callbacks
):
    add_webhook(api_client, receiver.url, send_payload=False)
    export = create_export(api_client, project, django_capture_on_commit_callbacks)
    started = convert(api_client, project, export["id"], django_capture_on_commit_callbacks)
    assert [request.json() for request in receiver.requests] == [
        {"action": "EXPORT_COMPLETED", "project": {"id": project.pk}, "export": {"id": export["id"]}},
        {
            "action": "CONVERSION_COMPLETED",
            "project": {"id": project.pk},
            "export": {"id": export["id"]},
            "converted_format": {"id": started["converted_format"]},
        },
    ]


def test_only_matching_webhooks_of_the_organization_fire(
    api_client, other_client, user, other_user, project, receiver, django_capture_on_commit_callbacks
):
    elsewhere = make_project(user=user, title="Elsewhere")
    add_webhook(api_client, f"{receiver.url}/org")
    add_webhook(api_client, f"{receiver.url}/project", project=project.pk)
    add_webhook(api_client, f"{receiver.url}/elsewhere", project=elsewhere.pk)
    add_webhook(api_client, f"{receiver.url}/failures", send_for_all_actions=False, actions=["EXPORT_FAILED"])
    add_webhook(api_client, f"{receiver.url}/off", is_active=False)
    add_webhook(other_client, f"{receiver.url}/other-org")
    create_export(api_client, project, django_capture_on_commit_callbacks)
    assert sorted(request.path for request in receiver.requests) == ["/hook/org", "/hook/project"]

    receiver.requests.clear()
    create_export(other_client, make_project(user=other_user), django_capture_on_commit_callbacks)
    assert [request.path for request in receiver.requests] == ["/hook/other-org"]


def test_a_500_is_retried_with_the_same_signed_body(api_client, project, receiver, django_capture_on_commit_callbacks):
    receiver.answers = [500, 503]
    hook = add_webhook(api_client, receiver.url, secret=SECRET)
    create_export(api_client, project, django_capture_on_commit_callbacks)

    assert len(receiver.requests) == 3
    assert len({request.body for request in receiver.requests}) == 1
    assert {request.headers["X-Webhook-Signature"] for request in receiver.requests} == {
        signature(receiver.requests[0].body)
    }
    state = webhook_state(api_client, hook)
    assert state["last_delivery_status"] == 200
    assert state["last_delivery_error"] is None


def test_retries_wait_longer_each_time(api_client, project, receiver, django_capture_on_commit_callbacks, monkeypatch):
    waits = []
    real = queue.submit_later

    def recording(job, *args, delay):
        waits.append(delay)
        real(job, *args, delay=0)

    monkeypatch.setattr(queue, "submit_later", recording)
    receiver.default = 500
    add_webhook(api_client, receiver.url)
    create_export(api_client, project, django_capture_on_commit_callbacks)
    assert waits == [0.01, 0.02, 0.04, 0.08]
    assert len(receiver.requests) == 5


def test_retries_run_out(api_client, project, receiver, django_capture_on_commit_callbacks, settings):
    settings.WEBHOOK_ATTEMPTS = 3
    receiver.default = 502
    hook = add_webhook(api_client, receiver.url)
    export = create_export(api_client, project, django_capture_on_commit_callbacks)

    assert len(receiver.requests) == 3
    state = webhook_state(api_client, hook)
    assert state["last_delivery_status"] == 502
    assert state["last_delivery_error"] == "the receiver answered HTTP 502 (attempt 3 of 3; gave up)"
    assert Export.objects.get(pk=export["id"]).status == Status.COMPLETED


def test_a_receiver_that_never_answers_times_out(
    api_client, project, receiver, django_capture_on_commit_callbacks, settings
):
    settings.WEBHOOK_TIMEOUT = 0.3
    settings.WEBHOOK_ATTEMPTS = 2
    receiver.default = "hang"
    hook = add_webhook(api_client, receiver.url)
    export = create_export(api_client, project, django_capture_on_commit_callbacks)

    assert len(receiver.requests) == 2
    state = webhook_state(api_client, hook)
    assert state["last_delivery_status"] is None
    assert state["last_delivery_error"] == "no answer within 0.3 s (attempt 2 of 2; gave up)"
    assert Export.objects.get(pk=export["id"]).status == Status.COMPLETED
    assert api_client.get(detail_url(project, export["id"])).json()["status"] == "completed"


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (404, "the receiver answered HTTP 404 (attempt 1 of 5; not retried)"),
        (
            "redirect",
            "the receiver answered with a redirect (HTTP 302), which is not followed (attempt 1 of 5; not retried)",
        ),
    ],
)
def test_other_answers_are_not_retried(
    api_client, project, receiver, django_capture_on_commit_callbacks, answer, error
):
    receiver.default = answer
    hook = add_webhook(api_client, receiver.url)
    create_export(api_client, project, django_capture_on_commit_callbacks)
    assert len(receiver.requests) == 1
    assert webhook_state(api_client, hook)["last_delivery_error"] == error


def test_loopback_is_refused_at_delivery_once_no_longer_listed(
    api_client, project, receiver, django_capture_on_commit_callbacks, settings
):
    hook = add_webhook(api_client, receiver.url)
    settings.WEBHOOK_HOSTS = []
    export = create_export(api_client, project, django_capture_on_commit_callbacks)

    assert receiver.requests == []
    state = webhook_state(api_client, hook)
    assert state["last_delivery_status"] is None
    assert state["last_delivery_error"] == (
        "refused: the host 127.0.0.1 resolves to a non-public address (127.0.0.1); list the host in WEBHOOK_HOSTS "
        "to allow it (attempt 1 of 5; not retried)"
    )
    assert Export.objects.get(pk=export["id"]).status == Status.COMPLETED


def test_a_broken_delivery_never_fails_the_export(
    api_client, project, receiver, django_capture_on_commit_callbacks, monkeypatch
):
    def explode(*args, **kwargs):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(webhooks, "post_json", explode)
    add_webhook(api_client, receiver.url)
    export = create_export(api_client, project, django_capture_on_commit_callbacks)
    assert Export.objects.get(pk=export["id"]).status == Status.COMPLETED


def test_a_webhook_switched_off_or_deleted_is_not_sent(receiver, api_client):
    hook = add_webhook(api_client, receiver.url)
    Webhook.objects.filter(pk=hook["id"]).update(is_active=False)
    webhooks.deliver_webhook(hook["id"], "{}", 2)
    Webhook.objects.filter(pk=hook["id"]).delete()
    webhooks.deliver_webhook(hook["id"], "{}", 2)
    assert receiver.requests == []


def test_finding_no_webhook_takes_one_query(project, user, django_assert_num_queries):
    export = Export.objects.create(project=project, created_by=user)
    with django_assert_num_queries(1):
        assert webhooks.send_webhooks("EXPORT_COMPLETED", export.pk) == 0


def test_deliveries_wait_outside_the_workers(settings, monkeypatch):
    """A retry is handed to Celery with a countdown, or to the pool by a timer: no worker sleeps meanwhile."""
    sent = []
    monkeypatch.setattr(queue, "send_to_celery", lambda job, *args, countdown=None: sent.append((args, countdown)))
    settings.JOBS_BACKEND = "celery"
    queue.submit_later(webhooks.deliver_webhook, 7, "{}", 2, delay=4)
    assert sent == [((7, "{}", 2), 4.0)]

    settings.JOBS_BACKEND = "thread"
    ran = threading.Event()
    calls = []

    def job(value):
        calls.append(value)
        ran.set()

    queue.submit_later(job, "later", delay=0.05)
    assert calls == []  # returned at once
    assert ran.wait(5)
    assert calls == ["later"]
