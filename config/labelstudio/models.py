"""The columns of Label Studio's tables that the service reads (checked against 1.23.x). Unmanaged: never created,
changed or migrated by the service; every model lives on the `labelstudio` database (see router.py).

The app is installed in attach mode only, so the type checker's Django plugin does not always see these models:
each declares its `objects` manager and its foreign keys' `<name>_id` attributes for it.
"""

from typing import ClassVar

from django.db import models


class ReadOnly(models.Model):
    class Meta:
        abstract = True
        managed = False
        app_label = "labelstudio"

    def __str__(self) -> str:
        return f"{self._meta.db_table} #{self.pk} (Label Studio)"


class LabelStudioOrganization(ReadOnly):
    title = models.CharField(max_length=1000)
    created_at = models.DateTimeField()
    objects: ClassVar[models.Manager["LabelStudioOrganization"]] = models.Manager()

    class Meta(ReadOnly.Meta):
        db_table = "organization"


class LabelStudioUser(ReadOnly):
    username = models.CharField(max_length=256)
    email = models.CharField(max_length=254)
    first_name = models.CharField(max_length=256)
    last_name = models.CharField(max_length=256)
    avatar = models.CharField(max_length=1000, null=True)  # noqa: DJ001 -- Label Studio's column
    is_active = models.BooleanField()
    active_organization = models.ForeignKey(
        LabelStudioOrganization, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    active_organization_id: int | None
    objects: ClassVar[models.Manager["LabelStudioUser"]] = models.Manager()

    class Meta(ReadOnly.Meta):
        db_table = "htx_user"


class LabelStudioMembership(ReadOnly):
    organization = models.ForeignKey(
        LabelStudioOrganization, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    organization_id: int
    user = models.ForeignKey(LabelStudioUser, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    user_id: int
    deleted_at = models.DateTimeField(null=True)
    objects: ClassVar[models.Manager["LabelStudioMembership"]] = models.Manager()

    class Meta(ReadOnly.Meta):
        db_table = "organizations_organizationmember"


class LabelStudioProject(ReadOnly):
    title = models.CharField(max_length=1000, null=True)  # noqa: DJ001 -- Label Studio's column
    description = models.TextField(null=True)  # noqa: DJ001 -- Label Studio's column
    label_config = models.TextField(null=True)  # noqa: DJ001 -- Label Studio's column
    organization = models.ForeignKey(
        LabelStudioOrganization, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    organization_id: int | None
    created_by = models.ForeignKey(
        LabelStudioUser, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    created_by_id: int | None
    created_at = models.DateTimeField()
    deleted_at = models.DateTimeField(null=True)
    objects: ClassVar[models.Manager["LabelStudioProject"]] = models.Manager()

    class Meta(ReadOnly.Meta):
        db_table = "project"


class LabelStudioFileUpload(ReadOnly):
    file = models.CharField(max_length=1000)
    objects: ClassVar[models.Manager["LabelStudioFileUpload"]] = models.Manager()

    class Meta(ReadOnly.Meta):
        db_table = "data_import_fileupload"


class LabelStudioTask(ReadOnly):
    project = models.ForeignKey(
        LabelStudioProject, on_delete=models.DO_NOTHING, db_constraint=False, related_name="tasks"
    )
    project_id: int
    data = models.JSONField()
    meta = models.JSONField(null=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    is_labeled = models.BooleanField()
    allow_skip = models.BooleanField(null=True)
    inner_id = models.BigIntegerField(null=True)
    total_annotations = models.IntegerField()
    cancelled_annotations = models.IntegerField()
    total_predictions = models.IntegerField()
    updated_by_id = models.IntegerField(null=True)
    file_upload = models.ForeignKey(
        LabelStudioFileUpload, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    file_upload_id: int | None
    objects: ClassVar[models.Manager["LabelStudioTask"]] = models.Manager()

    class Meta(ReadOnly.Meta):
        db_table = "task"


class LabelStudioAnnotation(ReadOnly):
    task = models.ForeignKey(LabelStudioTask, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    task_id: int
    project_id = models.IntegerField(null=True)
    completed_by = models.ForeignKey(
        LabelStudioUser, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    completed_by_id: int | None
    result = models.JSONField(null=True)
    was_cancelled = models.BooleanField()
    ground_truth = models.BooleanField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    draft_created_at = models.DateTimeField(null=True)
    lead_time = models.FloatField(null=True)
    prediction = models.JSONField(null=True)
    result_count = models.IntegerField()
    unique_id = models.UUIDField(null=True)
    import_id = models.BigIntegerField(null=True)
    last_action = models.CharField(max_length=128, null=True)  # noqa: DJ001 -- Label Studio's column
    bulk_created = models.BooleanField(null=True)
    updated_by_id = models.IntegerField(null=True)
    parent_prediction_id = models.IntegerField(null=True)
    parent_annotation_id = models.IntegerField(null=True)
    last_created_by_id = models.IntegerField(null=True)
    objects: ClassVar[models.Manager["LabelStudioAnnotation"]] = models.Manager()

    class Meta(ReadOnly.Meta):
        db_table = "task_completion"


class LabelStudioPrediction(ReadOnly):
    task = models.ForeignKey(LabelStudioTask, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    task_id: int
    project_id = models.IntegerField(null=True)
    result = models.JSONField(null=True)
    model_version = models.TextField(null=True)  # noqa: DJ001 -- Label Studio's column
    score = models.FloatField(null=True)
    cluster = models.IntegerField(null=True)
    neighbors = models.JSONField(null=True)
    mislabeling = models.FloatField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    objects: ClassVar[models.Manager["LabelStudioPrediction"]] = models.Manager()

    class Meta(ReadOnly.Meta):
        db_table = "prediction"


class LabelStudioDraft(ReadOnly):
    task = models.ForeignKey(LabelStudioTask, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    task_id: int
    user_id = models.IntegerField()
    annotation_id = models.IntegerField(null=True)
    result = models.JSONField()
    lead_time = models.FloatField(null=True)
    was_postponed = models.BooleanField()
    import_id = models.BigIntegerField(null=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    objects: ClassVar[models.Manager["LabelStudioDraft"]] = models.Manager()

    class Meta(ReadOnly.Meta):
        db_table = "tasks_annotationdraft"


# The tables and columns attach mode reads, for the start-up check (checks.py).
READ_MODELS = (
    LabelStudioOrganization,
    LabelStudioUser,
    LabelStudioMembership,
    LabelStudioProject,
    LabelStudioFileUpload,
    LabelStudioTask,
    LabelStudioAnnotation,
    LabelStudioPrediction,
    LabelStudioDraft,
)
