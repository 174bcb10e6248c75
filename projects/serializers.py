"""Project output in Label Studio's field order, and the inputs and answers of the project endpoints."""

from functools import lru_cache

from django.db import models
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api.serializers import BooleanField, DynamicFieldsMixin, UtcDateTimeField
from projects import label_config
from projects.models import COUNTER_FIELDS, Project
from users.serializers import UserSimpleSerializer

DUPLICATE_MODES = ("settings", "settings,data")


@lru_cache(maxsize=256)
def _config_facts(xml: str) -> tuple[dict, bool]:
    """(parsed config, suitable for bulk annotation) of a stored config; a list renders many alike configs."""
    try:
        return label_config.parse_label_config(xml), label_config.config_suitable_for_bulk_annotation(xml)
    except label_config.LabelConfigError:
        return {}, False


def checked_label_config(value: str) -> str:
    """A config that passes Label Studio's checks, or the reason it does not as a validation error."""
    try:
        label_config.validate_label_config(value)
    except label_config.LabelConfigError as exc:
        raise serializers.ValidationError(str(exc)) from exc
    return value


def _holds_nul(value) -> bool:
    """Whether a parsed JSON value has a NUL character in any key or string, at any depth."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def parsed_config_or_empty(project: Project) -> dict:
    return _config_facts(project.label_config or "")[0]


class ProjectSerializer(DynamicFieldsMixin, serializers.ModelSerializer):
    """A project as Label Studio returns it, counters included (from `Project.objects.with_counters()`)."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.BooleanField: BooleanField,
    }
    created_by = UserSimpleSerializer(read_only=True)
    num_tasks_with_annotations = serializers.IntegerField(read_only=True)
    task_number = serializers.IntegerField(read_only=True)
    useful_annotation_number = serializers.IntegerField(read_only=True)
    ground_truth_number = serializers.IntegerField(read_only=True)
    skipped_annotations_number = serializers.IntegerField(read_only=True)
    total_annotations_number = serializers.IntegerField(read_only=True)
    total_predictions_number = serializers.IntegerField(read_only=True)
    finished_task_number = serializers.IntegerField(read_only=True)
    parsed_label_config = serializers.SerializerMethodField()
    config_has_control_tags = serializers.SerializerMethodField()
    queue_total = serializers.IntegerField(
        read_only=True, help_text="Tasks in the caller's labeling stream: not labeled yet, or labeled by the caller"
    )
    queue_done = serializers.IntegerField(read_only=True, help_text="Tasks the caller has annotated")
    config_suitable_for_bulk_annotation = serializers.SerializerMethodField()
    state = serializers.SerializerMethodField()
    pinned_at = UtcDateTimeField(required=False, allow_null=True)

    class Meta:
        model = Project
        fields = [
            "id",
            "title",
            "description",
            "label_config",
            "expert_instruction",
            "show_instruction",
            "show_skip_button",
            "enable_empty_annotation",
            "show_annotation_history",
            "organization",
            "color",
            "maximum_annotations",
            "is_published",
            "model_version",
            "is_draft",
            "created_by",
            "created_at",
            "min_annotations_to_start_training",
            "start_training_on_annotation_update",
            "show_collab_predictions",
            "num_tasks_with_annotations",
            "task_number",
            "useful_annotation_number",
            "ground_truth_number",
            "skipped_annotations_number",
            "total_annotations_number",
            "total_predictions_number",
            "sampling",
            "show_ground_truth_first",
            "annotator_evaluation_enabled",
            "show_overlap_first",
            "overlap_cohort_percentage",
            "task_data_login",
            "task_data_password",
            "control_weights",
            "parsed_label_config",
            "evaluate_predictions_automatically",
            "config_has_control_tags",
            "skip_queue",
            "reveal_preannotations_interactively",
            "pinned_at",
            "finished_task_number",
            "queue_total",
            "queue_done",
            "config_suitable_for_bulk_annotation",
            "state",
        ]
        read_only_fields = ["id", "organization", "created_by", "created_at"]
        extra_kwargs = {"label_config": {"trim_whitespace": False}}

    def validate_label_config(self, value: str) -> str:
        return checked_label_config(value)

    def validate_control_weights(self, value):
        # A form field's text "null" is parsed to None after DRF's own null check has passed.
        if not isinstance(value, dict):
            raise serializers.ValidationError("Expected an object of control names to weights.")
        if _holds_nul(value):  # PostgreSQL's jsonb refuses \u0000
            raise serializers.ValidationError("Null characters are not allowed.")
        return value

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_parsed_label_config(self, project) -> dict:
        return parsed_config_or_empty(project)

    def get_config_has_control_tags(self, project) -> bool:
        return label_config.config_has_control_tags(parsed_config_or_empty(project))

    def get_config_suitable_for_bulk_annotation(self, project) -> bool:
        return _config_facts(project.label_config or "")[1]

    @extend_schema_field({"type": "string", "nullable": True})
    def get_state(self, project) -> str | None:
        return None


# Project fields a list can be ordered by: the stored ones and the counters, not those computed in Python.
UNSORTABLE_FIELDS = frozenset(
    {
        "parsed_label_config",
        "config_has_control_tags",
        "config_suitable_for_bulk_annotation",
        "state",
        "control_weights",
    }
)
ORDERING_FIELDS = tuple(name for name in ProjectSerializer.Meta.fields if name not in UNSORTABLE_FIELDS)


class ProjectSimpleSerializer(DynamicFieldsMixin, serializers.Serializer):
    """The compact project nested by `?expand=project`."""

    id = serializers.IntegerField(read_only=True)
    title = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True)
    label_config = serializers.CharField(read_only=True)
    organization = serializers.IntegerField(source="organization_id", read_only=True)
    created_at = serializers.DateTimeField(read_only=True)


class ProjectCountsSerializer(DynamicFieldsMixin, serializers.ModelSerializer):
    task_number = serializers.IntegerField(read_only=True)
    finished_task_number = serializers.IntegerField(read_only=True)
    total_predictions_number = serializers.IntegerField(read_only=True)
    total_annotations_number = serializers.IntegerField(read_only=True)
    num_tasks_with_annotations = serializers.IntegerField(read_only=True)
    useful_annotation_number = serializers.IntegerField(read_only=True)
    ground_truth_number = serializers.IntegerField(read_only=True)
    skipped_annotations_number = serializers.IntegerField(read_only=True)

    class Meta:
        model = Project
        fields = ["id", *COUNTER_FIELDS]


class ProjectListParamsSerializer(serializers.Serializer):
    """Query parameters of the project lists besides paging, ordering and the sparse-field ones."""

    title = serializers.CharField(required=False, help_text="Keep projects whose title contains this (any case).")
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=0), required=False, help_text="Comma-separated project ids."
    )
    filter = serializers.ChoiceField(
        choices=["all", "pinned_only", "exclude_pinned"], default="all", help_text="Pinned projects only or none."
    )
    search = serializers.CharField(required=False, help_text="Keep projects whose title or description contains this.")


class ProjectLabelConfigSerializer(serializers.Serializer):
    label_config = serializers.CharField(trim_whitespace=False, help_text="Labeling config (XML) to check.")

    def validate_label_config(self, value: str) -> str:
        return checked_label_config(value)


class ProjectLabelConfigValidationSerializer(serializers.Serializer):
    config_essential_data_has_changed = serializers.BooleanField(
        help_text="Whether the config adds a control, changes a control's type or inputs, or drops a label."
    )


class ProjectDuplicateSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(
        choices=DUPLICATE_MODES, help_text="`settings`: the configuration only; `settings,data`: also the tasks."
    )
    title = serializers.CharField(max_length=50, help_text="Title of the new project.")
    description = serializers.CharField(
        required=False, allow_blank=True, help_text="Description of the new project (default: the original's)."
    )
    workspace = serializers.IntegerField(
        required=False, allow_null=True, help_text="Accepted for compatibility and ignored: there are no workspaces."
    )


class ProjectDuplicateResponseSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Id of the new project.")


class ImportResponseSerializer(serializers.Serializer):
    task_count = serializers.IntegerField()
    annotation_count = serializers.IntegerField()
    prediction_count = serializers.IntegerField()
    predictions_count = serializers.IntegerField()
    duration = serializers.FloatField()
    file_upload_ids = serializers.ListField(child=serializers.IntegerField())
    could_be_tasks_list = serializers.BooleanField()
    found_formats = serializers.JSONField(help_text="{extension: count} for uploaded files; [] for a JSON body")
    data_columns = serializers.ListField(child=serializers.CharField())
    task_ids = serializers.ListField(child=serializers.IntegerField(), required=False)


class PredictionImportSerializer(serializers.Serializer):
    task = serializers.IntegerField(min_value=1)
    result = serializers.ListField(child=serializers.DictField(), allow_empty=True)
    score = serializers.FloatField(required=False, allow_null=True)
    model_version = serializers.CharField(required=False, allow_blank=True, default="")


class PredictionImportResponseSerializer(serializers.Serializer):
    created = serializers.IntegerField()
