"""Webhooks for exports: saving them, which ones a finished snapshot or conversion fires, what they are sent, and
the delivery job.

A snapshot or conversion completes or fails in one place, `JobQuerySet.transition`, which calls `job_finished`
(registered by exports.apps). Once that change commits, `send_webhooks` finds the active webhooks that take the
action (the project's own and those of its whole organization), builds the body once, and submits one
`deliver_webhook` job per webhook: a slow or failing receiver never holds up or fails the export. A delivery that
may go better later (no answer, a timeout, HTTP 408, 429 or 5xx, a host that did not resolve) is sent again after
WEBHOOK_RETRY_SECONDS, doubling each time, up to WEBHOOK_ATTEMPTS attempts in all; the wait is spent in the job
queue (`queue.submit_later`), not in a worker. Every attempt re-reads the webhook (a deleted or switched-off webhook
is not retried) and checks its target again. The latest attempt's result is kept on the webhook
(`last_delivery_status`, `last_delivery_error`, `last_delivery_at`).

The body is `{"action", "project": {"id", "title"}, "export": <the snapshot as GET .../exports/{id} shows it>}`, plus
`"converted_format": {"id", "export_type", "status", "traceback"}` for a conversion; with `send_payload` off, only the
action and the ids. It is signed when the webhook has a secret: `X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the
body's exact bytes, keyed with the secret>`. A webhook without a secret is sent without that header (a signature
with an empty key would prove nothing).
"""

import hashlib
import hmac
import logging
from functools import partial
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from exports import queue
from exports.models import ConvertedFormat, Export, Status, Webhook, WebhookAction
from exports.selectors import export_body
from exports.serializers import ExportSerializer
from exports.webhook_http import TargetRefused, check_target, post_json
from projects.models import Project

__all__ = [
    "SIGNATURE_HEADER",
    "deliver_webhook",
    "job_finished",
    "send_webhooks",
    "sign",
    "target_refusal",
    "webhook_create",
    "webhook_update",
]

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Webhook-Signature"

_ACTIONS: dict[tuple[type[models.Model], str], str] = {
    (Export, Status.COMPLETED): WebhookAction.EXPORT_COMPLETED,
    (Export, Status.FAILED): WebhookAction.EXPORT_FAILED,
    (ConvertedFormat, Status.COMPLETED): WebhookAction.CONVERSION_COMPLETED,
    (ConvertedFormat, Status.FAILED): WebhookAction.CONVERSION_FAILED,
}
_CONVERSION_ACTIONS = frozenset({WebhookAction.CONVERSION_COMPLETED, WebhookAction.CONVERSION_FAILED})

EDITABLE = frozenset(
    {"project", "url", "send_payload", "send_for_all_actions", "headers", "is_active", "actions", "secret"}
)


def target_refusal(url: str) -> str | None:
    """Why webhooks may not be sent to `url` now (WEBHOOK_HOSTS applied); None when they may."""
    try:
        check_target(url, allowed=settings.WEBHOOK_HOSTS)
    except TargetRefused as refused:
        return str(refused)
    return None


def webhook_create(
    *,
    organization_id: int,
    url: str,
    project: Project | None = None,
    send_payload: bool = True,
    send_for_all_actions: bool = True,
    headers: dict[str, str] | None = None,
    is_active: bool = True,
    actions: list[str] | None = None,
    secret: str = "",
) -> Webhook:
    """Save a webhook of the organization (of one of its projects when `project` is given); the caller checked the
    input (target, actions, headers)."""
    return Webhook.objects.create(
        organization_id=organization_id,
        project=project,
        url=url,
        send_payload=send_payload,
        send_for_all_actions=send_for_all_actions,
        headers=headers or {},
        is_active=is_active,
        actions=list(actions or []),
        secret=secret,
    )


def webhook_update(*, webhook: Webhook, **changes: Any) -> Webhook:
    """Change the given fields of a webhook (any of EDITABLE); the caller checked the values."""
    unknown = set(changes) - EDITABLE
    if unknown:
        raise TypeError(f"Not editable: {', '.join(sorted(unknown))}")
    for name, value in changes.items():
        setattr(webhook, name, value)
    webhook.save(update_fields=[*changes, "updated_at"])
    return webhook


def job_finished(model: type[models.Model], pk: int, status: str) -> None:
    """The `exports.models.on_job_finished` hook: once the status change commits, send the webhooks it fires."""
    action = _ACTIONS.get((model, status))
    if action is not None:
        transaction.on_commit(partial(send_webhooks, action, pk), robust=True)


def send_webhooks(action: str, object_id: int) -> int:
    """Submit a delivery of `action` (of the snapshot or conversion `object_id`) to every active webhook that takes
    it; returns how many. Never raises: a webhook never fails an export."""
    try:
        return _send(action, object_id)
    except Exception:
        logger.exception("Webhooks for %s of #%s could not be sent", action, object_id)
        return 0


def _send(action: str, object_id: int) -> int:
    conversion = action in _CONVERSION_ACTIONS
    via = "exports__converted_formats" if conversion else "exports"
    # One query whether or not any webhook fires (the common case is none): the organization's webhooks, and the
    # project's own, of the row's project.
    candidates = Webhook.objects.filter(
        Q(project__isnull=True) | Q(**{f"project__{via}": object_id}),
        is_active=True,
        **{f"organization__projects__{via}": object_id},
    ).only("id", "organization_id", "send_payload", "send_for_all_actions", "actions", "is_active")
    hooks = [hook for hook in candidates.order_by("id") if hook.fires_for(action)]
    if not hooks:
        return 0
    bodies = _bodies(action, object_id, organization_id=hooks[0].organization_id)
    if bodies is None:
        logger.info("Webhooks for %s of #%s not sent: the row was deleted meanwhile", action, object_id)
        return 0
    sent = 0
    for hook in hooks:
        try:
            queue.submit(deliver_webhook, hook.pk, bodies[hook.send_payload], 1)
        except Exception:  # the broker is down: this delivery is lost, the others may still go
            logger.exception("Webhook %s: the delivery of %s could not be queued", hook.pk, action)
        else:
            sent += 1
    return sent


def _bodies(action: str, object_id: int, *, organization_id: int) -> dict[bool, str] | None:
    """The JSON body with the payload (key True) and without it (key False); None when the row is gone."""
    conversion = action in _CONVERSION_ACTIONS
    if conversion:
        row = ConvertedFormat.objects.filter(pk=object_id).values_list("export_id", "export__project_id").first()
    else:
        row = Export.objects.filter(pk=object_id).values_list("pk", "project_id").first()
    if row is None:
        return None
    export_id, project_id = row
    caller = SimpleNamespace(is_authenticated=True, active_organization_id=organization_id)
    body = export_body(user=caller, project_id=project_id, export_id=export_id)
    if body is None:
        return None
    snapshot = ExportSerializer(body).data
    project = {"id": project_id, "title": body.project.title}
    full: dict[str, Any] = {"action": action, "project": project, "export": snapshot}
    brief: dict[str, Any] = {"action": action, "project": {"id": project_id}, "export": {"id": export_id}}
    if conversion:
        full["converted_format"] = next(
            (item for item in snapshot["converted_formats"] if item["id"] == object_id), None
        )
        brief["converted_format"] = {"id": object_id}
    return {True: _render(full), False: _render(brief)}


def _render(payload: dict) -> str:
    """The JSON text the API would answer for `payload` (compact, UTF-8); a str, so the job's arguments stay JSON."""
    return JSONRenderer().render(payload).decode()


def sign(body: bytes, secret: str) -> str:
    """The X-Webhook-Signature value of `body`: `sha256=` and the hex HMAC-SHA256 keyed with `secret`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def retry_delay(attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): WEBHOOK_RETRY_SECONDS, doubling each time."""
    return float(settings.WEBHOOK_RETRY_SECONDS) * 2 ** (attempt - 1)


def deliver_webhook(webhook_id: int, body: str, attempt: int = 1) -> None:
    """Send one delivery to a webhook and record how it went; submit the next attempt when it may still succeed.
    Does nothing when the webhook was deleted or switched off meanwhile. Never raises."""
    try:
        _deliver(webhook_id, body, attempt)
    except Exception:
        logger.exception("Webhook %s: attempt %s of a delivery failed unexpectedly", webhook_id, attempt)


def _deliver(webhook_id: int, body: str, attempt: int) -> None:
    webhook = Webhook.objects.filter(pk=webhook_id, is_active=True).only("id", "url", "headers", "secret").first()
    if webhook is None:
        return
    data = body.encode()
    headers = {str(name): str(value) for name, value in (webhook.headers or {}).items()}
    if webhook.secret:
        headers[SIGNATURE_HEADER] = sign(data, webhook.secret)
    outcome = post_json(
        webhook.url, data, headers, allowed=settings.WEBHOOK_HOSTS, timeout=float(settings.WEBHOOK_TIMEOUT)
    )
    attempts = max(1, int(settings.WEBHOOK_ATTEMPTS))
    again = outcome.retry and attempt < attempts
    error = None
    if not outcome.ok:
        if again:
            error = f"{outcome.error} (attempt {attempt} of {attempts}; next in {retry_delay(attempt):g} s)"
        elif outcome.retry:
            error = f"{outcome.error} (attempt {attempt} of {attempts}; gave up)"
        else:
            error = f"{outcome.error} (attempt {attempt} of {attempts}; not retried)"
    Webhook.objects.filter(pk=webhook_id).update(
        last_delivery_status=outcome.status, last_delivery_error=error, last_delivery_at=timezone.now()
    )
    if outcome.ok:
        logger.info("Webhook %s: delivered (HTTP %s, attempt %s)", webhook_id, outcome.status, attempt)
        return
    logger.warning("Webhook %s: delivery failed: %s", webhook_id, error)
    if again:
        queue.submit_later(deliver_webhook, webhook_id, body, attempt + 1, delay=retry_delay(attempt))
