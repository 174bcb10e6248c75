"""ASR_MANIFEST: audio transcriptions as a speech-recognition manifest (NeMo's JSON-lines layout).

Label Studio serves label-studio-sdk 2.1.2's converter output for this format as a zip archive of
`manifest.json` and an `audio/` folder, and so does this module. Each line of `manifest.json` is one
exported annotation (not cancelled, newest first per task) as
`{"audio_filepath": ..., "duration": ..., "text": ..., "annotator": ...}`, written with ASCII escapes
and `", "`/`": "` separators as the SDK writes it. `text` is the first line of the first control in the
annotation whose first region has a `text`; `annotator` is the annotator's email for an expanded user,
else the user id as text.

When resources are downloaded (`context.download_resources` with a `context.fetch_image` fetcher, which
returns a URL's bytes), each audio file is stored once as `audio/<file name>` (a name already taken by
another URL gets a short hash of its URL), `audio_filepath` points at it and `duration` is read from the
WAV header.

Where the SDK silently drops a line or stops with an exception this module chooses instead:

- audio not downloaded, not fetched, or not a readable WAV file: the SDK drops the line (so without
  downloads its manifest is always empty); here the line is kept with `audio_filepath` set to the
  task's audio URL as given and `duration` null, so the transcriptions are never lost;
- an annotation (or a task without annotations) with no transcription: the SDK stops the whole
  conversion (or writes the first character of a text given as a string); here the line is left out,
  and a text given as a string is taken whole;
- several data fields in the config: the audio is the field the text control points at, else the first
  `Audio`/`AudioPlus` object (the SDK picks one at random);
- a task without the audio field: a `ConversionError` naming the task.
"""

import hashlib
import io
import json
import posixpath
import shutil
import wave
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO
from urllib.parse import unquote, urlparse

from exports.converters.json_min import JsonMinConverter, annotator
from exports.converters.registry import ConversionContext, ConversionError
from exports.converters.source import TaskSource
from exports.converters.ziparchive import Archive

__all__ = ["convert"]

MANIFEST = "manifest.json"
AUDIO_DIR = "audio"
_AUDIO_TAGS = ("Audio", "AudioPlus")


def convert(source: TaskSource, out: BinaryIO, context: ConversionContext) -> None:
    converter = JsonMinConverter(context.label_config)
    audio_key = _audio_key(context.label_config)
    fetch = context.fetch_image if context.download_resources else None
    # Audio URL → (path in the archive, duration), and the names taken: one entry per distinct audio file, and only
    # when downloading, so that each file is packed once.
    stored: dict[str, tuple[str, float | None]] = {}
    names: set[str] = set()
    manifest_path = context.scratch_dir / MANIFEST
    with Archive(out, context.scratch_dir) as archive, manifest_path.open("w+b") as manifest:
        archive.folder(AUDIO_DIR)
        for task in source.tasks():
            audio_url: str | None = None
            for annotation, outputs in converter.annotation_outputs(task):
                text = _transcript(outputs)
                if text is None:
                    continue
                if audio_url is None:
                    audio_url = _audio_url(task, audio_key)
                if fetch is not None and audio_url not in stored:
                    stored[audio_url] = _store_audio(archive, names, audio_url, fetch)
                audio_path, duration = stored.get(audio_url, (audio_url, None))
                by = annotator(annotation.get("completed_by", {}), "")  # "" also for a task without annotations
                line = {"audio_filepath": audio_path, "duration": duration, "text": text, "annotator": by}
                manifest.write(json.dumps(line).encode("ascii") + b"\n")
        manifest.seek(0)
        with archive.stream(MANIFEST) as entry:
            shutil.copyfileobj(manifest, entry, 1 << 20)
    manifest_path.unlink(missing_ok=True)


def _audio_key(label_config: Mapping[str, Mapping[str, Any]]) -> str:
    """The data field holding the audio URL."""
    inputs = [source for info in label_config.values() for source in info.get("inputs") or ()]
    for info in label_config.values():
        if info.get("type") == "TextArea":
            for source in info.get("inputs") or ():
                if source.get("type") in _AUDIO_TAGS and source.get("value"):
                    return source["value"]
    for source in inputs:
        if source.get("type") in _AUDIO_TAGS and source.get("value"):
            return source["value"]
    for source in inputs:
        if source.get("value"):
            return source["value"]
    raise ConversionError("The label config has no audio for the ASR manifest: no control points at a data field")


def _audio_url(task: Mapping[str, Any], key: str) -> str:
    data = task.get("data")
    url = data.get(key) if isinstance(data, Mapping) else None
    if not isinstance(url, str) or not url:
        raise ConversionError(f"Task {task.get('id')} has no audio URL in the data field '{key}'")
    return url


def _transcript(outputs: Mapping[str, list[tuple[str, Mapping[str, Any]]]]) -> str | None:
    for values in outputs.values():
        if values and "text" in values[0][1]:
            text = values[0][1]["text"]
            if isinstance(text, str):
                return text
            if isinstance(text, list) and text:
                return text[0] if isinstance(text[0], str) else str(text[0])
            return None
    return None


def _store_audio(
    archive: Archive, names: set[str], url: str, fetch: Callable[[str], tuple[bytes | None, str]]
) -> tuple[str, float | None]:
    """Fetch the audio and add it to the archive: its path there and its duration, or the URL and None."""
    content, _reason = fetch(url)
    if content is None:
        return url, None
    duration = _wav_duration(content)
    if duration is None:
        return url, None
    name = posixpath.basename(unquote(urlparse(url).path)) or "audio"
    if name in names:
        stem, ext = posixpath.splitext(name)
        name = f"{stem}_{hashlib.md5(url.encode(), usedforsecurity=False).hexdigest()[:8]}{ext}"
    names.add(name)
    path = f"{AUDIO_DIR}/{name}"
    archive.write(path, content)
    return path, duration


def _wav_duration(content: bytes) -> float | None:
    try:
        with wave.open(io.BytesIO(content), "rb") as audio:
            return audio.getnframes() / float(audio.getframerate())
    except (wave.Error, EOFError, ZeroDivisionError):
        return None
