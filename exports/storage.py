"""Where export files live: Django's `exports` storage (a local folder under DATA_DIR by default)."""

import os
import shutil
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages


def export_storage():
    return storages["exports"]


def scratch_folder() -> Path:
    folder = Path(settings.DATA_DIR) / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def scratch_file() -> tempfile.NamedTemporaryFile:
    """A temporary file on the same disk as the data, removed when closed."""
    return tempfile.NamedTemporaryFile(dir=scratch_folder(), prefix="export-", suffix=".partial")


def remove_abandoned_scratch(*, older_than: float) -> int:
    """Delete scratch files nobody has written to for `older_than` seconds (left by a killed process)."""
    removed = 0
    deadline = time.time() - older_than
    for path in scratch_folder().glob("export-*.partial"):
        try:
            if path.stat().st_mtime < deadline:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def store(name: str, scratch) -> str:
    """Put a finished scratch file at `name` (replacing any earlier one); returns the stored name."""
    storage = export_storage()
    scratch.flush()
    try:
        target = Path(storage.path(name))
    except NotImplementedError:
        if storage.exists(name):
            storage.delete(name)
        scratch.seek(0)
        return storage.save(name, File(scratch))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        os.link(scratch.name, partial)  # same disk: no copy
    except OSError:
        shutil.copyfile(scratch.name, partial)
    os.replace(partial, target)
    return name


def remove(name: str) -> None:
    if name:
        storage = export_storage()
        if storage.exists(name):
            storage.delete(name)
