"""Converter benchmark: label-studio-sdk 2.1.2's converter against this project's, format by format.

    .venv/bin/python bench/convert.py --tasks 10000 --formats CSV,TSV,JSON_MIN,CONLL2003

For each format it writes a snapshot file of N tasks for the label config the format is measured with
(`FORMAT_CONFIGS`; kept in a cache folder between runs), then converts it in a fresh process with the
SDK's `Converter` (as Label Studio 1.23.2 runs it) and in another with this project's converter, and
prints the CPU time (user + system), the wall time, the speed-up on each, the output size and each
process's peak RSS (`ru_maxrss`) with its growth during the conversion. Each side runs `--repeat` times
(interleaved) and the fastest run counts: the machine this was written on is shared and noisy, and
the CPU time is the steadier figure there. No database is needed.

To add a format: add a config to `CONFIGS` (label config XML and a function building task number i)
when none fits, and map the format to it in `FORMAT_CONFIGS`.
"""

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NER_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Labels name="label" toName="text">
    <Label value="PER"/><Label value="ORG"/><Label value="LOC"/>
  </Labels>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="Positive"/><Choice value="Negative"/><Choice value="Neutral"/>
  </Choices>
  <TextArea name="comment" toName="text"/>
</View>"""

IMAGE_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Car"/><Label value="Person"/><Label value="Bicycle"/>
  </RectangleLabels>
  <PolygonLabels name="area" toName="image">
    <Label value="Road"/><Label value="Sidewalk"/>
  </PolygonLabels>
  <Choices name="quality" toName="image" choice="single">
    <Choice value="Good"/><Choice value="Bad"/>
  </Choices>
</View>"""

ASR_CONFIG = """<View>
  <Audio name="audio" value="$audio"/>
  <TextArea name="transcription" toName="audio"/>
</View>"""

_WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "Anna",
    "Smith",
    "from",
    "Acme",
    "Corp.",
    "visits",
    "Berlin,",
    "Germany",
]
_SENTIMENTS = ("Positive", "Negative", "Neutral")
_ANNOTATION = {
    "completed_by": 1,
    "was_cancelled": False,
    "ground_truth": False,
    "created_at": "2026-11-30T10:00:00.000000Z",
    "updated_at": "2026-11-30T10:00:00.000000Z",
    "draft_created_at": None,
    "lead_time": 7.5,
    "prediction": {},
    "result_count": 0,
    "import_id": None,
    "last_action": None,
    "bulk_created": False,
    "project": 1,
    "updated_by": None,
    "parent_prediction": None,
    "parent_annotation": None,
    "last_created_by": None,
}


def _task(index: int, data: dict, result: list[dict]) -> dict:
    return {
        "id": index,
        "annotations": [{"id": index, **_ANNOTATION, "result": result, "task": index, "unique_id": f"u{index}"}],
        "drafts": [],
        "predictions": [],
        "data": data,
        "meta": {},
        "created_at": "2026-11-30T09:00:00.000000Z",
        "updated_at": "2026-11-30T09:00:00.000000Z",
        "inner_id": index,
        "total_annotations": 1,
        "cancelled_annotations": 0,
        "total_predictions": 0,
        "comment_count": 0,
        "unresolved_comment_count": 0,
        "last_comment_updated_at": None,
        "project": 1,
        "updated_by": None,
        "file_upload": None,
        "comment_authors": [],
    }


def ner_task(index: int) -> dict:
    """A 40-word text with three entity spans, a choice and a comment."""
    words = [_WORDS[(index + k) % len(_WORDS)] for k in range(40)]
    text = " ".join(words) + "."
    result = []
    offset = 0
    for number, word in enumerate(words):
        if number in (3, 17, 30):
            result.append(
                {
                    "id": f"r{index}-{number}",
                    "from_name": "label",
                    "to_name": "text",
                    "type": "labels",
                    "origin": "manual",
                    "value": {"start": offset, "end": offset + len(word), "text": word, "labels": ["PER"]},
                }
            )
        offset += len(word) + 1
    result.append(
        {
            "id": f"c{index}",
            "from_name": "sentiment",
            "to_name": "text",
            "type": "choices",
            "value": {"choices": [_SENTIMENTS[index % 3]]},
        }
    )
    result.append(
        {
            "id": f"t{index}",
            "from_name": "comment",
            "to_name": "text",
            "type": "textarea",
            "value": {"text": ["ok/fine"]},
        }
    )
    return _task(index, {"text": text, "source": {"url": f"https://example.com/{index}", "page": index % 7}}, result)


def asr_task(index: int) -> dict:
    result = [
        {
            "id": f"t{index}",
            "from_name": "transcription",
            "to_name": "audio",
            "type": "textarea",
            "value": {"text": [f"utterance number {index}"]},
        }
    ]
    return _task(index, {"audio": f"/data/upload/1/{index % AUDIO_FILES}.wav"}, result)


AUDIO_FILES = 20


def image_task(index: int) -> dict:
    """An image URL with three boxes (one rotated), a polygon and a choice, sized as Label Studio writes them."""
    size = {"original_width": 1920, "original_height": 1080, "image_rotation": 0}

    def box(number: int, label: str, rotation: float) -> dict:
        value = {"x": 5.0 + number * 20 + index % 7, "y": 10.0 + number * 5, "width": 15.5, "height": 22.25}
        return {
            "id": f"b{index}-{number}",
            "from_name": "label",
            "to_name": "image",
            "type": "rectanglelabels",
            **size,
            "value": {**value, "rotation": rotation, "rectanglelabels": [label]},
        }

    polygon = {
        "id": f"p{index}",
        "from_name": "area",
        "to_name": "image",
        "type": "polygonlabels",
        **size,
        "value": {"points": [[10, 60], [40.5, 62], [45, 90], [12, 95.5]], "polygonlabels": ["Road"]},
    }
    choice = {"id": f"c{index}", "from_name": "quality", "to_name": "image", "type": "choices"}
    result = [box(0, "Car", 0), box(1, "Person", 0), box(2, "Bicycle", 15 + index % 30), polygon]
    result.append({**choice, "value": {"choices": ["Good"]}})
    return _task(index, {"image": f"https://images.example.com/set/{index}.jpg"}, result)


BRUSH_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <BrushLabels name="tag" toName="image">
    <Label value="Car"/><Label value="Road"/>
  </BrushLabels>
</View>"""
BRUSH_SIZE = (192, 256)  # height, width of every task's image
_BRUSH_RLES: list[list[int]] = []


def _brush_rles() -> list[list[int]]:
    """Sixteen masks (ellipses and ragged blobs), RLE-encoded once with the SDK's encoder."""
    if not _BRUSH_RLES:
        import numpy as np
        from label_studio_sdk.converter.brush import mask2rle

        rng = np.random.default_rng(0)
        height, width = BRUSH_SIZE
        yy, xx = np.ogrid[:height, :width]
        for number in range(16):
            cy, cx = rng.integers(20, height - 20), rng.integers(20, width - 20)
            ry, rx = rng.integers(10, 80), rng.integers(10, 100)
            mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            if number % 2:
                mask &= rng.random((height, width)) < 0.97  # ragged: pinholes, more runs
            _BRUSH_RLES.append(mask2rle(mask.astype(np.uint8) * 255))
    return _BRUSH_RLES


def brush_task(index: int) -> dict:
    """Two brush regions (Car, Road) on a 256x192 image."""
    rles = _brush_rles()
    height, width = BRUSH_SIZE
    result = [
        {
            "id": f"b{index}-{k}",
            "from_name": "tag",
            "to_name": "image",
            "type": "brushlabels",
            "origin": "manual",
            "original_width": width,
            "original_height": height,
            "image_rotation": 0,
            "value": {"format": "rle", "rle": rles[(index + 5 * k) % len(rles)], "brushlabels": [label]},
        }
        for k, label in enumerate(("Car", "Road"))
    ]
    return _task(index, {"image": f"/data/upload/1/{index}.png"}, result)


DOCLANG_CONFIG = """<View>
  <Image name="page" value="$image"/>
  <TextArea name="doclang" toName="page"/>
</View>"""


def doclang_task(index: int) -> dict:
    """A small DocLang document in a text area."""
    document = (
        '<doclang xmlns="https://www.doclang.ai/ns/v1"><page n="1">'
        + "".join(f"<text>{' '.join(_WORDS[(index + k) % len(_WORDS)] for k in range(12))}</text>" for _ in range(5))
        + "</page></doclang>"
    )
    region = {"from_name": "doclang", "to_name": "page", "type": "textarea", "value": {"text": [document]}}
    result = [{"id": f"d{index}", **region}]
    return _task(index, {"image": f"https://example.com/{index}.png"}, result)


@dataclass(frozen=True)
class Config:
    label_config: str
    task: Callable[[int], dict]
    media: bool = False  # needs the bench's upload folder (audio files) and downloads on both sides
    convert_kwargs: dict = field(default_factory=dict)


CONFIGS = {
    "ner": Config(NER_CONFIG, ner_task),
    "asr": Config(ASR_CONFIG, asr_task, media=True),
    "brush": Config(BRUSH_CONFIG, brush_task),
    "doclang": Config(DOCLANG_CONFIG, doclang_task),
    "image": Config(IMAGE_CONFIG, image_task),
}
FORMAT_CONFIGS = {
    "JSON_MIN": "ner",
    "CSV": "ner",
    "TSV": "ner",
    "CONLL2003": "ner",
    "ASR_MANIFEST": "asr",
    "COCO": "image",
    "YOLO": "image",
    "YOLO_OBB": "image",
    "VOC": "image",
    "BRUSH_TO_NUMPY": "brush",
    "BRUSH_TO_PNG": "brush",
    "BRUSH_TO_COCO": "brush",
    "DOCLANG": "doclang",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--formats", default="CSV,TSV,JSON_MIN,CONLL2003", help="comma-separated export formats")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ls-convert-bench")
    parser.add_argument("--skip-sdk", action="store_true", help="time this project's converters only")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; the fastest counts")
    parser.add_argument(
        "--child", nargs=5, metavar=("SIDE", "FORMAT", "CONFIG", "SNAPSHOT", "MEDIA"), help=argparse.SUPPRESS
    )
    return parser.parse_args()


def write_snapshot(config: Config, count: int, path: Path) -> None:
    """Tasks laid out as the snapshot writer writes them: `[`, one task per line, `]`."""
    import orjson

    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as file:
        file.write(b"[\n")
        for index in range(1, count + 1):
            file.write(orjson.dumps(config.task(index)))
            file.write(b",\n" if index < count else b"\n")
        file.write(b"]")
    tmp.replace(path)


def write_media(folder: Path) -> None:
    (folder / "1").mkdir(parents=True, exist_ok=True)
    for number in range(AUDIO_FILES):
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as audio:
            audio.setnchannels(1)
            audio.setsampwidth(2)
            audio.setframerate(16000)
            audio.writeframes(b"\0\0" * 16000 * (1 + number % 3))
        (folder / "1" / f"{number}.wav").write_bytes(buffer.getvalue())


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_child(side: str, export_format: str, config_name: str, snapshot: Path, media: Path) -> dict:
    """Convert once in this (fresh) process and report the figures as a dict."""
    config = CONFIGS[config_name]
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{side}-"))
    try:
        if side == "sdk":
            import logging

            from label_studio_sdk.converter import Converter

            logging.disable(logging.INFO)
            converter = Converter(
                config=config.label_config,
                project_dir=None,
                download_resources=config.media,
                upload_dir=str(media) if config.media else None,
            )
            (workdir / "out").mkdir()  # Label Studio creates it; the SDK's brush converters expect it
            before = peak_rss_mb()
            start, cpu_start = time.perf_counter(), time.process_time()
            converter.convert(str(snapshot), str(workdir / "out"), export_format, is_dir=False, **config.convert_kwargs)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            size = sum(path.stat().st_size for path in (workdir / "out").rglob("*") if path.is_file())
        else:
            from exports.converters.registry import ConversionContext, get_format
            from exports.converters.source import SnapshotSource
            from projects.label_config import parse_label_config

            def fetch(url: str):
                path = media / url.removeprefix("/data/upload/")
                return (path.read_bytes(), "") if path.is_file() else (None, "missing")

            convert = get_format(export_format).load()
            context = ConversionContext(
                label_config=parse_label_config(config.label_config),
                project_id=1,
                scratch_dir=workdir,
                download_resources=config.media,
                fetch_image=fetch if config.media else None,
            )
            before = peak_rss_mb()
            start, cpu_start = time.perf_counter(), time.process_time()
            with (workdir / "out.bin").open("wb") as out:
                convert(SnapshotSource(snapshot), out, context)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            size = (workdir / "out.bin").stat().st_size
        return {"seconds": seconds, "cpu": cpu, "bytes": size, "rss_mb": peak_rss_mb(), "rss_before_mb": before}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def measure(side: str, export_format: str, config_name: str, snapshot: Path, media: Path) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    output = subprocess.run(
        [sys.executable, __file__, "--child", side, export_format, config_name, str(snapshot), str(media)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    args = parse_args()
    if args.child:
        side, export_format, config_name, snapshot, media = args.child
        print(json.dumps(run_child(side, export_format, config_name, Path(snapshot), Path(media))))
        return
    formats = [name.strip() for name in args.formats.split(",") if name.strip()]
    unknown = [name for name in formats if name not in FORMAT_CONFIGS]
    if unknown:
        sys.exit(f"No benchmark config for {', '.join(unknown)}; add it to FORMAT_CONFIGS.")
    args.cache.mkdir(parents=True, exist_ok=True)
    media = args.cache / "media"
    write_media(media)
    rows = []
    for export_format in formats:
        config_name = FORMAT_CONFIGS[export_format]
        snapshot = args.cache / f"{config_name}-{args.tasks}.json"
        if not snapshot.exists():
            write_snapshot(CONFIGS[config_name], args.tasks, snapshot)
        runs: dict[str, list[dict]] = {"ours": [], "sdk": []}
        for _ in range(args.repeat):
            for side in ("ours",) if args.skip_sdk else ("ours", "sdk"):
                runs[side].append(measure(side, export_format, config_name, snapshot, media))
        rows.append((export_format, config_name, fastest(runs["sdk"]), fastest(runs["ours"])))
        print(f"{export_format}: done", file=sys.stderr)
    print(f"\n{args.tasks:,} tasks, fastest of {args.repeat} runs; snapshot files in {args.cache}\n")
    print(
        "| format | config | SDK CPU s | our CPU s | CPU speed-up | SDK wall s | our wall s | wall speed-up "
        "| output bytes (SDK / ours) | peak RSS, SDK (growth) | peak RSS, ours (growth) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for export_format, config_name, sdk, ours in rows:
        cells = [export_format, config_name]
        cells += [f"{sdk['cpu']:.2f}" if sdk else "–", f"{ours['cpu']:.2f}", ratio(sdk, ours, "cpu")]
        cells += [f"{sdk['seconds']:.2f}" if sdk else "–", f"{ours['seconds']:.2f}", ratio(sdk, ours, "seconds")]
        cells.append(f"{sdk['bytes']:,} / {ours['bytes']:,}" if sdk else f"{ours['bytes']:,}")
        cells += [rss(sdk) if sdk else "–", rss(ours)]
        print("| " + " | ".join(cells) + " |")


def fastest(runs: list[dict]) -> dict | None:
    if not runs:
        return None
    best = dict(min(runs, key=lambda run: run["cpu"]))
    best["seconds"] = min(run["seconds"] for run in runs)
    best["rss_mb"] = max(run["rss_mb"] for run in runs)
    return best


def ratio(sdk: dict | None, ours: dict, key: str) -> str:
    return f"{sdk[key] / ours[key]:.1f}×" if sdk else "–"


def rss(figures: dict) -> str:
    return f"{figures['rss_mb']:.1f} MB (+{figures['rss_mb'] - figures['rss_before_mb']:.1f})"


if __name__ == "__main__":
    main()
