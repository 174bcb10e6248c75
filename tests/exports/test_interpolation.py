"""Checks the keyframe interpolation against Label Studio's own implementation from label-studio-sdk."""

import copy
import json
import random
from typing import Any

import pytest

from exports.interpolation import interpolate_key_frames

video = pytest.importorskip("label_studio_sdk._extensions.label_studio_tools.postprocessing.video")
oracle = video.extract_key_frames


def keyframe(frame: int, enabled: bool = True, **values: Any) -> dict[str, Any]:
    """Build a keyframe with Label Studio's usual keys; `values` overrides the geometry and time."""
    base = {"x": 10.0, "y": 20.0, "width": 30.0, "height": 40.0, "rotation": 0, "time": frame / 25}
    return {"frame": frame, "enabled": enabled, **base, **values}


def region(
    sequence: list[dict[str, Any]], region_id: str = "r1", frames_count: int | None = 100, duration: float | None = 4.0
) -> dict[str, Any]:
    """Build a `videorectangle` result item; a None count or duration leaves the key out."""
    value: dict[str, Any] = {"sequence": sequence, "labels": ["Car"]}
    if frames_count is not None:
        value["framesCount"] = frames_count
    if duration is not None:
        value["duration"] = duration
    return {
        "id": region_id,
        "type": "videorectangle",
        "from_name": "box",
        "to_name": "video",
        "origin": "manual",
        "value": value,
    }


def choice_item() -> dict[str, Any]:
    """Build a non-tracking result item."""
    return {"id": "c1", "type": "choices", "from_name": "kind", "to_name": "video", "value": {"choices": ["Day"]}}


def same_as_label_studio(result: list[dict[str, Any]]) -> bool:
    """Compare with Label Studio's output byte for byte once serialised, so int/float and key order count too."""
    ours = interpolate_key_frames(copy.deepcopy(result))
    theirs = oracle(copy.deepcopy(result))
    return json.dumps(ours) == json.dumps(theirs)


def test_empty_result():
    assert interpolate_key_frames([]) == []


def test_other_items_are_passed_through_as_is():
    item = choice_item()
    out = interpolate_key_frames([item])
    assert out == [item]
    assert out[0] is item


def test_two_keyframes_fill_the_gap_linearly():
    # Expected frames were produced by label_studio_sdk 2.1.2's extract_key_frames and also match the oracle below.
    result = [region([keyframe(1, x=0.0, time=0.04), keyframe(5, x=8.0, width=34.0, time=0.2)], frames_count=5)]
    sequence = interpolate_key_frames(result)[0]["value"]["sequence"]
    assert [f["frame"] for f in sequence] == [1, 2, 3, 4, 5]
    assert [f["x"] for f in sequence] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert [f["width"] for f in sequence] == [30.0, 31.0, 32.0, 33.0, 34.0]
    assert [f["time"] for f in sequence] == [0.04, 0.08, 0.12, 0.16, 0.2]
    assert [f.get("auto") for f in sequence] == [None, True, True, True, None]
    assert sequence[0] == result[0]["value"]["sequence"][0]
    assert same_as_label_studio(result)


def test_last_enabled_keyframe_runs_to_the_end_of_the_video():
    result = [region([keyframe(8, x=5.5, time=1.0)], frames_count=10, duration=2.0)]
    sequence = interpolate_key_frames(result)[0]["value"]["sequence"]
    assert [f["frame"] for f in sequence] == [8, 9, 10]
    assert [f["x"] for f in sequence] == [5.5, 5.5, 5.5]
    assert [f["time"] for f in sequence] == [1.0, 1.5, 2.0]
    assert same_as_label_studio(result)


def test_disabled_keyframe_ends_the_span():
    result = [region([keyframe(1, x=0.0), keyframe(3, enabled=False, x=4.0), keyframe(7, x=9.0)], frames_count=8)]
    sequence = interpolate_key_frames(result)[0]["value"]["sequence"]
    assert [f["frame"] for f in sequence] == [1, 2, 3, 7, 8]
    assert sequence[1]["x"] == 2.0
    assert sequence[2]["enabled"] is False
    assert same_as_label_studio(result)


def test_single_disabled_keyframe_is_kept_alone():
    result = [region([keyframe(4, enabled=False)])]
    assert interpolate_key_frames(result)[0]["value"]["sequence"] == [keyframe(4, enabled=False)]
    assert same_as_label_studio(result)


def test_region_with_empty_sequence_is_dropped():
    result = [choice_item(), region([]), region([keyframe(1)], region_id="r2", frames_count=2)]
    out = interpolate_key_frames(result)
    assert [item["id"] for item in out] == ["c1", "r2"]
    assert same_as_label_studio(result)


def test_input_is_not_modified():
    result = [region([keyframe(5, x=1.0), keyframe(1, x=3.0)], frames_count=9)]
    before = copy.deepcopy(result)
    interpolate_key_frames(result)
    assert result == before


def test_unsorted_keyframes_are_ordered_by_frame():
    result = [region([keyframe(6, x=1.0), keyframe(2, x=3.0)], frames_count=7)]
    sequence = interpolate_key_frames(result)[0]["value"]["sequence"]
    assert [f["frame"] for f in sequence] == [2, 3, 4, 5, 6, 7]
    assert same_as_label_studio(result)


def test_missing_frame_count_and_duration():
    result = [region([keyframe(1), keyframe(4, y=26.0)], frames_count=None, duration=None)]
    sequence = interpolate_key_frames(result)[0]["value"]["sequence"]
    assert [f["frame"] for f in sequence] == [1, 2, 3, 4]
    assert same_as_label_studio(result)


@pytest.mark.parametrize(
    "result",
    [
        [region([keyframe(1, rotation=0), keyframe(11, rotation=45.5, x=13.37, y=0.1)])],
        [region([keyframe(0, time=0.0), keyframe(7, time=0.0, height=41.3)], duration=3.3)],
        [region([keyframe(3, x=1 / 3, width=2 / 7), keyframe(10, x=7 / 9, width=1 / 11)], frames_count=12)],
        [region([keyframe(2, x=10, y=20), keyframe(6, x=10, y=21)], frames_count=6)],
        [region([keyframe(2), keyframe(2, x=50.0), keyframe(5, x=60.0)], frames_count=6)],
        [region([keyframe(1), keyframe(4)], frames_count=0, duration=0)],
        [region([keyframe(20)], frames_count=10)],
        [region([{**keyframe(1), "auto": False, "extra": {"n": 1}}, keyframe(4, x=1.0)], frames_count=5)],
        [{**region([keyframe(1), keyframe(3, x=1.0)]), "type": "VideoRectangle"}],
        [
            choice_item(),
            region([keyframe(1, x=0.0), keyframe(5, enabled=False, x=5.0), keyframe(9, x=2.0)], frames_count=12),
            region([keyframe(3, y=1.5)], region_id="r2", frames_count=6, duration=0.25),
            {"id": "t1", "type": "textarea", "from_name": "note", "to_name": "video", "value": {"text": ["hi"]}},
            region([], region_id="r3"),
        ],
    ],
)
def test_matches_label_studio(result):
    assert same_as_label_studio(result)


def random_region(rng: random.Random, index: int) -> dict[str, Any]:
    """Build a region with random keyframes, gaps, toggles and non-integer geometry."""
    frames = rng.sample(range(1, 60), rng.randint(1, 6))
    sequence = [
        keyframe(
            frame,
            enabled=rng.random() < 0.7,
            x=round(rng.uniform(0, 90), rng.choice([0, 3, 6])),
            y=rng.choice([0, 12.5, rng.uniform(0, 90)]),
            width=rng.uniform(1, 50),
            height=rng.choice([10, 10.0, rng.uniform(1, 50)]),
            rotation=rng.choice([0, rng.uniform(-180, 180)]),
            time=rng.choice([round(frame / 30, 3), 0.0, rng.uniform(0, 3)]),
        )
        for frame in frames
    ]
    return region(
        sequence,
        region_id=f"r{index}",
        frames_count=rng.choice([None, 0, 40, 60, 75]),
        duration=rng.choice([None, 0, 2.5, rng.uniform(1, 5)]),
    )


@pytest.mark.parametrize("seed", range(40))
def test_matches_label_studio_on_random_regions(seed):
    rng = random.Random(seed)
    result = [random_region(rng, index) for index in range(rng.randint(1, 4))]
    result.insert(rng.randint(0, len(result)), choice_item())
    assert same_as_label_studio(result)
