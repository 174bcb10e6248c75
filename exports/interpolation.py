"""Expands video tracking keyframes to one entry per frame, as Label Studio's `interpolate_key_frames` export does."""

import copy
from typing import Any

TRACKING_TYPES = frozenset({"videorectangle"})
LINEAR_KEYS = ("x", "y", "width", "height", "rotation")


def interpolate_key_frames(result: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return `result` with each `videorectangle` region's keyframes expanded to every frame; other items unchanged."""
    expanded: list[dict[str, Any]] = []
    for item in result:
        if not _is_tracking_region(item):
            expanded.append(item)
            continue
        keyframes = item["value"]["sequence"]
        if not keyframes:
            continue
        expanded.append(_expand_region(item, keyframes))
    return expanded


def _is_tracking_region(item: dict[str, Any]) -> bool:
    """Tell whether the item is a video tracking region carrying a keyframe list."""
    kind = item.get("type")
    if not isinstance(kind, str) or kind.lower() not in TRACKING_TYPES:
        return False
    value = item.get("value")
    return isinstance(value, dict) and isinstance(value.get("sequence"), list)


def _expand_region(item: dict[str, Any], keyframes: list[dict[str, Any]]) -> dict[str, Any]:
    """Copy the region with its original keyframes plus every in-between frame, ordered by frame number."""
    region = copy.deepcopy(item)
    frames_count = region["value"].get("framesCount") or 0
    duration = region["value"].get("duration") or 0
    ordered = sorted(keyframes, key=lambda keyframe: keyframe["frame"])
    filled: list[dict[str, Any]] = []
    for position, start in enumerate(ordered):
        end = ordered[position + 1] if position + 1 < len(ordered) else None
        filled.extend(_fill_span(start, end, frames_count, duration))
    region["value"]["sequence"] = sorted(region["value"]["sequence"] + filled, key=lambda frame: frame["frame"])
    return region


def _fill_span(
    start: dict[str, Any], end: dict[str, Any] | None, frames_count: int, duration: float
) -> list[dict[str, Any]]:
    """Build the frames strictly after `start` up to `end` (exclusive) or, after the last keyframe, to the video end."""
    if not start.get("enabled", True):
        return []
    first = start["frame"]
    steps = (end["frame"] if end is not None else frames_count) - first
    last_step = steps - 1 if end is not None else steps
    divisor = max(1, steps)
    frames = []
    for step in range(1, last_step + 1):
        fraction = step / divisor
        frame = copy.deepcopy(start)
        for key in LINEAR_KEYS:
            frame[key] = start.get(key, 0) + _offset(start, end, key, fraction)
        frame["frame"] = first + step
        start_time = start.get("time", 0)
        time_offset = _offset(start, end, "time", fraction)
        frame["time"] = round(start_time + time_offset, 2)
        frame["auto"] = True
        if time_offset == 0 and duration > 0:
            frame["time"] = round(start_time + fraction * (duration - start_time), 2)
        frames.append(frame)
    return frames


def _offset(start: dict[str, Any], end: dict[str, Any] | None, key: str, fraction: float) -> float:
    """Linear change of `key` from `start` towards `end` at `fraction` of the span; 0 if unchanged or open-ended."""
    origin = start.get(key, 0)
    if end is None or origin == end.get(key):
        return 0
    return (end.get(key, 0) - origin) * fraction
