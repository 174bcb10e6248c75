"""The easy export: a project's tasks as one file, built while the request waits.

JSON, JSON_MIN and JSONL are streamed batch by batch while they are built. Every other format is made the way a
snapshot's conversion is: the tasks go to a scratch snapshot file, the format's converter turns it into a
scratch output file, and the response sends that file and removes it once sent. That build holds a slot of
`converting.inline_conversion_slot` (EXPORT_INLINE_CONVERSIONS per process); the streamed formats take none, as
they hold one batch at a time and run no converter.
"""

import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import orjson
from django.utils import timezone

from exports import converting, storage
from exports.converters.availability import label_config_of
from exports.converters.json_min import JsonMinConverter
from exports.converters.registry import FORMATS, Format, get_format
from exports.jsonarray import COMPACT, JSON_LINES
from exports.snapshot import SnapshotWriter
from projects.models import Project
from projects.selectors import organization_project_ids

__all__ = [
    "BATCH_SIZE",
    "EXPORT_TYPES",
    "STREAMED_TYPES",
    "easy_export_converted",
    "easy_export_name",
    "easy_export_stream",
]

EXPORT_TYPES = tuple(fmt.name for fmt in FORMATS)
STREAMED_TYPES = ("JSON", "JSON_MIN", "JSONL")
# Tasks read and encoded per step; only one step's tasks are held in memory.
BATCH_SIZE = 1000


def easy_export_name(*, project_id: int, now: datetime | None = None, tag: str = "", extension: str = "json") -> str:
    """The attachment name, Label Studio's `project-<id>-at-<UTC minute>-<tag>.<ext>`.

    Label Studio's tag is the file's md5[:8]; a streamed file's md5 is known only once it has been sent, so
    without a `tag` a random one of the same length keeps names unique instead.
    """
    stamp = (now or timezone.now()).astimezone(UTC).strftime("%Y-%m-%d-%H-%M")
    return f"project-{project_id}-at-{stamp}-{tag or secrets.token_hex(4)}.{extension}"


def _writer(
    *,
    project: Project,
    export_type: str,
    download_all_tasks: bool,
    task_ids: list[int] | None,
    interpolate_key_frames: bool,
    batch_size: int | None,
) -> SnapshotWriter:
    """As Label Studio's easy export: without `download_all_tasks` only tasks with at least one annotation
    (cancelled ones count) are exported; every annotation is included and drafts are full objects."""
    return SnapshotWriter(
        project=project,
        task_filter_options=None if download_all_tasks else {"only_with_annotations": True},
        serialization_options={
            # JSON_MIN never reads drafts, so it asks only for their ids.
            "drafts": {"only_id": export_type == "JSON_MIN"},
            "interpolate_key_frames": interpolate_key_frames,
        },
        task_ids=task_ids,
        batch_size=batch_size or BATCH_SIZE,
    )


def easy_export_stream(
    *,
    project: Project,
    export_type: str = "JSON",
    download_all_tasks: bool = False,
    task_ids: list[int] | None = None,
    interpolate_key_frames: bool = False,
    batch_size: int | None = None,
) -> Iterator[bytes]:
    """The JSON, JSON_MIN or JSONL file as chunks: `[` at once (JSONL has no opening), then each batch of tasks
    (or records), then `]` (JSONL: the last line's line break).

    Nothing touches the database until the second chunk is asked for.
    """
    if export_type not in STREAMED_TYPES:
        raise ValueError(f"{export_type} is not a streamed easy export type")
    writer = _writer(
        project=project,
        export_type=export_type,
        download_all_tasks=download_all_tasks,
        task_ids=task_ids,
        interpolate_key_frames=interpolate_key_frames,
        batch_size=batch_size,
    )
    if export_type == "JSON_MIN":
        return writer.stream(_json_min_encoder(project))
    return writer.stream(layout=JSON_LINES if export_type == "JSONL" else COMPACT)


def easy_export_converted(
    *,
    project: Project,
    export_type: str,
    download_all_tasks: bool = False,
    task_ids: list[int] | None = None,
    interpolate_key_frames: bool = False,
    download_resources: bool = False,
    batch_size: int | None = None,
) -> tuple[IO[bytes], str, Format]:
    """The tasks converted to `export_type`: an open scratch file, removed when closed, at its start; its
    attachment name (tagged with the md5 of the tasks, as Label Studio); and its format.

    Raises the converter's `ConversionError` when the data cannot be converted, and `ConversionsBusy` when no slot
    for conversions inside requests frees in time; no scratch file is left then.
    """
    fmt = get_format(export_type)
    if fmt is None:
        raise ValueError(f"{export_type} is not an export format")
    writer = _writer(
        project=project,
        export_type=export_type,
        download_all_tasks=download_all_tasks,
        task_ids=task_ids,
        interpolate_key_frames=interpolate_key_frames,
        batch_size=batch_size,
    )
    out = storage.scratch_file()
    try:
        with (
            converting.inline_conversion_slot(),
            storage.scratch_file() as snapshot,
            converting.conversion_scratch_dir() as scratch_dir,
        ):
            result = writer.write(snapshot)
            snapshot.flush()
            # No lease to renew here, but the scratch files are touched as the tasks are read, so the sweep of
            # abandoned scratch files leaves a long conversion's alone.
            touch = converting.KeepAlive(
                lambda: True,
                interval=converting.renew_interval(),
                paths=[Path(snapshot.name), scratch_dir, Path(out.name)],
            )
            converting.convert_snapshot(
                fmt,
                Path(snapshot.name),
                out,
                label_config=label_config_of(project),
                project_id=project.pk,
                organization_project_ids=organization_project_ids(project_id=project.pk),
                scratch_dir=scratch_dir,
                download_resources=download_resources,
                keep_alive=touch,
            )
        out.flush()
        out.seek(0)
    except BaseException:
        out.close()
        raise
    return out, easy_export_name(project_id=project.pk, tag=result.md5[:8], extension=fmt.extension), fmt


def _json_min_encoder(project: Project) -> Callable[[list[bytes]], list[bytes]]:
    """Encoded tasks → encoded JSON_MIN records, for the project's label config."""
    converter = JsonMinConverter(label_config_of(project))

    def encode(parts: list[bytes]) -> list[bytes]:
        return [orjson.dumps(record) for part in parts for record in converter.records(orjson.loads(part))]

    return encode
