"""Write one export of a project to a file or to stdout: the easy export (`exports.easy`) from the command line.

`manage.py export_project --project 3 --format CSV --output project-3.csv`

As the easy export API, except that every task is exported by default (as a snapshot does);
`--only-with-annotations` gives the API's default. JSON, JSON_MIN and JSONL are streamed while they are built;
every other format must be enabled for the project's label config and is converted first, then copied out. A progress
bar of the bytes written goes to stderr when stderr is a terminal. A file given with `--output` is written beside
its final name and moved into place only once complete, so a failed export leaves no partial file.
"""

import argparse
import codecs
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm  # type: ignore[import-untyped]  # no stubs installed (types-tqdm)

from exports import easy
from exports.converters.registry import ConversionError, Format
from exports.formats import ExportTypeInvalid, check_export_type, enabled_for
from projects.models import Project

CHUNK = 1024 * 1024


def task_ids(value: str) -> list[int]:
    """`--ids 1,2,3` as sorted distinct task ids."""
    ids = set()
    for piece in (piece.strip() for piece in value.split(",")):
        if not piece:
            continue
        if not piece.isascii() or not piece.isdigit() or len(piece) > 18:
            raise argparse.ArgumentTypeError(f"{piece!r} is not a task id: give integers, e.g. --ids 1,2")
        ids.add(int(piece))
    if not ids:
        raise argparse.ArgumentTypeError("give at least one task id, e.g. --ids 1,2")
    return sorted(ids)


def one_line(text: object) -> str:
    return " ".join(str(text).split())


class Command(BaseCommand):
    help = (
        "Write one export of a project to --output (stdout when missing or '-'): JSON, JSON_MIN and JSONL as the easy "
        "export streams them, any other format enabled for the project converted. Every task by default."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, type=int, metavar="ID", help="The project's id.")
        parser.add_argument(
            "--format",
            default="JSON",
            metavar="NAME",
            help=f"Export format (default JSON): {', '.join(easy.EXPORT_TYPES)}.",
        )
        parser.add_argument("--output", metavar="PATH", help="The file to write; stdout when missing or '-'.")
        which = parser.add_mutually_exclusive_group()
        which.add_argument(
            "--all-tasks",
            dest="all_tasks",
            action="store_true",
            default=True,
            help="Export every task (the default).",
        )
        which.add_argument(
            "--only-with-annotations",
            "--only-annotated",
            dest="all_tasks",
            action="store_false",
            help="Only tasks with at least one annotation, cancelled ones included (the easy export API's default).",
        )
        parser.add_argument("--ids", type=task_ids, metavar="ID,ID", help="Only these task ids.")
        parser.add_argument(
            "--interpolate-key-frames",
            action="store_true",
            help="Expand video rectangle key frames into one entry per frame.",
        )
        parser.add_argument(
            "--download-resources",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="Let converters that pack media files fetch them (default: yes; the streamed formats ignore it).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(pk=options["project"]).first()
        if project is None:
            raise CommandError(f"Project {options['project']} does not exist.")
        export_type: str = options["format"]
        # The streamed formats (JSON, JSON_MIN, JSONL) are made from the tables whatever the label config, as the API
        # does.
        enabled = None if export_type in easy.STREAMED_TYPES else enabled_for(project)
        try:
            fmt = check_export_type(export_type, enabled=enabled)
        except ExportTypeInvalid as exc:
            raise CommandError(one_line(exc)) from exc
        output: str | None = options["output"]
        to_stdout = output in (None, "-")
        with ExitStack() as stack:
            try:
                chunks = self.export(project, fmt, options, stack)
                if to_stdout:
                    written = self.write_stdout(chunks)
                else:
                    assert output is not None
                    written = self.write_file(chunks, Path(output))
            except ConversionError as exc:
                raise CommandError(one_line(f"Conversion to {fmt.name} failed: {exc}")) from exc
            except OSError as exc:
                raise CommandError(one_line(f"Cannot write the export: {exc}")) from exc
        if not to_stdout and options["verbosity"] >= 1:
            self.stdout.write(f"Wrote project {project.pk} as {fmt.name} to {output} ({written} bytes).")

    def export(self, project: Project, fmt: Format, options: dict[str, Any], stack: ExitStack) -> Iterator[bytes]:
        """The export's bytes, chunk by chunk, with a progress bar on a terminal's stderr."""
        common = {
            "project": project,
            "export_type": fmt.name,
            "download_all_tasks": options["all_tasks"],
            "task_ids": options["ids"],
            "interpolate_key_frames": options["interpolate_key_frames"],
        }
        chunks: Iterable[bytes]
        if fmt.name in easy.STREAMED_TYPES:
            chunks = easy.easy_export_stream(**common)
        else:
            out, _name, fmt = easy.easy_export_converted(**common, download_resources=options["download_resources"])
            stack.enter_context(out)  # closing removes the scratch file
            chunks = iter(lambda: out.read(CHUNK), b"")
        bar = stack.enter_context(self.progress(f"Project {project.pk} {fmt.name}", unit="B", unit_scale=True))
        return self.counted(chunks, bar)

    @staticmethod
    def counted(chunks: Iterable[bytes], bar: tqdm) -> Iterator[bytes]:
        for chunk in chunks:
            bar.update(len(chunk))
            yield chunk

    def progress(self, description: str, **kwargs: Any) -> tqdm:
        """A tqdm bar on stderr, silent unless stderr is a terminal."""
        stream = getattr(self.stderr, "_out", sys.stderr)
        isatty = getattr(stream, "isatty", None)
        return tqdm(desc=description, file=stream, disable=not (isatty and isatty()), leave=False, **kwargs)

    def write_stdout(self, chunks: Iterable[bytes]) -> int:
        stream = getattr(self.stdout, "_out", sys.stdout)
        binary: IO[bytes] | None = getattr(stream, "buffer", None)
        written = 0
        if binary is not None:
            for chunk in chunks:
                binary.write(chunk)
                written += len(chunk)
            binary.flush()
            return written
        # A text stream without bytes beneath (e.g. a StringIO given to call_command): the text, decoded as UTF-8.
        decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        for chunk in chunks:
            stream.write(decoder.decode(chunk))
            written += len(chunk)
        stream.write(decoder.decode(b"", final=True))
        stream.flush()
        return written

    @staticmethod
    def write_file(chunks: Iterable[bytes], path: Path) -> int:
        """Write to a scratch file beside `path`, then move it into place; nothing is left at `path` on failure."""
        written = 0
        folder = path.parent if str(path.parent) else Path(".")
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.", suffix=".part", delete=False) as file:
            scratch = Path(file.name)
            try:
                for chunk in chunks:
                    file.write(chunk)
                    written += len(chunk)
                file.flush()
                os.fsync(file.fileno())
            except BaseException:
                file.close()
                with suppress(FileNotFoundError):
                    scratch.unlink()
                raise
        try:
            os.chmod(scratch, 0o666 & ~_umask())
            os.replace(scratch, path)
        except BaseException:
            with suppress(FileNotFoundError):
                scratch.unlink()
            raise
        return written


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
