from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.files import ranged_file_response
from config.api.pagination import OptionalPagination
from config.api.views import DynamicFieldsViewMixin
from exports import easy, storage
from exports.exceptions import ExportFileMissing, ExportNotCompleted
from exports.models import Export, Status
from exports.selectors import export_for_api
from exports.serializers import ExportCreateResponseSerializer, ExportCreateSerializer, ExportSerializer
from exports.services import export_create, exports_delete
from projects.views import ProjectMixin

LIST_LIMIT = 100
SNAPSHOT_TYPES = {"JSON"}


@extend_schema_view(
    get=extend_schema(operation_id="api_projects_exports_list"),
)
class ExportListAPI(ProjectMixin, DynamicFieldsViewMixin, generics.ListAPIView):
    serializer_class = ExportSerializer
    pagination_class = OptionalPagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Export.objects.none()
        return self.get_project().exports.with_api_relations().order_by("-created_at", "-id")

    def list(self, request, *args, **kwargs):
        queryset = self.get_queryset()
        page = self.paginate_queryset(queryset)
        if page is not None:
            return self.get_paginated_response(self.get_serializer(page, many=True).data)
        return Response(self.get_serializer(queryset[:LIST_LIMIT], many=True).data)

    @extend_schema(
        operation_id="api_projects_exports_create",
        request=ExportCreateSerializer,
        responses={201: ExportCreateResponseSerializer},
    )
    def post(self, request, pk):
        project = self.get_project()
        serializer = ExportCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        export = export_create(project=project, created_by=request.user, **serializer.validated_data)
        export = Export.objects.with_api_relations().get(pk=export.pk)
        data = ExportCreateResponseSerializer(export, context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_201_CREATED)


class ExportMixin:
    def get_export(self) -> Export:
        """The export of the URL's project inside the caller's organization, in one query (404 otherwise)."""
        user = self.request.user
        exports = Export.objects.filter(
            project_id=self.kwargs["pk"], project__organization_id=user.active_organization_id
        ).with_api_relations()
        return get_object_or_404(exports, pk=self.kwargs["export_pk"])


@extend_schema_view(
    get=extend_schema(operation_id="api_projects_exports_retrieve"),
    delete=extend_schema(operation_id="api_projects_exports_destroy"),
)
class ExportDetailAPI(ExportMixin, DynamicFieldsViewMixin, generics.RetrieveDestroyAPIView):
    serializer_class = ExportSerializer

    def get_object(self):
        if self.request.method in ("GET", "HEAD"):
            export = export_for_api(
                project_id=self.kwargs["pk"],
                export_id=self.kwargs["export_pk"],
                organization_id=self.request.user.active_organization_id,
            )
            if export is None:
                raise NotFound("No Export matches the given query.")
            return export
        return self.get_export()

    def perform_destroy(self, instance):
        exports_delete(exports=Export.objects.filter(pk=instance.pk))


class ExportDownloadAPI(ExportMixin, APIView):
    @extend_schema(
        operation_id="api_projects_exports_download_retrieve",
        parameters=[OpenApiParameter("exportType", OpenApiTypes.STR, description="JSON (default)")],
        responses={
            (200, "application/json"): OpenApiResponse(OpenApiTypes.BINARY, description="The snapshot file"),
            (206, "application/json"): OpenApiResponse(OpenApiTypes.BINARY, description="A byte range of it"),
        },
    )
    def get(self, request, pk, export_pk):
        export = self.get_export()
        export_type = request.query_params.get("exportType") or request.query_params.get("export_type") or "JSON"
        if export_type not in SNAPSHOT_TYPES:
            valid = ", ".join(sorted(SNAPSHOT_TYPES))
            raise ValidationError({"exportType": [f"{export_type} is not a supported export type. Valid: {valid}"]})
        if export.status != Status.COMPLETED or not export.file:
            raise ExportNotCompleted(f"Export is not completed (status: {export.status}).")
        try:
            handle = storage.export_storage().open(export.file, "rb")
            size = storage.export_storage().size(export.file)
        except FileNotFoundError as exc:
            raise ExportFileMissing() from exc
        return ranged_file_response(
            request, handle, size=size, content_type="application/json", filename=export.download_name("json")
        )


class ExportAPI(ProjectMixin, APIView):
    """Label Studio's easy export: the project's tasks as one file, streamed while it is built."""

    class InputSerializer(serializers.Serializer):
        exportType = serializers.CharField(required=False, allow_blank=True)  # Label Studio's name for export_type
        export_type = serializers.CharField(required=False, allow_blank=True)
        download_all_tasks = serializers.BooleanField(default=False)
        download_resources = serializers.BooleanField(default=True)
        interpolate_key_frames = serializers.BooleanField(default=False)
        ids = serializers.ListField(child=serializers.CharField(allow_blank=True), required=False)

        def validate_ids(self, values: list[str]) -> list[int] | None:
            """`ids=1&ids=2`, `ids[]=1&ids[]=2` and `ids=1,2` in any mix; empty items are skipped."""
            ids = set()
            for piece in (piece.strip() for value in values for piece in value.split(",")):
                if not piece:
                    continue
                if not piece.isascii() or not piece.isdigit() or len(piece) > 18:
                    raise ValidationError(f"'{piece}' is not a task id: give integers, e.g. ids=1,2.")
                ids.add(int(piece))
            return sorted(ids) if ids else None

        def validate(self, attrs):
            name = "exportType" if attrs.get("exportType") else "export_type"
            export_type = attrs.pop("exportType", "") or attrs.get("export_type") or "JSON"
            if export_type not in easy.EXPORT_TYPES:
                valid = ", ".join(easy.EXPORT_TYPES)
                raise ValidationError({name: [f"{export_type} is not a supported export type. Valid: {valid}"]})
            return {**attrs, "export_type": export_type}

    SCALAR_PARAMS = ("exportType", "export_type", "download_all_tasks", "download_resources", "interpolate_key_frames")

    @classmethod
    def read_params(cls, params) -> dict:
        """The query as serializer input: scalars by name, `ids` and `ids[]` pooled into one list.

        A plain dict, not the QueryDict: DRF reads a boolean missing from form-like data as false, not its default.
        """
        data = {name: params[name] for name in cls.SCALAR_PARAMS if name in params}
        ids = params.getlist("ids[]") + params.getlist("ids")
        if ids:
            data["ids"] = ids
        return data

    def perform_content_negotiation(self, request, force=False):
        # The body is the file whatever the client says it accepts (errors are JSON in any case).
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        operation_id="api_projects_export_retrieve",
        summary="Easy export",
        description=(
            "Streams the project's tasks as one file while it is built. By default only tasks with at least "
            "one annotation (cancelled ones included) are exported; `download_all_tasks=true` exports them all. "
            "`download_resources` is accepted for compatibility and ignored: media files are never bundled."
        ),
        parameters=[
            OpenApiParameter(
                "export_type", OpenApiTypes.STR, enum=easy.EXPORT_TYPES, default="JSON", description="Export format."
            ),
            OpenApiParameter(
                "exportType",
                OpenApiTypes.STR,
                enum=easy.EXPORT_TYPES,
                description="Another name for `export_type` (the one Label Studio's UI sends); wins over it.",
            ),
            OpenApiParameter(
                "download_all_tasks",
                OpenApiTypes.BOOL,
                default=False,
                description="Export every task, not only those with annotations.",
            ),
            OpenApiParameter(
                "download_resources", OpenApiTypes.BOOL, description="Accepted and ignored (no media files)."
            ),
            OpenApiParameter(
                "interpolate_key_frames",
                OpenApiTypes.BOOL,
                default=False,
                description="Expand video rectangle key frames into one entry per frame.",
            ),
            OpenApiParameter(
                "ids",
                OpenApiTypes.INT,
                many=True,
                description="Only these task ids; `ids[]=1&ids[]=2` and `ids=1,2` are accepted too.",
            ),
        ],
        responses={
            (200, "application/json"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The export file: a JSON array of tasks (JSON) or records (JSON_MIN)"
            ),
        },
    )
    def get(self, request, pk):
        project = self.get_project()
        serializer = self.InputSerializer(data=self.read_params(request.query_params))
        serializer.is_valid(raise_exception=True)
        options = serializer.validated_data
        if request.method == "HEAD":
            chunks = iter(())  # the headers only, without building the file
        else:
            chunks = easy.easy_export_stream(
                project=project,
                export_type=options["export_type"],
                download_all_tasks=options["download_all_tasks"],
                task_ids=options.get("ids"),
                interpolate_key_frames=options["interpolate_key_frames"],
            )
        name = easy.easy_export_name(project_id=project.pk)
        response = StreamingHttpResponse(chunks, content_type="application/json")
        response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=name)
        response["filename"] = name
        return response
