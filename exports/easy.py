"""The easy export: a project's tasks as one JSON or JSON_MIN file, built batch by batch while it is sent."""

import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import orjson
from django.utils import timezone

from exports.converters.json_min import JsonMinConverter
from exports.snapshot import SnapshotWriter
from projects import label_config
from projects.models import Project

__all__ = ["BATCH_SIZE", "EXPORT_TYPES", "easy_export_name", "easy_export_stream"]

EXPORT_TYPES = ("JSON", "JSON_MIN")
# Tasks read and encoded per step; only one step's tasks are held in memory.
BATCH_SIZE = 1000


def easy_export_name(*, project_id: int, now: datetime | None = None) -> str:
    """The attachment name, Label Studio's `project-<id>-at-<UTC minute>-<tag>.json`.

    Label Studio's tag is the file's md5[:8]; a stream's md5 is known only once it has been sent, so a
    random tag of the same length keeps names unique instead.
    """
    stamp = (now or timezone.now()).astimezone(UTC).strftime("%Y-%m-%d-%H-%M")
    return f"project-{project_id}-at-{stamp}-{secrets.token_hex(4)}.json"


def easy_export_stream(
    *,
    project: Project,
    export_type: str = "JSON",
    download_all_tasks: bool = False,
    task_ids: list[int] | None = None,
    interpolate_key_frames: bool = False,
    batch_size: int | None = None,
) -> Iterator[bytes]:
    """The export file as chunks: `[` at once, then each batch of tasks (or records), then `]`.

    As Label Studio's easy export: without `download_all_tasks` only tasks with at least one annotation
    (cancelled ones count) are exported; every annotation is included and drafts are full objects.
    Nothing touches the database until the second chunk is asked for.
    """
    if export_type not in EXPORT_TYPES:
        raise ValueError(f"{export_type} is not an easy export type")
    writer = SnapshotWriter(
        project=project,
        task_filter_options=None if download_all_tasks else {"only_with_annotations": True},
        serialization_options={
            # JSON_MIN never reads drafts, so it asks only for their ids.
            "drafts": {"only_id": export_type != "JSON"},
            "interpolate_key_frames": interpolate_key_frames,
        },
        task_ids=task_ids,
        batch_size=batch_size or BATCH_SIZE,
    )
    convert = _json_min_encoder(project) if export_type == "JSON_MIN" else None
    return _json_array(writer, convert)


def _json_array(writer: SnapshotWriter, convert: Callable[[list[bytes]], list[bytes]] | None) -> Iterator[bytes]:
    yield b"["
    batches = writer.encoded_batches()
    try:
        first = True
        for parts, _annotations, _predictions in batches:
            items = convert(parts) if convert else parts
            if items:
                yield (b"" if first else b",") + b",".join(items)
                first = False
    finally:
        batches.close()  # stops the writer's read-ahead at once when the client goes away
    yield b"]"


def _json_min_encoder(project: Project) -> Callable[[list[bytes]], list[bytes]]:
    """Encoded tasks → encoded JSON_MIN records, for the project's label config."""
    try:
        parsed = label_config.parse_label_config(project.label_config)
    except label_config.LabelConfigError:
        parsed = {}  # only a config saved around the API can be unreadable; treat it as having no controls
    converter = JsonMinConverter(parsed)

    def encode(parts: list[bytes]) -> list[bytes]:
        return [orjson.dumps(record) for part in parts for record in converter.records(orjson.loads(part))]

    return encode
