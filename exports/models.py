"""Export snapshots and their converted formats; every status change goes through `JobQuerySet.transition`.
Also the webhooks told when one completes or fails."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Prefetch, Q
from django.utils import timezone

from projects.models import visible_projects_rule


class Status(models.TextChoices):
    CREATED = "created"
    IN_PROGRESS = "in_progress"
    FAILED = "failed"
    COMPLETED = "completed"


ALLOWED = {  # target: the statuses it may come from. The only status graph in the codebase.
    Status.IN_PROGRESS: {Status.CREATED},
    Status.COMPLETED: {Status.IN_PROGRESS},
    Status.FAILED: {Status.CREATED, Status.IN_PROGRESS},
    Status.CREATED: {Status.FAILED},  # an explicit retry
}


# Called as `hook(model, pk, status)` after a row's status changes to COMPLETED or FAILED (in `transition`, the one
# place that happens). Registered at start-up (the webhooks, by exports.apps), so this module imports nothing above it.
FinishedHook = Callable[[type[models.Model], int, str], None]
_finished_hooks: list[FinishedHook] = []


def on_job_finished(hook: FinishedHook) -> None:
    """Call `hook(model, pk, status)` whenever a snapshot or conversion completes or fails."""
    if hook not in _finished_hooks:
        _finished_hooks.append(hook)


USER_BRIEF_COLUMNS = ("id", "username", "first_name", "last_name", "email", "avatar")
PROJECT_BRIEF_COLUMNS = ("id", "title", "description", "label_config", "organization_id", "created_at")


class JobQuerySet(models.QuerySet):
    def transition(self, pk: int, to: Status, *, only_if=None, **fields) -> bool:
        """Compare-and-set one row's status; False when the row was not in an allowed source state.

        `only_if` narrows the match further (e.g. to the lease holder), so a job that lost its lease
        can never complete or fail a row another run has taken over.
        """
        if to in (Status.COMPLETED, Status.FAILED):
            fields.setdefault("finished_at", timezone.now())
        if to != Status.IN_PROGRESS:
            fields.setdefault("lease_owner", "")
            fields.setdefault("lease_expires_at", None)
        rows = self.filter(pk=pk, status__in=ALLOWED[to], **(only_if or {}))
        changed = rows.update(status=to, **fields) == 1
        if changed and to in (Status.COMPLETED, Status.FAILED):
            for hook in _finished_hooks:
                hook(self.model, pk, to)
        return changed

    def renew_lease(self, pk: int, owner: str, **fields) -> bool:
        """Extend a running job's lease (and save progress); False when the job no longer holds it."""
        expires = timezone.now() + timedelta(seconds=settings.EXPORT_LEASE_SECONDS)
        rows = self.filter(pk=pk, status=Status.IN_PROGRESS, lease_owner=owner)
        return rows.update(lease_expires_at=expires, **fields) == 1

    def lease_expired(self) -> "JobQuerySet":
        return self.filter(status=Status.IN_PROGRESS, lease_expires_at__lt=timezone.now())

    def waiting_since(self, cutoff: datetime) -> "JobQuerySet":
        """Rows still `created` that were made, and last sent to a job, at or before `cutoff`.

        While a row is `created`, `lease_expires_at` holds when the sweep last sent it again (None: never).
        """
        return self.filter(status=Status.CREATED, created_at__lte=cutoff).filter(
            Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=cutoff)
        )

    def mark_resent(self, pk: int, cutoff: datetime) -> bool:
        """Stamp the time a waiting row is sent again; False when a job claimed it or another sweep sent it after
        `cutoff`, so of several sweeps at once only one sends it."""
        return self.waiting_since(cutoff).filter(pk=pk).update(lease_expires_at=timezone.now()) == 1


class JobFields(models.Model):
    """What a background job row needs: status, timing, failure reason and the lease of whoever runs it.

    `lease_expires_at` is the running job's deadline while `in_progress`, and the time the sweep last sent the job
    again while `created`.
    """

    status = models.CharField(max_length=64, choices=Status.choices, default=Status.CREATED, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    file = models.CharField(max_length=1024, blank=True, default="")
    lease_owner = models.CharField(max_length=255, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        abstract = True


class ExportQuerySet(JobQuerySet):
    def visible_to(self, user) -> "ExportQuerySet":
        """Snapshots of the projects the user sees (`projects.models.visible_projects_rule`)."""
        return self.filter(visible_projects_rule(user, via="project__"))

    def with_api_relations(self) -> "ExportQuerySet":
        """The joins the snapshot contract needs, the same whatever fields are asked for.

        Only the creator's and the project's columns the API shows are read (a project row is wide).
        """
        own = [field.attname for field in Export._meta.concrete_fields]
        return (
            self.select_related("created_by", "project")
            .only(
                *own,
                *(f"created_by__{name}" for name in USER_BRIEF_COLUMNS),
                *(f"project__{name}" for name in PROJECT_BRIEF_COLUMNS),
            )
            .prefetch_related(Prefetch("converted_formats", queryset=ConvertedFormat.objects.order_by("id")))
        )


class Export(JobFields):
    """A snapshot of a project's tasks, written to one JSON file by a background job."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="exports")
    title = models.CharField(max_length=2048, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="exports"
    )
    md5 = models.CharField(max_length=128, blank=True, default="")
    counters = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True, default="")
    task_filter_options = models.JSONField(null=True, blank=True)
    annotation_filter_options = models.JSONField(null=True, blank=True)
    serialization_options = models.JSONField(null=True, blank=True)
    # An incremental snapshot: the id of the earlier snapshot it holds the changes since (exports/increments.py).
    # A plain id, not a key: deleting that snapshot later must not turn this one into a full one.
    since_export = models.PositiveBigIntegerField(null=True, blank=True)

    # A ClassVar, as the Django type-checker plugin makes the inherited one; it still infers the exact manager type.
    objects: ClassVar[models.Manager["Export"]] = ExportQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["project", "-created_at"])]

    def __str__(self) -> str:
        return f"Export #{self.pk} of project {self.project_id} ({self.status})"

    def download_name(self, extension: str = "json") -> str:
        """Label Studio's attachment name: project-<id>-at-<creation time, UTC>-<md5[:8]>.<ext>."""
        stamp = self.created_at.astimezone(UTC).strftime("%Y-%m-%d-%H-%M")
        return f"project-{self.project_id}-at-{stamp}-{self.md5[:8]}.{extension}"


class ConvertedFormat(JobFields):
    """One conversion of a snapshot's file into another export format."""

    export = models.ForeignKey(Export, on_delete=models.CASCADE, related_name="converted_formats")
    export_type = models.CharField(max_length=64)
    traceback = models.TextField(null=True, blank=True)  # noqa: DJ001 -- null in the API, as Label Studio
    download_resources = models.BooleanField(default=False)  # asked for by `convert`; read by the job

    class Meta:
        constraints = [
            # One row per format of a snapshot: a retry after a failure reuses the failed row (FAILED → CREATED),
            # and two concurrent requests for the same format cannot both start a conversion.
            models.UniqueConstraint(fields=["export", "export_type"], name="exports_one_conversion_per_type"),
        ]

    def __str__(self) -> str:
        return f"{self.export_type} of export #{self.export_id} ({self.status})"


class WebhookAction(models.TextChoices):
    """What a webhook can be told: a snapshot or a conversion completed or failed."""

    EXPORT_COMPLETED = "EXPORT_COMPLETED"
    EXPORT_FAILED = "EXPORT_FAILED"
    CONVERSION_COMPLETED = "CONVERSION_COMPLETED"
    CONVERSION_FAILED = "CONVERSION_FAILED"


class WebhookQuerySet(models.QuerySet):
    def visible_to(self, user) -> "WebhookQuerySet":
        """The webhooks of the user's active organization (`projects.models.visible_projects_rule`)."""
        return self.filter(visible_projects_rule(user))


class Webhook(models.Model):
    """A URL told of an organization's (or one project's) finished snapshots and conversions, in the shape of
    Label Studio's webhook (label_studio/webhooks/models.py). `actions` is a list here rather than a table of its
    own; the `last_delivery_*` fields record how the latest delivery went."""

    organization = models.ForeignKey("users.Organization", on_delete=models.CASCADE, related_name="webhooks")
    project = models.ForeignKey(
        "projects.Project", null=True, blank=True, default=None, on_delete=models.CASCADE, related_name="webhooks"
    )
    url = models.URLField(max_length=2048)
    send_payload = models.BooleanField(default=True)
    send_for_all_actions = models.BooleanField(default=True)
    headers = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    actions = models.JSONField(default=list, blank=True)
    secret = models.CharField(max_length=1024, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_delivery_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_delivery_error = models.TextField(null=True, blank=True)  # noqa: DJ001 -- null in the API when none
    last_delivery_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[models.Manager["Webhook"]] = WebhookQuerySet.as_manager()

    def __str__(self) -> str:
        return f"Webhook #{self.pk} to {self.url}"

    def fires_for(self, action: str) -> bool:
        return self.is_active and (self.send_for_all_actions or action in (self.actions or ()))
