"""Run label-studio-sdk 2.1.2's converter on a snapshot file, as Label Studio 1.23.2 does, to compare outputs.

Label Studio converts a stored snapshot with `Converter(config, project_dir=None, ...)` and
`convert(snapshot_path, out_dir, format, is_dir=False)`, then serves the single file the converter wrote,
or a zip of the whole folder when it wrote more than one entry. `run_sdk` returns what that folder held.
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from exports.converters.registry import ConversionContext, get_format
from exports.converters.source import SnapshotSource
from projects.label_config import parse_label_config

__all__ = ["SdkOutput", "convert_ours", "run_sdk", "unzip", "write_snapshot"]


def write_snapshot(tasks: Iterable[Mapping[str, Any]], path: Path) -> Path:
    """Write tasks as the snapshot writer lays them out: `[`, one task per line, `]`."""
    lines = [orjson.dumps(task) for task in tasks]
    with Path(path).open("wb") as file:
        file.write(b"[\n" + b",\n".join(lines) + b"\n]" if lines else b"[]")
    return Path(path)


@dataclass
class SdkOutput:
    """The folder the SDK's converter wrote: files by relative path (POSIX), and every folder in it."""

    files: dict[str, bytes] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)

    def single(self) -> bytes:
        """The one file Label Studio would serve as is; fails when the output would be zipped instead."""
        assert not self.dirs, sorted(self.dirs)
        assert len(self.files) == 1, sorted(self.files)
        return next(iter(self.files.values()))

    def text(self) -> str:
        return self.single().decode("utf-8")


def run_sdk(
    label_config: str,
    snapshot: Path,
    export_format: str,
    out_dir: Path,
    *,
    download_resources: bool = False,
    upload_dir: Path | None = None,
    parsed_config: bool = False,
    **kwargs: Any,
) -> SdkOutput:
    """The SDK converter's output for a snapshot file; its exceptions propagate (tests check where it crashes).

    `upload_dir` is where the SDK finds `/data/upload/...` files (Label Studio's media folder); `kwargs`
    go to `Converter.convert` (`image_dir`, `csv_separator`, ...). With `parsed_config` the converter
    gets the config parsed by this project's parser, as Label Studio hands it its own parse (a dict);
    the SDK's parser, used otherwise, does not expand Repeater control names into patterns.
    """
    from label_studio_sdk.converter import Converter

    # The SDK logs every item at DEBUG/INFO; keep test output readable.
    logging.getLogger("label_studio_sdk").setLevel(logging.WARNING)
    converter = Converter(
        config=parse_label_config(label_config) if parsed_config else label_config,
        project_dir=None,
        download_resources=download_resources,
        upload_dir=str(upload_dir) if upload_dir else None,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    converter.convert(str(snapshot), str(out_dir), export_format, is_dir=False, **kwargs)
    output = SdkOutput()
    for path in sorted(out_dir.rglob("*")):
        relative = path.relative_to(out_dir).as_posix()
        if path.is_dir():
            output.dirs.add(relative)
        else:
            output.files[relative] = path.read_bytes()
    return output


def convert_ours(label_config: str, snapshot: Path, export_format: str, scratch_dir: Path, **context: Any) -> bytes:
    """This project's converter output for the same snapshot file, through the format registry."""
    fmt = get_format(export_format)
    assert fmt is not None, export_format
    scratch_dir = Path(scratch_dir)
    scratch_dir.mkdir(parents=True, exist_ok=True)
    ctx = ConversionContext(
        label_config=parse_label_config(label_config),
        project_id=context.pop("project_id", 1),
        scratch_dir=scratch_dir,
        download_resources=context.pop("download_resources", False),
        **context,
    )
    out = io.BytesIO()
    fmt.load()(SnapshotSource(snapshot), out, ctx)
    return out.getvalue()


def unzip(data: bytes) -> SdkOutput:
    """A zip archive's entries in the same shape as `run_sdk`'s output, to compare multi-file formats."""
    output = SdkOutput()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            name = info.filename.rstrip("/")
            if info.is_dir():
                output.dirs.add(name)
            else:
                output.files[name] = archive.read(info)
                parent = Path(name).parent
                while str(parent) not in ("", "."):
                    output.dirs.add(parent.as_posix())
                    parent = parent.parent
    return output
