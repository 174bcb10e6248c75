"""Projects and the labeling data they hold: tasks, annotations, drafts and predictions."""

import os
import uuid
from collections.abc import Iterable

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import models
from django.db.models import Case, Count, Exists, IntegerField, OuterRef, Q, Subquery, Value, When
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Coalesce

DEFAULT_LABEL_CONFIG = "<View></View>"
# The largest id a row can have (64-bit keys); the database refuses to even compare a larger number with one.
MAX_ROW_ID = 2**63 - 1


def _count(model, *, counted: str = "pk", **filters) -> Coalesce:
    """A correlated COUNT subquery over `model` rows of the outer project, so a list stays one query."""
    rows = (
        model.objects.filter(project=OuterRef("pk"), **filters)
        .order_by()
        .values("project")
        .annotate(n=Count(counted, distinct=counted != "pk"))
        .values("n")
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), Value(0))


def informational_link(to, **kwargs) -> models.ForeignKey:
    """A link Label Studio's export shape carries but this service never sets or queries (always null here):
    no index, no database constraint and no delete handling, so bulk imports and deletes pay nothing for it."""
    return models.ForeignKey(
        to,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
        **kwargs,
    )


COUNTER_FIELDS = (
    "task_number",
    "finished_task_number",
    "total_predictions_number",
    "total_annotations_number",
    "num_tasks_with_annotations",
    "useful_annotation_number",
    "ground_truth_number",
    "skipped_annotations_number",
)
QUEUE_FIELDS = ("queue_total", "queue_done")


def _counter(name: str) -> Coalesce:
    """The expression of one of Label Studio's project counters (see COUNTER_FIELDS)."""
    if name == "task_number":
        return _count(Task)
    if name == "finished_task_number":
        return _count(Task, is_labeled=True)
    if name == "total_predictions_number":
        return _count(Prediction)
    if name == "total_annotations_number":
        return _count(Annotation, was_cancelled=False)
    if name == "num_tasks_with_annotations":
        return _count(Annotation, counted="task", was_cancelled=False, ground_truth=False)
    if name == "useful_annotation_number":
        return _count(Annotation, was_cancelled=False, ground_truth=False)
    if name == "ground_truth_number":
        return _count(Annotation, ground_truth=True)
    if name == "skipped_annotations_number":
        return _count(Annotation, was_cancelled=True)
    raise ValueError(f"unknown counter {name!r}")


def _queue_total(user_id: int | None) -> CombinedExpression:
    """Tasks in the user's labeling stream: not labeled yet, or labeled by the user (as Label Studio counts).

    Counted as the unlabeled tasks plus the labeled ones the user annotated: two scans by project, where a
    per-task "annotated by the user?" probe would cost one index lookup per task.
    """
    mine_labeled = _count(Annotation, counted="task", completed_by_id=user_id, task__is_labeled=True)
    return _count(Task, is_labeled=False) + mine_labeled


def _queue_done(user_id: int | None) -> Case:
    """Tasks the user has annotated; skipped ones do not count when skipped tasks come back to the same user."""
    return Case(
        When(
            skip_queue=Project.SkipQueue.REQUEUE_FOR_ME,
            then=_count(Annotation, counted="task", completed_by_id=user_id, was_cancelled=False),
        ),
        default=_count(Annotation, counted="task", completed_by_id=user_id),
        output_field=IntegerField(),
    )


def visible_projects_rule(user, *, via: str = "") -> Q:
    """Who sees what, the one rule: a user sees the projects of their active organization and what belongs to
    them; nothing else exists for them. `via` is the lookup path from another model to its project (e.g.
    `project__`), so every model family scopes itself with this rule, joins included."""
    organization_id = getattr(user, "active_organization_id", None) if user and user.is_authenticated else None
    if not organization_id:
        return Q(pk__in=[])
    return Q(**{f"{via}organization_id": organization_id})


class ProjectQuerySet(models.QuerySet):
    def visible_to(self, user) -> "ProjectQuerySet":
        """Projects of the user's active organization; nothing else exists for them."""
        return self.filter(visible_projects_rule(user))

    def with_counters(self, names: Iterable[str] = COUNTER_FIELDS) -> "ProjectQuerySet":
        """Label Studio's project counters (all, or those named), computed in the same query as the projects."""
        wanted = set(names)
        return self.annotate(**{name: _counter(name) for name in COUNTER_FIELDS if name in wanted})

    def with_queue(self, user, names: Iterable[str] = QUEUE_FIELDS) -> "ProjectQuerySet":
        """The user's own labeling progress (`queue_total`, `queue_done`), in the same query as the projects."""
        user_id = getattr(user, "pk", None)
        wanted = set(names)
        fields = {"queue_total": _queue_total, "queue_done": _queue_done}
        return self.annotate(**{name: make(user_id) for name, make in fields.items() if name in wanted})

    def with_api_relations(self, user=None, names: Iterable[str] | None = None) -> "ProjectQuerySet":
        """Everything the project API renders, for `user`; `names` limits the computed values to those fields."""
        names = set(COUNTER_FIELDS + QUEUE_FIELDS) if names is None else set(names)
        return self.select_related("created_by").with_counters(names).with_queue(user, names)


class Project(models.Model):
    """A labeling project: its settings, its label config, and (through tasks) its data."""

    class Sampling(models.TextChoices):
        SEQUENCE = "Sequential sampling"
        UNIFORM = "Uniform sampling"
        UNCERTAINTY = "Uncertainty sampling"

    class SkipQueue(models.TextChoices):
        REQUEUE_FOR_ME = "REQUEUE_FOR_ME"
        REQUEUE_FOR_OTHERS = "REQUEUE_FOR_OTHERS"
        IGNORE_SKIPPED = "IGNORE_SKIPPED"

    organization = models.ForeignKey("users.Organization", on_delete=models.CASCADE, related_name="projects")
    title = models.CharField(max_length=50, blank=True, default="")
    description = models.TextField(blank=True, default="")
    label_config = models.TextField(blank=True, default=DEFAULT_LABEL_CONFIG)
    expert_instruction = models.TextField(blank=True, default="")
    show_instruction = models.BooleanField(default=False)
    show_skip_button = models.BooleanField(default=True)
    enable_empty_annotation = models.BooleanField(default=True)
    show_annotation_history = models.BooleanField(default=False)
    color = models.CharField(max_length=16, blank=True, default="#FFFFFF")
    maximum_annotations = models.IntegerField(default=1)
    is_published = models.BooleanField(default=False)
    model_version = models.TextField(blank=True, default="")
    is_draft = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="created_projects"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    min_annotations_to_start_training = models.IntegerField(default=0)
    start_training_on_annotation_update = models.BooleanField(default=False)
    show_collab_predictions = models.BooleanField(default=True)
    sampling = models.CharField(max_length=100, choices=Sampling.choices, default=Sampling.SEQUENCE)
    show_ground_truth_first = models.BooleanField(default=False)
    annotator_evaluation_enabled = models.BooleanField(default=False)
    show_overlap_first = models.BooleanField(default=False)
    overlap_cohort_percentage = models.IntegerField(default=100)
    task_data_login = models.CharField(max_length=256, null=True, blank=True)  # noqa: DJ001 -- null in the API, as Label Studio
    task_data_password = models.CharField(max_length=256, null=True, blank=True)  # noqa: DJ001 -- null in the API, as Label Studio
    control_weights = models.JSONField(default=dict, blank=True)
    evaluate_predictions_automatically = models.BooleanField(default=False)
    skip_queue = models.CharField(max_length=100, choices=SkipQueue.choices, default=SkipQueue.REQUEUE_FOR_OTHERS)
    reveal_preannotations_interactively = models.BooleanField(default=False)
    pinned_at = models.DateTimeField(null=True, blank=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["organization", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.title} (#{self.pk})"


class UploadStorage(FileSystemStorage):
    """Uploaded import files, under DATA_DIR/uploads. The folder is read when used, never at import time."""

    @property
    def base_location(self) -> str:
        return os.path.join(settings.DATA_DIR, "uploads")

    @property
    def location(self) -> str:
        return os.path.abspath(self.base_location)


def upload_path(instance: "FileUpload", filename: str) -> str:
    """`<project id>/<8 random hex>-<original name>`: the prefix keeps uploads of the same name apart."""
    return f"{instance.project_id}/{uuid.uuid4().hex[:8]}-{filename}"


class FileUpload(models.Model):
    """A file a user uploaded to import tasks from; its tasks name it in `Task.file_upload`."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="file_uploads")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="file_uploads"
    )
    file = models.FileField(upload_to=upload_path, storage=UploadStorage(), max_length=1024)
    original_name = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.original_name

    @property
    def file_name(self) -> str:
        """The stored file's name, as Label Studio exports it in a task's `file_upload`."""
        name = self.file.name
        assert name is not None  # a stored upload always has its file
        return os.path.basename(name)


class Task(models.Model):
    """One item to label; `data` is free-form and keyed by the label config's $variables."""

    # Indexed by the (project, id) index below, which also serves every lookup by project alone.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tasks", db_index=False)
    data = models.JSONField()
    meta = models.JSONField(default=dict, blank=True)
    inner_id = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    is_labeled = models.BooleanField(default=False)
    allow_skip = models.BooleanField(default=True)
    total_annotations = models.IntegerField(default=0)
    cancelled_annotations = models.IntegerField(default=0)
    total_predictions = models.IntegerField(default=0)
    updated_by = informational_link(settings.AUTH_USER_MODEL)
    file_upload = models.CharField(max_length=2048, null=True, blank=True)  # noqa: DJ001 -- null in the API, as Label Studio

    class Meta:
        indexes = [models.Index(fields=["project", "id"])]

    def __str__(self) -> str:
        return f"Task #{self.pk}"


def finished_tasks(*, maximum_annotations: int, counted: Q | None = None) -> Q:
    """The tasks Label Studio 1.23.2 marks finished (`is_labeled`): those on which at least `maximum_annotations`
    distinct users completed annotations matching `counted` (all annotations when None).

    `maximum_annotations` is the project's overlap, taken as it is: 0 or less finishes every task, even one without
    annotations, and two annotations by the same user count once. Which annotations count depends on when Label
    Studio decides: on import every one, skipped and ground truth alike, whatever the project's `skip_queue`; when
    it counts again (a changed `maximum_annotations` or `skip_queue`) those of `counted_when_recounting`.
    """
    if maximum_annotations <= 0:
        return Q(pk__isnull=False)  # every task, and its negation none (a bare Q() negates to every task too)
    annotations = Annotation.objects.filter(counted or Q(), task=OuterRef("pk"), completed_by__isnull=False).order_by()
    if maximum_annotations == 1:
        return Q(Exists(annotations))
    annotators = (
        annotations.values("task")
        .annotate(annotators=Count("completed_by", distinct=True))
        .filter(annotators__gte=maximum_annotations)
    )
    return Q(Exists(annotators))


def counted_when_recounting(skip_queue: str) -> Q:
    """The annotations that finish a task when Label Studio counts again: all of them when skipped tasks are
    ignored (IGNORE_SKIPPED), otherwise only those not skipped."""
    return Q() if skip_queue == Project.SkipQueue.IGNORE_SKIPPED else Q(was_cancelled=False)


class Annotation(models.Model):
    """A user's (or an import's) labeling result for one task."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="annotations")
    # The task's project, copied for per-project counts; the task's own constraint already guarantees it.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="annotations", db_constraint=False)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="annotations"
    )
    result = models.JSONField(default=list)
    was_cancelled = models.BooleanField(default=False)
    ground_truth = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    draft_created_at = models.DateTimeField(null=True, blank=True)
    lead_time = models.FloatField(null=True, blank=True)
    prediction = models.JSONField(default=dict, blank=True)
    result_count = models.IntegerField(default=0)
    unique_id = models.UUIDField(default=uuid.uuid4, editable=False)
    import_id = models.BigIntegerField(null=True, blank=True)
    last_action = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001 -- null in the API, as Label Studio
    bulk_created = models.BooleanField(default=False, null=True)
    updated_by = informational_link(settings.AUTH_USER_MODEL)
    parent_prediction = informational_link("projects.Prediction")
    parent_annotation = informational_link("self")
    last_created_by = informational_link(settings.AUTH_USER_MODEL)

    def __str__(self) -> str:
        return f"Annotation #{self.pk}"


class AnnotationDraft(models.Model):
    """An unsubmitted annotation in progress."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="drafts")
    annotation = models.ForeignKey(Annotation, null=True, blank=True, on_delete=models.CASCADE, related_name="drafts")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="drafts"
    )
    result = models.JSONField(default=list)
    lead_time = models.FloatField(null=True, blank=True)
    was_postponed = models.BooleanField(default=False)
    import_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Draft #{self.pk}"


class Prediction(models.Model):
    """A model's suggested result for one task."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="predictions")
    # The task's project, copied for per-project counts; the task's own constraint already guarantees it.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="predictions", db_constraint=False)
    result = models.JSONField(default=list)
    model_version = models.TextField(blank=True, default="")
    score = models.FloatField(null=True, blank=True)
    cluster = models.IntegerField(null=True, blank=True)
    neighbors = models.JSONField(null=True, blank=True)
    mislabeling = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Prediction #{self.pk}"
