from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.files import ranged_file_response
from config.api.pagination import OptionalPagination
from config.api.views import DynamicFieldsViewMixin
from exports import storage
from exports.exceptions import ExportFileMissing, ExportNotCompleted
from exports.models import Export, Status
from exports.serializers import ExportCreateResponseSerializer, ExportCreateSerializer, ExportSerializer
from exports.services import export_create, exports_delete
from projects.models import Project
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
        exports = Export.objects.filter(
            project_id=self.kwargs["pk"], project__in=Project.objects.visible_to(self.request.user)
        ).with_api_relations()
        return get_object_or_404(exports, pk=self.kwargs["export_pk"])


@extend_schema_view(
    get=extend_schema(operation_id="api_projects_exports_retrieve"),
    delete=extend_schema(operation_id="api_projects_exports_destroy"),
)
class ExportDetailAPI(ExportMixin, DynamicFieldsViewMixin, generics.RetrieveDestroyAPIView):
    serializer_class = ExportSerializer

    def get_object(self):
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
