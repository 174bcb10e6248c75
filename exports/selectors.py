"""Reads for the API: snapshots as the contract shows them, and which stored file a download serves."""

from dataclasses import dataclass

from exports.exceptions import ExportNotCompleted, FormatNotConverted
from exports.formats import check_export_type
from exports.models import ConvertedFormat, Export, ExportQuerySet, Status

__all__ = ["Download", "download_for", "export_for_api", "exports_for_api"]


def exports_for_api(*, user, project_id: int) -> ExportQuerySet:
    """The snapshots of a project the user sees, with the relations the contract shows (the same joins whatever
    fields are asked for), newest first. The detail reads through this too, so list and detail show one body."""
    return (
        Export.objects.visible_to(user)
        .filter(project_id=project_id)
        .with_api_relations()
        .order_by("-created_at", "-id")
    )


def export_for_api(*, user, project_id: int, export_id: int) -> Export | None:
    """One snapshot as `exports_for_api` reads it; None when the user does not see it in that project."""
    found = list(exports_for_api(user=user, project_id=project_id).filter(pk=export_id)[:1])
    return found[0] if found else None


@dataclass(frozen=True)
class Download:
    """A stored file to send: its storage name, content type and attachment name."""

    name: str
    content_type: str
    filename: str


def download_for(export: Export, export_type: str = "JSON") -> Download:
    """The file a snapshot's download serves: the snapshot itself for JSON, else the completed conversion to
    `export_type`. Raises ExportTypeInvalid for an unknown type, ExportNotCompleted while the snapshot is not
    completed, and FormatNotConverted (saying why) while the conversion is missing, running or failed."""
    fmt = check_export_type(export_type)
    if export.status != Status.COMPLETED or not export.file:
        raise ExportNotCompleted(f"Export is not completed (status: {export.status}).")
    if fmt.name == "JSON":
        return Download(export.file, "application/json", export.download_name("json"))
    converted = next((cf for cf in export.converted_formats.all() if cf.export_type == fmt.name), None)
    _check_converted(fmt.name, converted)
    return Download(converted.file, fmt.content_type, export.download_name(fmt.extension))


def _check_converted(export_type: str, converted: ConvertedFormat | None) -> None:
    if converted is None:
        raise FormatNotConverted(f"{export_type} format is not converted yet: convert the snapshot to it first.")
    if converted.status == Status.FAILED:
        raise FormatNotConverted(f"Conversion to {export_type} failed: {converted.traceback or 'no reason given'}")
    if converted.status != Status.COMPLETED or not converted.file:
        raise FormatNotConverted(
            f"Conversion to {export_type} is not completed yet (status: {converted.status}); try again shortly."
        )
