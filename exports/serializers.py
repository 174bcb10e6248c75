from rest_framework import serializers

from config.api.serializers import DynamicFieldsMixin
from exports.models import ConvertedFormat, Export
from projects.serializers import ProjectSimpleSerializer
from users.serializers import UserSimpleSerializer

FILTER_MODES = ["only", "exclude"]


class ConvertedFormatSerializer(DynamicFieldsMixin, serializers.ModelSerializer):
    class Meta:
        model = ConvertedFormat
        fields = ["id", "status", "export_type", "traceback"]


class ExportSerializer(DynamicFieldsMixin, serializers.ModelSerializer):
    """The export snapshot of the contract (spec/API.md §3)."""

    created_by = UserSimpleSerializer(read_only=True, allow_null=True)
    converted_formats = ConvertedFormatSerializer(many=True, read_only=True)
    counters = serializers.JSONField(read_only=True, allow_null=True)

    class Meta:
        model = Export
        fields = [
            "title",
            "id",
            "created_by",
            "created_at",
            "finished_at",
            "status",
            "md5",
            "counters",
            "converted_formats",
        ]
        read_only_fields = fields
        expandable_fields = {"project": lambda: ProjectSimpleSerializer(read_only=True)}


class TaskFilterOptionsSerializer(serializers.Serializer):
    view = serializers.IntegerField(required=False, allow_null=True, default=None)
    skipped = serializers.ChoiceField(FILTER_MODES, required=False, allow_null=True, default=None)
    finished = serializers.ChoiceField(FILTER_MODES, required=False, allow_null=True, default=None)
    annotated = serializers.ChoiceField(FILTER_MODES, required=False, allow_null=True, default=None)
    only_with_annotations = serializers.BooleanField(required=False, default=False)

    def validate_view(self, value):
        if value is not None:
            raise serializers.ValidationError(
                f"View {value} does not exist: this service has no saved Data Manager views."
            )
        return value


class AnnotationFilterOptionsSerializer(serializers.Serializer):
    usual = serializers.BooleanField(required=False, allow_null=True, default=True)
    ground_truth = serializers.BooleanField(required=False, allow_null=True, default=False)
    skipped = serializers.BooleanField(required=False, allow_null=True, default=False)


class OnlyIdSerializer(serializers.Serializer):
    only_id = serializers.BooleanField(required=False, default=True)


class SerializationOptionsSerializer(serializers.Serializer):
    drafts = OnlyIdSerializer(required=False, default={"only_id": True})
    predictions = OnlyIdSerializer(required=False, default={"only_id": True})
    annotations__completed_by = OnlyIdSerializer(required=False, default={"only_id": True})
    include_annotation_history = serializers.BooleanField(required=False, default=False)
    interpolate_key_frames = serializers.BooleanField(required=False, default=False)


class ExportCreateSerializer(serializers.Serializer):
    """Input of a snapshot request; status, md5 and the other read-only fields are ignored."""

    title = serializers.CharField(max_length=2048, required=False, allow_blank=True, default="")
    task_filter_options = TaskFilterOptionsSerializer(required=False, allow_null=True, default=None)
    annotation_filter_options = AnnotationFilterOptionsSerializer(required=False, allow_null=True, default=None)
    serialization_options = SerializationOptionsSerializer(required=False, allow_null=True, default=None)


class ExportCreateResponseSerializer(ExportSerializer):
    """The created snapshot plus the options it applies."""

    task_filter_options = serializers.JSONField(read_only=True, allow_null=True)
    annotation_filter_options = serializers.JSONField(read_only=True, allow_null=True)
    serialization_options = serializers.JSONField(read_only=True, allow_null=True)

    class Meta(ExportSerializer.Meta):
        fields = [
            *ExportSerializer.Meta.fields,
            "task_filter_options",
            "annotation_filter_options",
            "serialization_options",
        ]
        read_only_fields = fields
