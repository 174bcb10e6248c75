from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view, inline_serializer
from rest_framework import filters, generics, serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.pagination import ProjectPagination
from config.api.views import DynamicFieldsViewMixin
from projects.exceptions import ImportRejected
from projects.imports import ImportJSONParser, limit_upload_size, paused_gc
from projects.models import Project
from projects.serializers import (
    ImportResponseSerializer,
    PredictionImportResponseSerializer,
    PredictionImportSerializer,
    ProjectCountsSerializer,
    ProjectSerializer,
)
from projects.services import predictions_import, project_create, project_delete, project_update, tasks_import


def visible_projects(request):
    return Project.objects.visible_to(request.user)


class ProjectMixin:
    """Resolves the project of the URL inside the caller's organization (404 otherwise)."""

    def get_project(self) -> Project:
        return get_object_or_404(visible_projects(self.request), pk=self.kwargs["pk"])


class TitleFilter(filters.BaseFilterBackend):
    def filter_queryset(self, request, queryset, view):
        title = request.query_params.get("title")
        return queryset.filter(title__icontains=title) if title else queryset

    def get_schema_operation_parameters(self, view):
        return [{"name": "title", "in": "query", "required": False, "schema": {"type": "string"}}]


@extend_schema_view(
    get=extend_schema(
        operation_id="api_projects_list",
        parameters=[OpenApiParameter("include", OpenApiTypes.STR, description="Comma-separated fields to return.")],
    ),
    post=extend_schema(operation_id="api_projects_create"),
)
class ProjectListAPI(DynamicFieldsViewMixin, generics.ListCreateAPIView):
    serializer_class = ProjectSerializer
    pagination_class = ProjectPagination
    filter_backends = [TitleFilter, filters.OrderingFilter]
    ordering_fields = ["id", "title", "created_at", "pinned_at", "task_number", "finished_task_number"]
    ordering = ["-id"]
    fields_aliases = ("include",)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Project.objects.none()
        return visible_projects(self.request).with_api_relations()

    def perform_create(self, serializer):
        user = self.request.user
        if user.active_organization_id is None:
            raise PermissionDenied("You have no active organization to create the project in.")
        project = project_create(organization=user.active_organization, created_by=user, **serializer.validated_data)
        serializer.instance = Project.objects.with_api_relations().get(pk=project.pk)


@extend_schema_view(get=extend_schema(operation_id="api_projects_counts_list"))
class ProjectCountsAPI(DynamicFieldsViewMixin, generics.ListAPIView):
    serializer_class = ProjectCountsSerializer
    pagination_class = ProjectPagination
    filter_backends = [TitleFilter, filters.OrderingFilter]
    ordering_fields = ["id", "title", "created_at"]
    ordering = ["id"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Project.objects.none()
        return visible_projects(self.request).with_counters()


@extend_schema_view(
    get=extend_schema(operation_id="api_projects_retrieve"),
    patch=extend_schema(operation_id="api_projects_partial_update"),
    put=extend_schema(operation_id="api_projects_update", exclude=True),
    delete=extend_schema(operation_id="api_projects_destroy"),
)
class ProjectDetailAPI(DynamicFieldsViewMixin, generics.RetrieveUpdateDestroyAPIView):
    serializer_class = ProjectSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Project.objects.none()
        return visible_projects(self.request).with_api_relations()

    def perform_update(self, serializer):
        project_update(project=serializer.instance, **serializer.validated_data)
        serializer.instance = self.get_queryset().get(pk=serializer.instance.pk)

    def perform_destroy(self, instance):
        project_delete(project=instance)


def read_bool(params, name: str, default: bool = False) -> bool:
    value = params.get(name)
    if value in (None, ""):
        return default
    lowered = value.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValidationError({name: ["Must be a valid boolean."]})


class ProjectImportAPI(ProjectMixin, APIView):
    parser_classes = [ImportJSONParser, MultiPartParser]

    def initialize_request(self, request, *args, **kwargs):
        limit_upload_size(request)  # before anything (authentication included) reads a multipart body
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(
        operation_id="api_projects_import_create",
        request={
            "application/json": OpenApiTypes.ANY,
            "multipart/form-data": inline_serializer("ImportFiles", {"file": serializers.FileField()}),
        },
        parameters=[OpenApiParameter("return_task_ids", OpenApiTypes.BOOL)],
        responses={201: ImportResponseSerializer},
    )
    def post(self, request, pk):
        project = self.get_project()
        return_task_ids = read_bool(request.query_params, "return_task_ids")
        with paused_gc():
            uploads = [upload for name in request.FILES for upload in request.FILES.getlist(name)]
            if not uploads and request.content_type.startswith("multipart/"):
                raise ImportRejected("load_tasks: No data found in DATA or in FILES")
            result = tasks_import(project=project, user=request.user, payload=request.data, uploads=uploads)
        return Response(result.as_response(return_task_ids=return_task_ids), status=status.HTTP_201_CREATED)


class PredictionsImportAPI(ProjectMixin, APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="api_projects_import_predictions_create",
        request=PredictionImportSerializer(many=True),
        responses={201: PredictionImportResponseSerializer},
    )
    def post(self, request, pk):
        project = self.get_project()
        serializer = PredictionImportSerializer(data=request.data, many=True)
        serializer.is_valid(raise_exception=True)
        created = predictions_import(project=project, items=serializer.validated_data)
        return Response({"created": created}, status=status.HTTP_201_CREATED)
