"""Snapshots and conversions for operators: read only, with retry and a deletion that also removes the files.

Every write goes through `exports.services`; the stored file's size is read from the export storage once per
displayed row (a stat on the local folder, a HEAD on a bucket), so only for the page shown.
"""

from collections.abc import Sequence

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from exports import storage
from exports.exceptions import ConversionRejected, ExportStorageError
from exports.models import ConvertedFormat, Export, JobFields, Status
from exports.services import export_convert, export_create, exports_delete

EMPTY = "-"


def stored_size(row: JobFields) -> str:
    """The stored file's size, human readable; '-' when the row has no file or the storage does not have it."""
    if not row.file:
        return EMPTY
    try:
        size = float(storage.size(row.file))
    except (FileNotFoundError, ExportStorageError):
        return EMPTY
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return EMPTY  # unreachable: the loop returns at GB


def duration(row: JobFields) -> str:
    if row.finished_at is None:
        return EMPTY
    seconds = (row.finished_at - row.created_at).total_seconds()
    minutes, seconds = divmod(max(seconds, 0.0), 60)
    return f"{int(minutes)}m {seconds:.1f}s" if minutes else f"{seconds:.1f}s"


def download_link(export_id: int, project_id: int, export_type: str = "") -> str:
    url = reverse("project-exports-download", kwargs={"pk": project_id, "export_pk": export_id})
    if export_type:
        url += "?" + urlencode({"exportType": export_type})
    return format_html('<a href="{}">download</a>', url)


class ReadOnlyJobAdmin(admin.ModelAdmin):
    """Nothing is added or edited here; rows are viewed, retried and deleted."""

    date_hierarchy = "created_at"
    list_per_page = 50

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    @admin.display(description="size")
    def size(self, row):
        return stored_size(row)

    @admin.display(description="duration")
    def duration(self, row):
        return duration(row)


class ConvertedFormatInline(admin.TabularInline):
    model = ConvertedFormat
    fields = ("id", "export_type", "status", "created_at", "finished_at", "traceback", "download")
    readonly_fields = fields
    extra = 0
    can_delete = False  # a conversion goes with its snapshot
    show_change_link = True
    ordering = ("id",)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="download")
    def download(self, row):
        if row.status != Status.COMPLETED:
            return EMPTY
        return download_link(row.export_id, row.export.project_id, row.export_type)


@admin.register(Export)
class ExportAdmin(ReadOnlyJobAdmin):
    list_display = (
        "id",
        "project",
        "title",
        "status",
        "progress",
        "size",
        "duration",
        "reason",
        "created_by",
        "created_at",
        "download",
    )
    list_filter = ("status", "created_at")
    list_select_related = ("project", "created_by")
    search_fields = ("title", "=project__id")
    search_help_text = "A title, or a project id."
    inlines = (ConvertedFormatInline,)
    actions = ("retry_failed",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("project", "created_by")

    @admin.display(description="progress")
    def progress(self, export):
        counters = export.counters or {}
        if "total" not in counters:
            return EMPTY
        return f"{counters.get('done', 0)}/{counters['total']}"

    @admin.display(description="download")
    def download(self, export):
        if export.status != Status.COMPLETED:
            return EMPTY
        return download_link(export.pk, export.project_id)

    @admin.action(description="Retry failed: create a new snapshot with the same options")
    def retry_failed(self, request, queryset):
        failed = queryset.filter(status=Status.FAILED).select_related("project", "created_by")
        created = [
            export_create(
                project=export.project,
                created_by=export.created_by or request.user,
                title=export.title,
                task_filter_options=export.task_filter_options,
                annotation_filter_options=export.annotation_filter_options,
                serialization_options=export.serialization_options,
            ).pk
            for export in failed
        ]
        report(request, self, retried=created, selected=queryset.count())

    def get_deleted_objects(self, objs, request):
        """A snapshot's conversions go with it, though they cannot be deleted on their own."""
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed.discard(str(ConvertedFormat._meta.verbose_name))
        return deleted, model_count, perms_needed, protected

    def delete_model(self, request, obj):
        exports_delete(exports=Export.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        exports_delete(exports=queryset)


@admin.register(ConvertedFormat)
class ConvertedFormatAdmin(ReadOnlyJobAdmin):
    list_display = (
        "id",
        "project",
        "export",
        "title",
        "export_type",
        "status",
        "size",
        "duration",
        "traceback",
        "creator",
        "created_at",
        "download",
    )
    list_filter = ("status", "export_type", "created_at")
    list_select_related = ("export__project", "export__created_by")
    search_fields = ("export__title", "=export__project__id")
    search_help_text = "A snapshot title, or a project id."
    actions = ("retry_failed",)

    def has_delete_permission(self, request, obj=None):
        return False  # conversions are removed with their snapshot

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("export__project", "export__created_by")

    @admin.display(description="project", ordering="export__project")
    def project(self, converted):
        return converted.export.project

    @admin.display(description="title", ordering="export__title")
    def title(self, converted):
        return converted.export.title

    @admin.display(description="creator", ordering="export__created_by")
    def creator(self, converted):
        return converted.export.created_by or EMPTY

    @admin.display(description="download")
    def download(self, converted):
        if converted.status != Status.COMPLETED:
            return EMPTY
        return download_link(converted.export_id, converted.export.project_id, converted.export_type)

    @admin.action(description="Retry failed: convert again")
    def retry_failed(self, request, queryset):
        retried, refused = [], []
        failed = (
            queryset.filter(status=Status.FAILED).select_related("export").prefetch_related("export__converted_formats")
        )
        for converted in failed:
            try:
                export_convert(
                    export=converted.export,
                    export_type=converted.export_type,
                    download_resources=converted.download_resources,
                )
            except ConversionRejected as exc:
                refused.append(f"#{converted.pk}: {' '.join(map(str, exc.detail))}")
            else:
                retried.append(converted.pk)
        report(request, self, retried=retried, selected=queryset.count(), refused=refused)


def report(request, model_admin, *, retried: list[int], selected: int, refused: Sequence[str] = ()) -> None:
    if retried:
        ids = ", ".join(f"#{pk}" for pk in retried)
        model_admin.message_user(request, f"Retried {len(retried)}: {ids}.", messages.SUCCESS)
    skipped = selected - len(retried) - len(refused)
    if skipped:
        model_admin.message_user(request, f"Skipped {skipped} not failed.", messages.WARNING)
    for reason in refused:
        model_admin.message_user(request, f"Not retried {reason}", messages.ERROR)
