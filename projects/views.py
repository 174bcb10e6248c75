"""Project endpoints at Label Studio's paths: list, counts, detail, import, duplicate, annotators, validate."""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.db.models import F, Q
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import filters, generics, serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.pagination import ProjectPagination
from config.api.parsers import JSONParser
from config.api.views import DynamicFieldsViewMixin, read_list_param
from projects.exceptions import ImportRejected
from projects.models import COUNTER_FIELDS, MAX_ROW_ID, Project
from projects.selectors import project_annotators, project_or_404
from projects.serializers import (
    ORDERING_FIELDS,
    ImportResponseSerializer,
    PredictionImportResponseSerializer,
    PredictionImportSerializer,
    ProjectCountsSerializer,
    ProjectDuplicateResponseSerializer,
    ProjectDuplicateSerializer,
    ProjectLabelConfigSerializer,
    ProjectLabelConfigValidationSerializer,
    ProjectListParamsSerializer,
    ProjectSerializer,
)
from projects.services import (
    predictions_import,
    project_config_validate,
    project_create,
    project_delete,
    project_duplicate,
    project_update,
    tasks_import,
)
from projects.uploads import IMPORT_BODY_PARSERS, limit_upload_size, paused_gc
from users.models import User
from users.serializers import UserSimpleSerializer

INCLUDE_PARAMETER = OpenApiParameter(
    "include", OpenApiTypes.STR, description="Comma-separated fields to return (Label Studio's name for `fields`)."
)


def visible_projects(request):
    return Project.objects.visible_to(request.user)


if TYPE_CHECKING:
    _View = APIView  # what the mixins below are mixed into, for the type checker
else:
    _View = object


class ProjectMixin(_View):
    """Resolves the project of the URL inside the caller's organization (404 otherwise)."""

    def get_project(self) -> Project:
        return project_or_404(user=self.request.user, project_id=self.kwargs["pk"])


class ProjectFilter(filters.BaseFilterBackend):
    """Label Studio's project list filters: `title`, `ids`, `filter` (pinned or not) and `search`."""

    def filter_queryset(self, request, queryset, view):
        params = {}
        for name in ("title", "filter", "search"):
            if request.query_params.get(name):
                params[name] = request.query_params[name]
        if ids := read_list_param(request.query_params, "ids"):
            params["ids"] = ids
        serializer = ProjectListParamsSerializer(data=params)
        serializer.is_valid(raise_exception=True)
        options = serializer.validated_data
        if options.get("title"):
            queryset = queryset.filter(title__icontains=options["title"])
        if "ids" in options:
            queryset = queryset.filter(pk__in=[pk for pk in options["ids"] if pk <= MAX_ROW_ID])
        if options["filter"] != "all":
            queryset = queryset.filter(pinned_at__isnull=options["filter"] == "exclude_pinned")
        if options.get("search"):
            term = options["search"]
            queryset = queryset.filter(Q(title__icontains=term) | Q(description__icontains=term))
        return queryset

    def get_schema_operation_parameters(self, view):
        parameters = []
        for name, field in ProjectListParamsSerializer().fields.items():
            schema: dict[str, Any] = {"type": "string"}
            if name == "filter":
                assert isinstance(field, serializers.ChoiceField)
                schema["enum"] = list(field.choices)
            parameters.append(
                {"name": name, "in": "query", "required": False, "description": field.help_text, "schema": schema}
            )
        return parameters


class ProjectOrdering(filters.OrderingFilter):
    """`ordering=` over the fields Label Studio allows; an unknown field is a 400 naming the valid ones (Label
    Studio drops it silently). Equal values keep id order, so pages never overlap."""

    def remove_invalid_fields(self, queryset, fields, view, request):
        valid = [name for name, _label in self.get_valid_fields(queryset, view, {"request": request})]
        terms = [term for term in fields if term]
        unknown = [term for term in terms if term.lstrip("-") not in valid]
        if unknown:
            message = f"Unknown field '{unknown[0].lstrip('-')}'. Valid: {', '.join(valid)}"
            raise ValidationError({self.ordering_param: [message]})
        return terms

    def get_ordering(self, request, queryset, view):
        ordering = super().get_ordering(request, queryset, view)
        if ordering is not None and request.query_params.get(self.ordering_param) and not {"id", "-id"} & set(ordering):
            ordering = [*ordering, "id"]
        return ordering


def requested_names(view) -> set[str] | None:
    """Fields a list request renders or sorts by, or None for all: computed values nobody asked for are skipped."""
    fields = view.field_kwargs.get("fields")
    if not fields:
        return None
    ordering = read_list_param(view.request.query_params, "ordering")
    return {name.partition(".")[0] for name in fields} | {term.lstrip("-") for term in ordering}


@extend_schema_view(
    get=extend_schema(
        operation_id="api_projects_list",
        parameters=[INCLUDE_PARAMETER],
    ),
    post=extend_schema(operation_id="api_projects_create"),
)
class ProjectListAPI(DynamicFieldsViewMixin, generics.ListCreateAPIView):
    serializer_class = ProjectSerializer
    pagination_class = ProjectPagination
    filter_backends = [ProjectFilter, ProjectOrdering]
    ordering_fields = ORDERING_FIELDS
    # Label Studio's order: pinned projects first, then the newest.
    ordering = [F("pinned_at").desc(nulls_last=True), "-created_at", "-id"]
    fields_aliases = ("include",)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Project.objects.none()
        names = requested_names(self) if self.request.method == "GET" else None
        return visible_projects(self.request).with_api_relations(self.request.user, names)

    def perform_create(self, serializer):
        user = self.request.user
        assert isinstance(user, User)  # IsAuthenticated lets only users in
        organization = user.active_organization
        if organization is None:
            raise PermissionDenied("You have no active organization to create the project in.")
        project = project_create(organization=organization, created_by=user, **serializer.validated_data)
        serializer.instance = Project.objects.with_api_relations(user).get(pk=project.pk)


@extend_schema_view(get=extend_schema(operation_id="api_projects_counts_list", parameters=[INCLUDE_PARAMETER]))
class ProjectCountsAPI(DynamicFieldsViewMixin, generics.ListAPIView):
    serializer_class = ProjectCountsSerializer
    pagination_class = ProjectPagination
    filter_backends = [ProjectFilter, ProjectOrdering]
    ordering_fields = ["id", "title", "created_at", *COUNTER_FIELDS]
    ordering = ["id"]
    fields_aliases = ("include",)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Project.objects.none()
        names = requested_names(self)
        return visible_projects(self.request).with_counters(COUNTER_FIELDS if names is None else names)


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
        projects = visible_projects(self.request)
        if self.request.method not in ("GET", "HEAD"):
            return projects  # a write reads the computed values once it is done (see perform_update)
        return projects.with_api_relations(self.request.user, requested_names(self))

    def perform_update(self, serializer):
        project_update(project=serializer.instance, **serializer.validated_data)
        serializer.instance = Project.objects.with_api_relations(self.request.user).get(pk=serializer.instance.pk)

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
    parser_classes = [*IMPORT_BODY_PARSERS, MultiPartParser]

    def initialize_request(self, request, *args, **kwargs):
        limit_upload_size(request)  # before anything (authentication included) reads a multipart body
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(
        operation_id="api_projects_import_create",
        description=(
            "Import tasks (with their `annotations` and `predictions`) from a JSON list, or one task object. "
            "Files are accepted too, as `multipart/form-data` with one or more file fields (JSON, JSONL, CSV, "
            "TSV), and so are raw JSON Lines (`application/x-ndjson` or `application/jsonl`), CSV (`text/csv`) "
            "and TSV (`text/tab-separated-values`) bodies. Bodies and files are read as the import goes, so their "
            "size does not set the memory it takes; every import is all or nothing."
        ),
        # Only the JSON body is in the schema: openapi-python-client cannot dispatch between a JSON list and a
        # multipart body (it would test `isinstance(body, list[...])`), so listing both breaks the JSON import.
        request={"application/json": {"type": "array", "items": {"type": "object", "additionalProperties": True}}},
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


class ProjectAnnotatorsAPI(DynamicFieldsViewMixin, ProjectMixin, generics.GenericAPIView):
    serializer_class = UserSimpleSerializer

    @extend_schema(
        operation_id="api_projects_annotators_retrieve",
        summary="List unique annotators for project",
        responses={200: UserSimpleSerializer(many=True)},
    )
    def get(self, request, pk):
        users = project_annotators(project=self.get_project())
        return Response(self.get_serializer(users, many=True).data)


class ProjectDuplicateAPI(ProjectMixin, generics.GenericAPIView):
    serializer_class = ProjectDuplicateSerializer

    @extend_schema(
        operation_id="api_projects_duplicate_create",
        summary="Duplicate project",
        request=ProjectDuplicateSerializer,
        responses={201: ProjectDuplicateResponseSerializer},
    )
    def post(self, request, pk):
        project = self.get_project()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        options = serializer.validated_data
        copy = project_duplicate(
            project=project,
            created_by=request.user,
            title=options["title"],
            description=options.get("description"),
            with_data=options["mode"] == "settings,data",
        )
        return Response({"id": copy.pk}, status=status.HTTP_201_CREATED)


class ProjectLabelConfigValidateAPI(ProjectMixin, generics.GenericAPIView):
    serializer_class = ProjectLabelConfigSerializer

    @extend_schema(
        operation_id="api_projects_validate_label_config",
        summary="Validate project label config",
        request=ProjectLabelConfigSerializer,
        responses={200: ProjectLabelConfigValidationSerializer},
    )
    def post(self, request, pk):
        project = self.get_project()
        xml = request.data.get("label_config") if isinstance(request.data, Mapping) else None
        changed = project_config_validate(project=project, xml=xml)
        return Response({"config_essential_data_has_changed": changed})


class LabelConfigValidateAPI(generics.GenericAPIView):
    serializer_class = ProjectLabelConfigSerializer

    @extend_schema(
        operation_id="api_projects_validate_create",
        summary="Validate label config",
        request=ProjectLabelConfigSerializer,
        responses={204: None},
    )
    def post(self, request):
        self.get_serializer(data=request.data).is_valid(raise_exception=True)
        return Response(status=status.HTTP_204_NO_CONTENT)
