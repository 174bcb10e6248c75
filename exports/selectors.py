"""Reads for the API: snapshots as the contract shows them, and which stored file a download serves.

The snapshot body has one read path for the list and the detail alike: the rows of `_api_rows` (one query with
the creator and the project joined, scoped by `Export.objects.visible_to`), then the conversions of those
snapshots (one query), turned into plain objects that `exports.views` renders (ExportSerializer's output, built
directly unless `expand` or a dotted field path asks for the serializer). The detail, the hottest read of the
service, runs the same queryset compiled once and, on PostgreSQL, planned once per connection (`config.prepared`).
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace

from django.db.models import QuerySet

from config.prepared import PreparedQuery
from exports import storage
from exports.exceptions import ExportNotCompleted, FormatNotConverted
from exports.files import deleted_ids_file_name, index_file_name
from exports.formats import check_export_type
from exports.models import ConvertedFormat, Export, ExportQuerySet, Status
from users.models import User

__all__ = [
    "DELETED_IDS",
    "Download",
    "completed_exports",
    "download_for",
    "export_bodies",
    "export_body",
    "export_for_api",
    "exports_body",
    "since_export_problem",
]

DELETED_IDS = "DELETED_IDS"

EXPORT_VALUES = ("id", "title", "status", "md5", "counters", "created_at", "finished_at", "project_id", "since_export")
USER_VALUES = ("id", "username", "first_name", "last_name", "email", "avatar")
PROJECT_VALUES = ("title", "description", "label_config", "organization_id", "created_at")
FORMAT_VALUES = ("export_id", "id", "status", "export_type", "traceback")


def _caller(organization_id: int) -> SimpleNamespace:
    """Who `visible_to` scopes for: a caller acting in `organization_id`."""
    return SimpleNamespace(is_authenticated=True, active_organization_id=organization_id)


def _api_rows(*, organization_id: int, project_id: int) -> QuerySet:
    """The snapshots of a project, as rows of the body's columns (creator and project joined), newest first."""
    return (
        Export.objects.visible_to(_caller(organization_id))
        .filter(project_id=project_id)
        .order_by("-created_at", "-id")
        .values_list(
            *EXPORT_VALUES,
            *(f"created_by__{name}" for name in USER_VALUES),
            *(f"project__{name}" for name in PROJECT_VALUES),
        )
    )


def _formats_of(export_ids: Iterable[int]) -> QuerySet:
    return ConvertedFormat.objects.filter(export_id__in=export_ids).order_by("id").values_list(*FORMAT_VALUES)


_DETAIL = PreparedQuery(
    lambda organization, project, export: _api_rows(organization_id=organization, project_id=project).filter(pk=export)[
        :1
    ],
    "organization",
    "project",
    "export",
    plan_once=True,
)
_DETAIL_FORMATS = PreparedQuery(
    lambda export: ConvertedFormat.objects.filter(export_id=export).order_by("id").values_list(*FORMAT_VALUES),
    "export",
    plan_once=True,
)


def _avatar(name: str | None):
    """The stored avatar as the file object the user serializer reads (None when there is none)."""
    if not name:
        return None
    field = User._meta.get_field("avatar")
    return field.attr_class(User(avatar=name), field, name)


def _bodies(rows: Sequence[tuple], formats: Iterable[tuple]) -> list[SimpleNamespace]:
    """Snapshot objects for the serializer, from `_api_rows` rows and their conversions' rows."""
    by_export: dict[int, list[SimpleNamespace]] = {}
    for export_id, *values in formats:
        by_export.setdefault(export_id, []).append(SimpleNamespace(**dict(zip(FORMAT_VALUES[1:], values, strict=True))))
    bodies = []
    for row in rows:
        cells = iter(row)
        export = dict(zip(EXPORT_VALUES, cells, strict=False))
        user = dict(zip(USER_VALUES, cells, strict=False))
        project = dict(zip(PROJECT_VALUES, cells, strict=False))
        creator = None if user["id"] is None else SimpleNamespace(**{**user, "avatar": _avatar(user["avatar"])})
        bodies.append(
            SimpleNamespace(
                **export,
                pk=export["id"],
                created_by=creator,
                project=SimpleNamespace(id=export["project_id"], **project),
                converted_formats=by_export.get(export["id"], []),
            )
        )
    return bodies


def exports_body(*, user, project_id: int) -> QuerySet:
    """The rows of a project's snapshots the user sees, newest first; slice or page them, then `export_bodies`."""
    if not getattr(user, "active_organization_id", None):
        return Export.objects.none().values_list("id")
    return _api_rows(organization_id=user.active_organization_id, project_id=project_id)


def export_bodies(rows: Sequence[tuple]) -> list[SimpleNamespace]:
    """The snapshot objects of rows from `exports_body` (one more query, for their conversions)."""
    rows = list(rows)
    return _bodies(rows, _formats_of([row[0] for row in rows]) if rows else ())


def export_body(*, user, project_id: int, export_id: int) -> SimpleNamespace | None:
    """One snapshot as the list shows it, in two queries compiled once; None when the user does not see it in
    that project."""
    organization_id = getattr(user, "active_organization_id", None)
    if not organization_id:
        return None
    rows = _DETAIL.rows(organization=organization_id, project=project_id, export=export_id)
    if not rows:
        return None
    return _bodies(rows, _DETAIL_FORMATS.rows(export=export_id))[0]


def export_for_api(*, user, project_id: int, export_id: int) -> Export | None:
    """One snapshot as a model, with the relations the API shows, for endpoints that act on it (download,
    convert, the create answer); None when the user does not see it in that project."""
    found = Export.objects.visible_to(user).filter(project_id=project_id, pk=export_id).with_api_relations()[:1]
    return next(iter(found), None)


def completed_exports(*, project_id: int) -> ExportQuerySet:
    """A project's completed snapshots, newest first, with what their file names need."""
    return (
        Export.objects.filter(project_id=project_id, status=Status.COMPLETED)
        .only("id", "project_id", "created_at", "md5")
        .order_by("-created_at", "-id")
    )


@dataclass(frozen=True)
class Download:
    """A stored file to send: its storage name, content type and attachment name."""

    name: str
    content_type: str
    filename: str


def since_export_problem(*, project_id: int, export_id: int) -> str | None:
    """Why snapshot `export_id` cannot be the base of an incremental snapshot of the project; None when it can.
    A snapshot of another project reads as one that does not exist, whoever owns it."""
    base = Export.objects.filter(pk=export_id, project_id=project_id).only("status", "file").first()
    if base is None:
        return f"Snapshot {export_id} is not a snapshot of this project."
    if base.status != Status.COMPLETED or not base.file:
        return f"Snapshot {export_id} is not completed (status: {base.status})."
    try:
        storage.size(index_file_name(base.file))
    except FileNotFoundError:
        return f"Snapshot {export_id} has no task index (it was made before incremental snapshots); use a newer one."
    return None


def download_for(export: Export, export_type: str = "JSON") -> Download:
    """The file a snapshot's download serves: the snapshot itself for JSON, the ids of deleted tasks for
    DELETED_IDS (incremental snapshots), else the completed conversion to `export_type`. Raises ExportTypeInvalid
    for an unknown type, ExportNotCompleted while the snapshot is not completed, and FormatNotConverted (saying
    why) while the conversion is missing, running or failed."""
    if export_type == DELETED_IDS:
        if export.status != Status.COMPLETED or not export.file:
            raise ExportNotCompleted(f"Export is not completed (status: {export.status}).")
        if export.since_export is None:
            raise FormatNotConverted("DELETED_IDS comes with incremental snapshots only (made with since_export).")
        filename = export.download_name("json").removesuffix(".json") + "-deleted-ids.json"
        return Download(deleted_ids_file_name(export.file), "application/json", filename)
    fmt = check_export_type(export_type)
    if export.status != Status.COMPLETED or not export.file:
        raise ExportNotCompleted(f"Export is not completed (status: {export.status}).")
    if fmt.name == "JSON":
        return Download(export.file, "application/json", export.download_name("json"))
    converted = next((cf for cf in export.converted_formats.all() if cf.export_type == fmt.name), None)
    converted = _check_converted(fmt.name, converted)
    return Download(converted.file, fmt.content_type, export.download_name(fmt.extension))


def _check_converted(export_type: str, converted: ConvertedFormat | None) -> ConvertedFormat:
    """The completed conversion, or FormatNotConverted saying why there is none."""
    if converted is None:
        raise FormatNotConverted(f"{export_type} format is not converted yet: convert the snapshot to it first.")
    if converted.status == Status.FAILED:
        raise FormatNotConverted(f"Conversion to {export_type} failed: {converted.traceback or 'no reason given'}")
    if converted.status != Status.COMPLETED or not converted.file:
        raise FormatNotConverted(
            f"Conversion to {export_type} is not completed yet (status: {converted.status}); try again shortly."
        )
    return converted
