"""The stored files of snapshots and conversions: their names, and removing one that no row refers to."""

from exports import storage
from exports.converters.registry import Format
from exports.models import ConvertedFormat, Export

__all__ = [
    "conversion_file_name",
    "deleted_ids_file_name",
    "discard_unreferenced",
    "export_file_name",
    "index_file_name",
    "with_side_files",
]


def export_file_name(export: Export, md5: str) -> str:
    """`<project>/export-<snapshot>-<md5>.json`."""
    return f"{export.project_id}/export-{export.pk}-{md5}.json"


def index_file_name(snapshot_name: str) -> str:
    """The task index beside a snapshot file (exports/increments.py): `<project>/export-<snapshot>-<md5>.index`."""
    return f"{snapshot_name.removesuffix('.json')}.index"


def deleted_ids_file_name(snapshot_name: str) -> str:
    """The ids of deleted tasks beside an incremental snapshot's file: `...-<md5>-deleted-ids.json`."""
    return f"{snapshot_name.removesuffix('.json')}-deleted-ids.json"


def with_side_files(snapshot_names: list[str]) -> list[str]:
    """Snapshot file names with the files stored beside each: what removing those snapshots removes."""
    return [
        item for name in snapshot_names if name for item in (name, index_file_name(name), deleted_ids_file_name(name))
    ]


def conversion_file_name(export: Export, converted: ConvertedFormat, fmt: Format, run: str) -> str:
    """`<project>/export-<snapshot>-<TYPE>-<run>.<ext>`: beside the snapshot, and never shared by two runs,
    so a run that lost its lease cannot overwrite or remove the file of the run that took over."""
    return f"{export.project_id}/export-{export.pk}-{converted.export_type}-{run}.{fmt.extension}"


def discard_unreferenced(model: type[Export] | type[ConvertedFormat], name: str) -> None:
    """Remove a stored file a job made but could not record, unless a row refers to it after all (a run that took
    over may have stored the same name, or the completing UPDATE may have committed before its error)."""
    if name and not model.objects.filter(file=name).exists():
        for item in with_side_files([name]) if model is Export else [name]:
            storage.remove(item)
