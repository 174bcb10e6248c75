"""Snapshot output (the contract's body) and the input of snapshot requests and conversions."""

from types import SimpleNamespace
from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from config.api.serializers import DynamicFieldsMixin
from exports.formats import ExportTypeInvalid, check_export_type
from exports.models import Status
from exports.selectors import since_export_problem
from projects.serializers import ProjectSimpleSerializer
from users.serializers import UserSimpleSerializer

FILTER_MODES = ["only", "exclude"]


class ConvertedFormatSerializer(DynamicFieldsMixin, serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    status = serializers.ChoiceField(Status.choices, read_only=True)
    export_type = serializers.CharField(read_only=True)
    traceback = serializers.CharField(read_only=True, allow_null=True)


class ExportSerializer(DynamicFieldsMixin, serializers.Serializer):
    """The export snapshot of the contract (spec/API.md §3).

    Declared field by field rather than as a ModelSerializer, which rebuilds its fields from the model on
    every use: this is the hottest read of the service.
    """

    title = serializers.CharField(read_only=True)
    id = serializers.IntegerField(read_only=True)
    created_by = UserSimpleSerializer(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    finished_at = serializers.DateTimeField(read_only=True, allow_null=True)
    status = serializers.ChoiceField(Status.choices, read_only=True)
    md5 = serializers.CharField(read_only=True)
    counters = serializers.JSONField(read_only=True, allow_null=True)
    converted_formats = ConvertedFormatSerializer(many=True, read_only=True)
    since_export = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="Incremental snapshots only (our extension): the earlier snapshot this one holds the changes since.",
    )

    class Meta:
        expandable_fields = {"project": lambda: ProjectSimpleSerializer(read_only=True)}

    def to_representation(self, instance):
        # A full snapshot shows exactly Label Studio's fields; only an incremental one adds `since_export`.
        data = super().to_representation(instance)
        if data.get("since_export", 0) is None:
            del data["since_export"]
        return data


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
    since_export = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        help_text=(
            "Our extension: the id of an earlier completed snapshot of this project. The new snapshot then holds only "
            "the tasks created or changed since that one read them (the options above still apply), and lists the "
            "ids of tasks deleted since in a file downloaded with `exportType=DELETED_IDS`."
        ),
    )

    def validate_since_export(self, value: int | None) -> int | None:
        if value is not None and (
            problem := since_export_problem(project_id=self.context["project_id"], export_id=value)
        ):
            raise serializers.ValidationError(problem)
        return value


@extend_schema_serializer(component_name="ExportCreate")  # Label Studio's component name
class ExportCreateResponseSerializer(ExportSerializer):
    """The created snapshot plus the options it applies."""

    task_filter_options = serializers.JSONField(read_only=True, allow_null=True)
    annotation_filter_options = serializers.JSONField(read_only=True, allow_null=True)
    serialization_options = serializers.JSONField(read_only=True, allow_null=True)


class ExportFormatSerializer(serializers.Serializer):
    """One entry of a project's export formats list (Label Studio's shape, without its documentation `link`)."""

    name = serializers.CharField(read_only=True, help_text="The value to send as `export_type`/`exportType`.")
    title = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True)
    # Not read-only: the schema would then list them as always present, and they are only there when they apply.
    tags = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Present when the format has tags."
    )
    disabled = serializers.BooleanField(
        required=False, help_text="Present, and true, when the project's label config cannot use it."
    )


class ExportConvertSerializer(serializers.Serializer):
    """Input of a conversion; `enabled_formats` (names) comes in the context."""

    export_type = serializers.CharField(help_text="The format to convert the snapshot to, e.g. CSV (case-sensitive).")
    download_resources = serializers.BooleanField(
        required=False, default=False, help_text="Let converters that pack media files fetch them."
    )

    def validate_export_type(self, value: str) -> str:
        try:
            return check_export_type(value, enabled=self.context["enabled_formats"]).name
        except ExportTypeInvalid as exc:
            raise serializers.ValidationError(str(exc)) from exc


class ExportConvertResponseSerializer(serializers.Serializer):
    export_type = serializers.CharField(read_only=True)
    converted_format = serializers.IntegerField(read_only=True, help_text="The id of the conversion's row.")


class ExportFileSerializer(serializers.Serializer):
    name = serializers.CharField(read_only=True, help_text="The file's name without its extension.")
    url = serializers.CharField(read_only=True, help_text="Where to download it (with the same credentials).")


class ExportFilesSerializer(serializers.Serializer):
    export_files = ExportFileSerializer(many=True, read_only=True)


# The hot read path (GET snapshot, list) renders ExportSerializer's output without instantiating it: DRF copies every
# field object of a serializer, nested ones included, on each use, which cost more than the rest of a detail read.
# Stateless: renders a datetime exactly as ExportSerializer's date fields do.
_DATETIME = serializers.DateTimeField()


def _creator_representation(user: SimpleNamespace | None, request) -> dict[str, Any] | None:
    if user is None:
        return None
    avatar = None
    if user.avatar:  # as UserSimpleSerializer.get_avatar
        avatar = request.build_absolute_uri(user.avatar.url) if request is not None else user.avatar.url
    return {
        "id": user.id,
        "username": _text(user.username),
        "first_name": _text(user.first_name),
        "last_name": _text(user.last_name),
        "email": _text(user.email),
        "avatar": avatar,
    }


def _text(value) -> str | None:
    return None if value is None else str(value)


def export_representation(body: SimpleNamespace, request) -> dict[str, Any]:
    """ExportSerializer's output for a snapshot body of `selectors` with the default fields (nothing expanded),
    built without the serializer: a serializer copies all its field objects, nested ones included, on every use,
    which cost more than the rest of a detail read together. tests/exports/test_api_export_representation.py
    holds it to the serializer's output; a field added to the serializer must be added here too."""
    data: dict[str, Any] = {
        "title": _text(body.title),
        "id": body.id,
        "created_by": _creator_representation(body.created_by, request),
        "created_at": _DATETIME.to_representation(body.created_at),
        "finished_at": _DATETIME.to_representation(body.finished_at),
        "status": body.status,
        "md5": _text(body.md5),
        "counters": body.counters,
        "converted_formats": [
            {"id": cf.id, "status": cf.status, "export_type": _text(cf.export_type), "traceback": _text(cf.traceback)}
            for cf in body.converted_formats
        ],
    }
    if body.since_export is not None:  # as ExportSerializer.to_representation: incremental snapshots only
        data["since_export"] = body.since_export
    return data
