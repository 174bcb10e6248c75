"""The export endpoints over HTTP: thin views that read through `selectors`, write through `services` and send
stored files (Range, HEAD, presigned redirects) as the API layer."""

from collections.abc import Callable, Iterable, Iterator
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar

from django.conf import settings
from django.db import transaction
from django.http import FileResponse, HttpResponse, HttpResponseBase, HttpResponseRedirect, StreamingHttpResponse
from django.urls import reverse
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.files import ranged_response
from config.api.pagination import OptionalPagination
from config.api.views import DynamicFieldsViewMixin
from exports import easy, storage
from exports.converters.availability import format_choices, label_config_of
from exports.converters.registry import FORMATS, ConversionError, get_format
from exports.exceptions import ExportConversionFailed, ExportFileMissing, ExportStorageError, StorageUnavailable
from exports.formats import ExportTypeInvalid, check_export_type, enabled_for
from exports.models import Export
from exports.selectors import (
    DELETED_IDS,
    Download,
    completed_exports,
    download_for,
    export_bodies,
    export_body,
    export_for_api,
    exports_body,
)
from exports.serializers import (
    ExportConvertResponseSerializer,
    ExportConvertSerializer,
    ExportCreateResponseSerializer,
    ExportCreateSerializer,
    ExportFilesSerializer,
    ExportFormatSerializer,
    ExportSerializer,
    export_representation,
)
from exports.services import export_convert, export_create, exports_delete
from projects.models import Project
from projects.selectors import hidden_by_label_studio, project_or_404

LIST_LIMIT = 100
_Found = TypeVar("_Found")


if TYPE_CHECKING:
    _View = APIView  # what the mixins below are mixed into, for the type checker
else:
    _View = object


class ProjectMixin(_View):
    """Resolves the project of the URL inside the caller's organization (404 otherwise)."""

    def check_label_studio(self) -> None:
        """Attach mode: 404 when the attached Label Studio says the URL's project does not exist for the caller."""
        if hidden_by_label_studio(user=self.request.user, project_id=self.kwargs["pk"]):
            raise NotFound("No Project matches the given query.")

    def get_project(self, *fields: str) -> Project:
        return project_or_404(user=self.request.user, project_id=self.kwargs["pk"], fields=fields)


def export_type_error(parameter: str, exc: ExportTypeInvalid) -> ValidationError:
    return ValidationError({parameter: [str(exc)]})


def stored_file_response(request, download: Download) -> HttpResponseBase:
    """Send a stored export file: streamed with Range and HEAD support or, with EXPORT_DOWNLOAD_REDIRECT on and an
    object storage, a 302 to a presigned URL that names the file. 404 JSON when the file is gone, 503 JSON
    (without names or paths) when the storage cannot be reached."""
    try:
        if settings.EXPORT_DOWNLOAD_REDIRECT:
            url = storage.presigned_url(download.name, filename=download.filename, content_type=download.content_type)
            if url is not None:
                return HttpResponseRedirect(url)
        size = storage.size(download.name)
    except FileNotFoundError as exc:
        raise ExportFileMissing() from exc
    except ExportStorageError as exc:
        raise StorageUnavailable() from exc
    return ranged_response(
        request,
        lambda start, length: storage.read_chunks(download.name, start, length),
        size=size,
        content_type=download.content_type,
        filename=download.filename,
    )


class ExportBodyViewMixin(DynamicFieldsViewMixin):
    """Renders snapshot bodies from `selectors`: directly (`export_representation`), or through ExportSerializer
    when `expand` or a dotted path asks for what only it does."""

    def represent(self, bodies: Iterable[SimpleNamespace]) -> list[dict[str, Any]]:
        params = self.field_kwargs  # checks the names first (400)
        if "expand" in params or any("." in path for paths in params.values() for path in paths):
            return self.get_serializer(bodies, many=True).data
        only, omit = set(params.get("fields", ())), set(params.get("omit", ()))
        rendered = [export_representation(body, self.request) for body in bodies]
        if not (only or omit):
            return rendered
        return [{k: v for k, v in data.items() if (not only or k in only) and k not in omit} for data in rendered]


FORMAT_NAMES = [fmt.name for fmt in FORMATS]
EASY_EXPORT_CHUNK = 256 * 1024


@extend_schema_view(
    get=extend_schema(
        operation_id="api_projects_exports_list",
        description=(
            "The project's snapshots, newest first: a plain array of the newest 100, as Label Studio. "
            "Sending `page` and/or `page_size` (as the project list) answers the page object "
            "`{count, next, previous, results}` instead; those two parameters are left out of this schema so "
            "that generated clients keep Label Studio's array type."
        ),
    ),
)
class ExportListAPI(ProjectMixin, ExportBodyViewMixin, generics.ListAPIView):
    serializer_class = ExportSerializer
    pagination_class = OptionalPagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Export.objects.none()
        project = self.get_project("id")
        return exports_body(user=self.request.user, project_id=project.pk)

    def list(self, request, *args, **kwargs):
        queryset = self.get_queryset()
        page = self.paginate_queryset(queryset)
        if page is not None:
            return self.get_paginated_response(self.represent(export_bodies(page)))
        return Response(self.represent(export_bodies(queryset[:LIST_LIMIT])))

    @extend_schema(
        operation_id="api_projects_exports_create",
        description=(
            "Ask for a snapshot of the project's tasks (all of them unless the filters narrow them). The answer comes "
            "at once with status `created`; the file is written in the background."
        ),
        request=ExportCreateSerializer,
        responses={201: ExportCreateResponseSerializer},
    )
    def post(self, request, pk):
        project = self.get_project()
        serializer = ExportCreateSerializer(data=request.data, context={"project_id": project.pk})
        serializer.is_valid(raise_exception=True)
        # The answer shows the snapshot as recorded (`created`): its job starts when this transaction commits,
        # after the read below, so a quick worker cannot make it `in_progress` first.
        with transaction.atomic():
            export = export_create(project=project, created_by=request.user, **serializer.validated_data)
            created = export_for_api(user=request.user, project_id=project.pk, export_id=export.pk)
        data = ExportCreateResponseSerializer(created, context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_201_CREATED)


def file_responses(status: int, description: str) -> dict:
    """A file response documented as bytes (`format: binary`) under `application/octet-stream` first, so generated
    clients hand over the raw bytes, then under each content type the formats are really served with."""
    kinds = ["application/octet-stream", *sorted({fmt.content_type for fmt in FORMATS})]
    return {
        # A JSON body is parsed by validating clients, so it is documented as any JSON value, not as bytes.
        (status, kind): OpenApiResponse(
            OpenApiTypes.ANY if kind == "application/json" else OpenApiTypes.BINARY, description=description
        )
        for kind in kinds
    }


class ExportMixin(ProjectMixin):
    def find_export(self, read: Callable[..., _Found | None]) -> _Found:
        """The URL's snapshot as `read(user=, project_id=, export_id=)` gives it; 404 unless the caller sees it
        in the URL's project."""
        self.check_label_studio()
        kwargs = self.kwargs
        export = read(user=self.request.user, project_id=kwargs["pk"], export_id=kwargs["export_pk"])
        if export is None:
            raise self.export_not_found()
        return export

    def export_not_found(self) -> NotFound:
        """The 404 for a snapshot not found: it names the project when the project is what is missing."""
        self.get_project("pk")
        return NotFound("No Export matches the given query.")

    def get_export(self) -> Export:
        """The export with the relations the API shows."""
        return self.find_export(export_for_api)


@extend_schema_view(
    get=extend_schema(
        operation_id="api_projects_exports_retrieve",
        description="One snapshot: its status, counters, md5 of its file and its conversions.",
    ),
    delete=extend_schema(
        operation_id="api_projects_exports_destroy",
        description="Delete the snapshot with its conversions and all their files.",
    ),
)
class ExportDetailAPI(ExportMixin, ExportBodyViewMixin, generics.RetrieveDestroyAPIView):
    serializer_class = ExportSerializer

    def retrieve(self, request, *args, **kwargs):
        return Response(self.represent([self.get_object()])[0])

    def get_object(self):
        if self.request.method in ("GET", "HEAD"):
            return self.find_export(export_body)
        # DELETE only needs to know the export is there: `exports_delete` reads its files itself.
        self.check_label_studio()
        visible = Export.objects.visible_to(self.request.user).filter(project_id=self.kwargs["pk"])
        found = visible.only("pk").filter(pk=self.kwargs["export_pk"]).first()
        if found is None:
            raise self.export_not_found()
        return found

    def perform_destroy(self, instance):
        # Found above, but a concurrent DELETE may remove it before `exports_delete` locks it: only the caller
        # that deleted the row answers 204.
        if not exports_delete(exports=Export.objects.filter(pk=instance.pk)):
            raise NotFound("No Export matches the given query.")


class ExportDownloadAPI(ExportMixin, APIView):
    @extend_schema(
        operation_id="api_projects_exports_download_retrieve",
        description=(
            "The snapshot file, or with `exportType` the file of a completed conversion to that format (404 until "
            "`convert` has made it). Single byte ranges (`Range: bytes=a-b`, `bytes=-n`) are honoured."
        ),
        parameters=[
            OpenApiParameter(
                "exportType",
                OpenApiTypes.STR,
                enum=[*FORMAT_NAMES, DELETED_IDS],
                description=(
                    "JSON (the snapshot, default), a format the snapshot was converted to, or DELETED_IDS: the ids of "
                    "tasks deleted since the base of an incremental snapshot (a JSON array of numbers)."
                ),
            )
        ],
        responses={
            **file_responses(200, "The file (its content type depends on the format)"),
            **file_responses(206, "A byte range of it"),
            404: OpenApiResponse(description="The snapshot is not completed, or the format is not converted yet"),
        },
    )
    def get(self, request, pk, export_pk):
        export = self.get_export()
        export_type = request.query_params.get("exportType") or request.query_params.get("export_type") or "JSON"
        try:
            download = download_for(export, export_type)
        except ExportTypeInvalid as exc:
            raise export_type_error("exportType", exc) from exc
        return stored_file_response(request, download)


class ExportConvertAPI(ExportMixin, APIView):
    @extend_schema(
        operation_id="api_projects_exports_convert_create",
        summary="Export conversion",
        description=(
            "Start converting a completed snapshot to one of the project's enabled formats. The conversion runs in "
            "the background: poll the snapshot's `converted_formats` until it is `completed` (or `failed`, with "
            "its reason in `traceback`), then download it with `exportType`. A format already converted or being "
            "converted is refused; a failed one may be converted again."
        ),
        request=ExportConvertSerializer,
        responses={200: ExportConvertResponseSerializer},
    )
    def post(self, request, pk, export_pk):
        export = self.get_export()
        context = {"enabled_formats": enabled_for(export.project)}
        serializer = ExportConvertSerializer(data=request.data, context=context)
        serializer.is_valid(raise_exception=True)
        converted = export_convert(export=export, **serializer.validated_data)
        data = ExportConvertResponseSerializer(
            {"export_type": converted.export_type, "converted_format": converted.pk}
        ).data
        return Response(data)


class ExportFilesAPI(ProjectMixin, APIView):
    @extend_schema(
        operation_id="api_projects_export_files_retrieve",
        summary="Export files",
        description=(
            "The project's completed snapshot files, newest first, as Label Studio's older export-files list (its "
            "export page still asks for it): each with a `name` and the `url` that downloads it."
        ),
        responses={200: ExportFilesSerializer},
    )
    def get(self, request, pk):
        project = self.get_project("id")
        files = [
            {
                "name": export.download_name("json").removesuffix(".json"),
                "url": reverse("project-exports-download", kwargs={"pk": project.pk, "export_pk": export.pk}),
            }
            for export in completed_exports(project_id=project.pk)
        ]
        return Response(ExportFilesSerializer({"export_files": files}).data)


class ExportFormatsAPI(ProjectMixin, APIView):
    @extend_schema(
        operation_id="api_projects_export_formats_retrieve",
        summary="Export formats",
        description=(
            "Every export format with whether this project's label config can produce it: enabled formats first, "
            "then those marked `disabled: true`."
        ),
        responses={200: ExportFormatSerializer(many=True)},
    )
    def get(self, request, pk):
        project = self.get_project("id", "label_config")
        return Response(format_choices(label_config_of(project)))


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
            # JSON, JSON_MIN and JSONL are streamed from the tables whatever the label config.
            enabled = None if export_type in easy.STREAMED_TYPES else enabled_for(self.context["project"])
            try:
                check_export_type(export_type, enabled=enabled)
            except ExportTypeInvalid as exc:
                raise export_type_error(name, exc) from exc
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
            "The project's tasks as one file. JSON, JSON_MIN and JSONL are streamed while they are built; every other "
            "format enabled for the project's label config is converted first, then sent. By default only tasks "
            "with at least one annotation (cancelled ones included) are exported; `download_all_tasks=true` "
            "exports them all."
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
                "download_resources",
                OpenApiTypes.BOOL,
                default=True,
                description="Let converters that pack media files fetch them (the streamed formats ignore it).",
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
            **file_responses(
                200,
                "The file: a JSON array of tasks (JSON) or records (JSON_MIN), one task per line (JSONL), or the "
                "converted file",
            ),
            503: OpenApiResponse(
                description="Every slot for conversions inside requests (EXPORT_INLINE_CONVERSIONS) stayed busy; "
                "retry after the Retry-After header's seconds"
            ),
        },
    )
    def get(self, request, pk):
        project = self.get_project()
        serializer = self.InputSerializer(data=self.read_params(request.query_params), context={"project": project})
        serializer.is_valid(raise_exception=True)
        options = serializer.validated_data
        export_type = options["export_type"]
        if export_type not in easy.STREAMED_TYPES:
            return self.converted_response(request, project, options)
        chunks: Iterator[bytes]
        if request.method == "HEAD":
            chunks = iter(())  # the headers only, without building the file
        else:
            chunks = easy.easy_export_stream(
                project=project,
                export_type=export_type,
                download_all_tasks=options["download_all_tasks"],
                task_ids=options.get("ids"),
                interpolate_key_frames=options["interpolate_key_frames"],
            )
        fmt = get_format(export_type)
        assert fmt is not None  # InputSerializer checked the name
        name = easy.easy_export_name(project_id=project.pk, extension=fmt.extension)
        response = StreamingHttpResponse(chunks, content_type=fmt.content_type)
        return self.attachment(response, name)

    @staticmethod
    def attachment(response, name: str):
        response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=name)
        response["filename"] = name
        return response

    def converted_response(self, request, project, options):
        """A format made by a converter: built in full first (its scratch files are removed once it is sent)."""
        fmt = get_format(options["export_type"])
        assert fmt is not None  # InputSerializer checked the name
        if request.method == "HEAD":
            name = easy.easy_export_name(project_id=project.pk, extension=fmt.extension)
            return self.attachment(HttpResponse(content_type=fmt.content_type), name)
        try:
            out, name, fmt = easy.easy_export_converted(
                project=project,
                export_type=fmt.name,
                download_all_tasks=options["download_all_tasks"],
                task_ids=options.get("ids"),
                interpolate_key_frames=options["interpolate_key_frames"],
                download_resources=options["download_resources"],
            )
        except ConversionError as exc:
            raise ExportConversionFailed(f"Conversion to {fmt.name} failed: {exc}") from exc
        # FileResponse sets Content-Length and closes (so removes) the scratch file once the body is sent.
        response = FileResponse(out, content_type=fmt.content_type)
        response.block_size = EASY_EXPORT_CHUNK
        return self.attachment(response, name)
