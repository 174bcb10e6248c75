"""BRUSH_TO_NUMPY, BRUSH_TO_PNG and BRUSH_TO_COCO, checked against label-studio-sdk 2.1.2's converter.

Brush masks are encoded with the SDK's own RLE encoder (`mask2rle`, `encode_rle`), so the decoder is
tested on the format Label Studio writes. Each snapshot is converted by the SDK (what Label Studio 1.23.2
serves) and by this project; file names, decoded arrays, PNG pixels and COCO records must match.
"""

import io
import json
import tracemalloc
from itertools import count

import numpy as np
import pytest
from label_studio_sdk.converter.brush import decode_rle as sdk_decode_rle
from label_studio_sdk.converter.brush import encode_rle, mask2rle
from PIL import Image

from exports.converters.brush import (
    MaskTooLarge,
    RleError,
    convert_coco,
    convert_numpy,
    convert_png,
    decode_mask,
    decode_rle,
    greyscale_png,
    polygon_area,
    trace_outer_contours,
)
from exports.converters.registry import ConversionContext, ConversionError
from exports.converters.source import ListSource
from projects.label_config import parse_label_config
from tests.exports.converters.oracle import convert_ours, run_sdk, unzip, write_snapshot
from tests.exports.helpers import uniform_rle

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <BrushLabels name="tag" toName="image">
    <Label value="Car"/>
    <Label value="Straße/Weg"/>
    <Label value="空"/>
  </BrushLabels>
  <BrushLabels name="second/tag" toName="image">
    <Label value="Tree"/>
  </BrushLabels>
  <PolygonLabels name="poly" toName="image">
    <Label value="Car"/>
    <Label value="House"/>
  </PolygonLabels>
  <RectangleLabels name="box" toName="image">
    <Label value="Box"/>
  </RectangleLabels>
</View>"""

_rng = np.random.default_rng(20261130)


def rectangle(height, width):
    mask = np.zeros((height, width), np.uint8)
    mask[height // 4 : height // 2 + 1, width // 5 : width - 2] = 255
    return mask


def circle(height, width):
    yy, xx = np.ogrid[:height, :width]
    return (((yy - height / 2) ** 2 + (xx - width / 3) ** 2) <= (min(height, width) / 3) ** 2).astype(np.uint8) * 255


def ring_with_island(height, width):
    """A ring with a separate blob in its hole: only the ring is an outer border."""
    yy, xx = np.ogrid[:height, :width]
    distance = (yy - height / 2) ** 2 + (xx - width / 2) ** 2
    radius = min(height, width) / 2 - 1
    mask = ((distance <= radius**2) & (distance >= (radius * 0.7) ** 2)).astype(np.uint8) * 255
    mask[height // 2 - 1 : height // 2 + 2, width // 2 - 1 : width // 2 + 2] = 255
    return mask


def blobs(height, width):
    return (_rng.random((height, width)) < 0.35).astype(np.uint8) * 255


def grey_levels(height, width):
    """Values other than 0 and 255 (soft brush edges) survive as they are."""
    return _rng.integers(0, 4, (height, width)).astype(np.uint8) * 60


def full(height, width):
    return np.full((height, width), 255, np.uint8)


def empty(height, width):
    return np.zeros((height, width), np.uint8)


MASKS = [rectangle, circle, ring_with_island, blobs, grey_levels, full, empty]
_ids = count(1)


def brush(mask, labels, from_name="tag", **extra):
    height, width = mask.shape
    return {
        "id": f"r{next(_ids)}",
        "type": "brushlabels",
        "from_name": from_name,
        "to_name": "image",
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": {"format": "rle", "rle": mask2rle(mask), "brushlabels": labels, **extra},
    }


def polygon(points, labels, width, height):
    return {
        "id": f"p{next(_ids)}",
        "type": "polygonlabels",
        "from_name": "poly",
        "to_name": "image",
        "original_width": width,
        "original_height": height,
        "value": {"points": points, "polygonlabels": labels},
    }


def box(x, y, w, h, width, height):
    return {
        "id": f"b{next(_ids)}",
        "type": "rectanglelabels",
        "from_name": "box",
        "to_name": "image",
        "original_width": width,
        "original_height": height,
        "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": ["Box"]},
    }


def annotation(annotation_id, result, completed_by=1, created_at="2024-05-01T10:00:00.000000Z", **extra):
    return {"id": annotation_id, "completed_by": completed_by, "created_at": created_at, "result": result, **extra}


def varied_tasks():
    """Tasks covering the cases the SDK names files and counts images for."""
    tasks = []
    for index, make in enumerate(MASKS):
        height, width = 12 + 3 * index, 17 + 2 * index
        tasks.append(
            {
                "id": 100 + index,
                "data": {"image": f"/data/upload/1/page-{index}.png"},
                "annotations": [annotation(1000 + index, [brush(make(height, width), ["Car"])])],
                "predictions": [],
            }
        )
    mask = circle(20, 24)
    tasks += [
        {  # several regions, labels and controls; a cancelled annotation; an expanded annotator
            "id": 200,
            "data": {"image": "https://example.com/images/photo.JPG", "caption": "text"},
            "annotations": [
                annotation(
                    2001,
                    [
                        brush(mask, ["Car"]),
                        brush(rectangle(20, 24), ["Car"]),  # same name: counted -0, -1
                        brush(ring_with_island(20, 24), ["Straße/Weg", "空"]),  # two labels, a slash, Unicode
                        brush(blobs(20, 24), []),  # no label
                        brush(full(20, 24), ["Tree"], from_name="second/tag"),
                        polygon([[10, 10], [60.5, 12.25], [40, 80]], ["House", "Car"], 24, 20),
                        box(10, 20, 30.5, 40, 24, 20),
                        {"from_name": "unknown", "to_name": "image", "type": "brushlabels", "value": {"rle": [1]}},
                    ],
                    completed_by={"id": 5, "email": "ann.o'tator+1@example.com"},
                    created_at="2024-05-02T10:00:00.000000Z",
                ),
                annotation(2002, [brush(mask, ["Car"])], was_cancelled=True),
                annotation(2003, [brush(blobs(20, 24), ["空"])], completed_by=7),
            ],
            "predictions": [{"id": 9, "result": [brush(mask, ["Car"])]}],
        },
        {"id": 300, "data": {"image": "https://example.com/3.png"}, "annotations": []},  # no annotations
        {  # only a cancelled annotation
            "id": 301,
            "data": {"image": "https://example.com/4.png"},
            "annotations": [annotation(3011, [brush(mask, ["Car"])], was_cancelled=True)],
        },
        {  # an image URL without an image extension: no COCO image, but the masks still export
            "id": 302,
            "data": {"image": "https://example.com/image?id=4"},
            "annotations": [annotation(3021, [brush(mask, ["Car"])])],
        },
        {"id": 303, "data": {"image": "https://example.com/5.png"}, "annotations": [annotation(3031, [])]},
    ]
    return tasks


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The varied snapshot converted to each brush format by the SDK and by this project."""
    folder = tmp_path_factory.mktemp("brush")
    snapshot = write_snapshot(varied_tasks(), folder / "snapshot.json")
    results = {}
    for export_format in ("BRUSH_TO_NUMPY", "BRUSH_TO_PNG", "BRUSH_TO_COCO"):
        sdk = run_sdk(CONFIG, snapshot, export_format, folder / f"sdk-{export_format}")
        ours = unzip(convert_ours(CONFIG, snapshot, export_format, folder / f"ours-{export_format}"))
        results[export_format] = (sdk, ours)
    return results


# --- RLE -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", MASKS)
@pytest.mark.parametrize(("height", "width"), [(1, 1), (7, 13), (64, 48)])
def test_decode_mask_equals_sdk_alpha_channel(make, height, width):
    mask = make(height, width)
    rle = mask2rle(mask)
    expected = sdk_decode_rle(rle).reshape(height, width, 4)[:, :, 3]
    decoded = decode_mask(rle, width, height)
    assert decoded.dtype == np.uint8
    assert decoded.shape == (height, width)
    assert decoded.flags.c_contiguous
    assert np.array_equal(decoded, expected)
    assert np.array_equal(decoded, mask)


@pytest.mark.parametrize(
    ("word_size", "sizes", "encoder"),
    [(8, [3, 4, 8, 16], "sdk"), (8, [1, 2, 5, 16], "plain"), (16, [1, 2, 5, 16], "plain"), (5, [2, 3, 4, 5], "plain")],
)
def test_decode_rle_reads_any_word_and_run_sizes(word_size, sizes, encoder):
    # Stretches of distinct values (literal runs, some longer than 16) between runs of equal ones.
    values = np.repeat(_rng.integers(0, 32, 300), _rng.integers(1, 40, 300) * (_rng.random(300) < 0.5) + 1)
    values = np.concatenate([values, _rng.integers(0, 32, 100), [7] * 70, [1, 2, 3]]).astype(np.int64)
    rle = encode_rle(values) if encoder == "sdk" else _encode(values, word_size, sizes)
    assert np.array_equal(decode_rle(rle), sdk_decode_rle(rle))
    assert np.array_equal(decode_rle(rle), values.astype(np.uint8))


def _encode(values, word_size, sizes):
    """A plain writer of the bit layout with any word size and run-length field widths: equal neighbours
    become repeated runs, and stretches of distinct values become literal runs (as Label Studio's
    frontend encoder writes them; the SDK's encoder writes literals one at a time)."""
    bits = [f"{len(values):032b}", f"{word_size - 1:05b}", *(f"{size - 1:04b}" for size in sizes)]
    longest = 2 ** sizes[3]
    index = 0
    while index < len(values):
        end = index + 1
        while end < len(values) and values[end] == values[index] and end - index < longest:
            end += 1
        if end - index == 1:  # a literal stretch: up to the next pair of equal values
            while end < len(values) and end - index < longest and values[end] != values[end - 1]:
                end += 1
            if end < len(values) and end - index > 1 and values[end] == values[end - 1]:
                end -= 1
        run = end - index
        selector = next(k for k, size in enumerate(sizes) if run - 1 < 2**size)
        length = f"{selector:02b}{run - 1:0{sizes[selector]}b}"
        if run > 1 and values[index] == values[index + 1]:
            bits.append(f"1{length}{values[index]:0{word_size}b}")
        else:
            bits.append(f"0{length}" + "".join(f"{value:0{word_size}b}" for value in values[index:end]))
        index = end
    text = "".join(bits)
    text += "0" * (-len(text) % 8)
    return [int(text[k : k + 8], 2) for k in range(0, len(text), 8)]


@pytest.mark.parametrize(
    ("rle", "width", "height", "message"),
    [
        ([], 1, 1, "shorter than its header"),
        (mask2rle(blobs(8, 8))[:-2], 8, 8, "ends after"),
        (mask2rle(np.zeros((4, 4), np.uint8)), 5, 4, "needs 80"),
        ([1, 2, 300], 1, 1, "integers from 0 to 255"),
        ({"counts": [1]}, 1, 1, "list of byte values"),
        (_encode(np.array([256, 1, 2, 3]), 9, [3, 4, 8, 16]), 1, 1, "value 256"),
    ],
)
def test_decode_mask_rejects_corrupt_rle(rle, width, height, message):
    with pytest.raises(RleError, match=message):
        decode_mask(rle, width, height)


# --- The mask size limit -------------------------------------------------------------------------------------

MB = 1024 * 1024


def test_a_mask_the_editor_can_paint_but_above_the_limit_is_refused_before_decoding():
    """16384 x 16384, the largest canvas Label Studio's editor paints: its RLE is 55 KB, its mask 256 MB."""
    rle = uniform_rle(pixels=16384 * 16384, value=255)
    tracemalloc.start()
    try:
        with pytest.raises(MaskTooLarge) as refused:
            decode_mask(rle, 16384, 16384)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(refused.value) == "brush mask of 16384×16384 pixels exceeds EXPORT_MAX_MASK_PIXELS (100000000)"
    assert peak < 2 * MB


def test_the_limit_is_a_parameter_and_a_mask_at_it_decodes():
    rle = uniform_rle(pixels=12, value=255)
    assert np.array_equal(decode_mask(rle, 4, 3, max_pixels=12), np.full((3, 4), 255, np.uint8))
    with pytest.raises(MaskTooLarge, match=r"of 4×3 pixels exceeds EXPORT_MAX_MASK_PIXELS \(11\)"):
        decode_mask(rle, 4, 3, max_pixels=11)


def test_the_size_the_rle_declares_is_checked_before_decoding():
    """A small width and height do not let through an RLE that declares a huge mask."""
    huge = uniform_rle(pixels=16384 * 16384, value=0)
    with pytest.raises(MaskTooLarge, match=r"declares 268435456 pixels, which exceeds EXPORT_MAX_MASK_PIXELS"):
        decode_mask(huge, 2, 2)
    tracemalloc.start()
    try:
        with pytest.raises(MaskTooLarge, match="declares 268435456 pixels"):
            decode_rle(huge)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * MB  # decoded, the flat RGBA stream alone would be 1 GB
    assert np.array_equal(decode_rle(uniform_rle(pixels=3, value=7), max_pixels=3), np.full(12, 7, np.uint8))


@pytest.mark.parametrize("convert", [convert_numpy, convert_png, convert_coco])
def test_a_mask_above_the_limit_fails_the_conversion_naming_task_and_annotation(convert, tmp_path):
    """Unlike an undecodable mask, which BRUSH_TO_COCO leaves out as the SDK does, a mask too large fails."""
    region = brush(rectangle(6, 8), ["Car"])
    tasks = [{"id": 12, "data": {"image": "a.png"}, "annotations": [annotation(34, [region])]}]
    context = ConversionContext(
        label_config=parse_label_config(CONFIG), project_id=1, scratch_dir=tmp_path, max_mask_pixels=47
    )
    with pytest.raises(ConversionError) as failed:
        convert(ListSource(tasks), io.BytesIO(), context)
    assert str(failed.value) == "task 12, annotation 34: brush mask of 8×6 pixels exceeds EXPORT_MAX_MASK_PIXELS (47)"


# --- Contours --------------------------------------------------------------------------------------------------


def test_contours_equal_opencv_on_random_masks():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(7)
    for _ in range(400):
        height, width = rng.integers(1, 40, 2)
        mask = (rng.random((height, width)) < rng.random()).astype(np.uint8)
        if rng.random() < 0.5:
            mask |= ring_with_island(height, width) > 0
        expected, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        ours = trace_outer_contours(mask * 255)
        assert ours == [[tuple(point) for point in c.reshape(-1, 2).tolist()] for c in expected]
        for points, contour in zip(ours, expected, strict=True):
            assert polygon_area(points) == int(cv2.contourArea(contour))


def test_contours_keep_corners_only_and_skip_islands_in_holes():
    mask = np.zeros((9, 9), np.uint8)
    mask[1:8, 1:8] = 1
    mask[2:7, 2:7] = 0
    mask[4, 4] = 1  # an island in the hole
    assert trace_outer_contours(mask) == [[(1, 1), (1, 7), (7, 7), (7, 1)]]


# --- NumPy and PNG ---------------------------------------------------------------------------------------------


def test_numpy_files_and_arrays_equal_sdk(converted):
    sdk, ours = converted["BRUSH_TO_NUMPY"]
    assert sorted(ours.files) == sorted(sdk.files)
    assert "task-200-annotation-2001-by-ann.otator1@example.com-tag-Straße-Weg-空-0.npy" in ours.files
    assert "task-200-annotation-2001-by-ann.otator1@example.com-second-tag-Tree-0.npy" in ours.files
    assert "task-200-annotation-2001-by-ann.otator1@example.com-tag-Car-1.npy" in ours.files
    assert "task-200-annotation-2001-by-ann.otator1@example.com-tag--0.npy" in ours.files
    assert not [name for name in ours.files if "2002" in name or "-301-" in name or "-300-" in name]
    assert not ours.dirs
    for name, content in sdk.files.items():
        expected = np.load(io.BytesIO(content))
        actual = np.load(io.BytesIO(ours.files[name]))
        assert actual.dtype == expected.dtype == np.uint8
        assert actual.shape == expected.shape
        assert np.array_equal(actual, expected), name
        assert ours.files[name] == content  # the same .npy bytes (header included)


def test_png_files_and_pixels_equal_sdk(converted):
    sdk, ours = converted["BRUSH_TO_PNG"]
    assert sorted(ours.files) == sorted(sdk.files)
    assert len(ours.files) == 14  # 7 one-mask tasks, 5 + 1 masks of task 200, 1 of task 302
    for name, content in sdk.files.items():
        expected = Image.open(io.BytesIO(content))
        actual = Image.open(io.BytesIO(ours.files[name]))
        assert actual.format == "PNG"
        assert actual.mode == expected.mode == "L"
        assert actual.size == expected.size
        assert np.array_equal(np.asarray(actual), np.asarray(expected)), name


@pytest.mark.parametrize(("height", "width"), [(1, 1), (3, 700), (2100, 4200)])
def test_png_writer_round_trips_through_pillow(height, width):
    """Large masks are compressed in blocks of rows; Pillow reads every block back."""
    mask = np.zeros((height, width), np.uint8)
    mask[::7, ::3] = 255
    mask[height // 2 :, : width // 2] = 128
    image = Image.open(io.BytesIO(greyscale_png(mask)))
    assert (image.format, image.mode, image.size) == ("PNG", "L", (width, height))
    assert np.array_equal(np.asarray(image), mask)


def test_same_name_in_one_task_keeps_the_last_region(tmp_path):
    """`a/b` and `a-b` give one file name; the later region wins, as a file overwritten by the SDK."""
    config = (
        '<View><Image name="image" value="$image"/>'
        '<BrushLabels name="a/b" toName="image"><Label value="X"/></BrushLabels>'
        '<BrushLabels name="a-b" toName="image"><Label value="X"/></BrushLabels></View>'
    )
    first, second = rectangle(6, 8), circle(6, 8)
    tasks = [
        {
            "id": 1,
            "data": {"image": "a.png"},
            "annotations": [
                annotation(1, [brush(first, ["X"], from_name="a/b"), brush(second, ["X"], from_name="a-b")])
            ],
        }
    ]
    snapshot = write_snapshot(tasks, tmp_path / "snapshot.json")
    sdk = run_sdk(config, snapshot, "BRUSH_TO_NUMPY", tmp_path / "sdk")
    ours = unzip(convert_ours(config, snapshot, "BRUSH_TO_NUMPY", tmp_path / "ours"))
    assert list(ours.files) == list(sdk.files) == ["task-1-annotation-1-by-1-a-b-X-0.npy"]
    assert np.array_equal(np.load(io.BytesIO(ours.files["task-1-annotation-1-by-1-a-b-X-0.npy"])), second)


def _context(config=CONFIG, tmp_path=None):
    return ConversionContext(label_config=parse_label_config(config), project_id=1, scratch_dir=tmp_path)


def test_corrupt_rle_fails_naming_task_annotation_and_region(tmp_path):
    region = brush(rectangle(6, 8), ["Car"])
    region["value"]["rle"] = region["value"]["rle"][:-4]
    tasks = [{"id": 41, "data": {"image": "a.png"}, "annotations": [annotation(410, [region])]}]
    with pytest.raises(
        ConversionError,
        match=rf"task 41, annotation 410, brush region '{region['id']}' of 'tag'.*cannot be decoded: rle ends after",
    ):
        convert_numpy(ListSource(tasks), io.BytesIO(), _context(tmp_path=tmp_path))


def test_missing_size_fails_with_a_reason(tmp_path):
    region = brush(rectangle(6, 8), ["Car"])
    del region["original_width"]
    tasks = [{"id": 42, "data": {"image": "a.png"}, "annotations": [annotation(420, [region])]}]
    with pytest.raises(ConversionError, match="task 42, annotation 420.*original_width"):
        convert_numpy(ListSource(tasks), io.BytesIO(), _context(tmp_path=tmp_path))


@pytest.mark.parametrize("export_format", ["BRUSH_TO_NUMPY", "BRUSH_TO_PNG"])
def test_no_brush_masks_fails_as_label_studio_does(tmp_path, export_format):
    """The SDK writes no file, and Label Studio then fails the conversion: "No converted file found"."""
    tasks = [
        {"id": 1, "data": {"image": "a.png"}, "annotations": []},
        {"id": 2, "data": {"image": "b.png"}, "annotations": [annotation(1, [box(1, 2, 3, 4, 10, 10)])]},
    ]
    snapshot = write_snapshot(tasks, tmp_path / "snapshot.json")
    assert not run_sdk(CONFIG, snapshot, export_format, tmp_path / "sdk").files
    with pytest.raises(ConversionError, match="No converted file found"):
        convert_ours(CONFIG, snapshot, export_format, tmp_path / "ours")


class _CountingSource(ListSource):
    def __init__(self, tasks):
        super().__init__(tasks)
        self.passes = 0

    def tasks(self):
        self.passes += 1
        yield from super().tasks()


def test_numpy_reads_the_snapshot_once(tmp_path):
    source = _CountingSource(varied_tasks())
    convert_numpy(source, io.BytesIO(), _context(tmp_path=tmp_path))
    assert source.passes == 1


# --- COCO ------------------------------------------------------------------------------------------------------


def test_coco_equals_sdk(converted):
    sdk, ours = converted["BRUSH_TO_COCO"]
    assert sorted(ours.files) == sorted(sdk.files) == ["result_coco.json"]
    assert ours.dirs == sdk.dirs == {"images"}
    expected = json.loads(sdk.files["result_coco.json"])
    actual = json.loads(ours.files["result_coco.json"])
    assert list(actual) == list(expected) == ["images", "annotations", "categories", "info"]
    assert actual["images"] == expected["images"]
    assert actual["annotations"] == expected["annotations"]
    # Colours are random in the SDK; here they depend on the name only.
    strip = [{k: v for k, v in c.items() if k != "color"} for c in expected["categories"]]
    assert [{k: v for k, v in c.items() if k != "color"} for c in actual["categories"]] == strip
    assert all(len(c["color"]) == 7 and c["color"].startswith("#") for c in actual["categories"])
    assert set(actual["info"]) == set(expected["info"])
    # The varied snapshot reaches every kind of shape.
    assert any(a["segmentation"] == [] for a in actual["annotations"])  # a rectangle
    assert {c["name"] for c in actual["categories"]} >= {"Car", "Straße/Weg", "空", "House", "Box", "Tree"}
    assert len(actual["annotations"]) > 20


def test_coco_skips_an_undecodable_mask_as_the_sdk_does(tmp_path):
    broken = brush(rectangle(6, 8), ["Car"])
    broken["value"]["rle"] = broken["value"]["rle"][:-4]
    tasks = [
        {"id": 1, "data": {"image": "a.png"}, "annotations": [annotation(1, [broken, brush(circle(6, 8), ["Car"])])]}
    ]
    snapshot = write_snapshot(tasks, tmp_path / "snapshot.json")
    expected = json.loads(run_sdk(CONFIG, snapshot, "BRUSH_TO_COCO", tmp_path / "sdk").files["result_coco.json"])
    actual = json.loads(
        unzip(convert_ours(CONFIG, snapshot, "BRUSH_TO_COCO", tmp_path / "ours")).files["result_coco.json"]
    )
    assert actual["annotations"] == expected["annotations"]
    assert len(actual["annotations"]) == 1


def test_coco_without_annotations_is_an_empty_dataset(tmp_path):
    """Unlike the mask formats, the SDK always writes result_coco.json, so an empty dataset is not an error."""
    tasks = [
        {"id": 1, "data": {"image": "a.png"}, "annotations": []},
        {"id": 2, "data": {"image": "b.png"}, "annotations": [annotation(1, [])]},
    ]
    snapshot = write_snapshot(tasks, tmp_path / "snapshot.json")
    expected = json.loads(run_sdk(CONFIG, snapshot, "BRUSH_TO_COCO", tmp_path / "sdk").files["result_coco.json"])
    ours = unzip(convert_ours(CONFIG, snapshot, "BRUSH_TO_COCO", tmp_path / "ours"))
    actual = json.loads(ours.files["result_coco.json"])
    assert ours.dirs == {"images"}
    assert (actual["images"], actual["annotations"], actual["categories"]) == ([], [], [])
    assert (expected["images"], expected["annotations"], expected["categories"]) == ([], [], [])


def test_labels_control_masks_export_and_plain_brush_ones_do_not(tmp_path):
    """The SDK reads masks from BrushLabels and Labels controls only; a plain Brush control's are left out."""
    config = (
        '<View><Image name="image" value="$image"/><Brush name="brush" toName="image"/>'
        '<Labels name="lbl" toName="image"><Label value="Sky"/></Labels></View>'
    )
    mask = circle(9, 11)
    labelled = {**brush(mask, ["Sky"], from_name="lbl"), "type": "labels"}
    labelled["value"] = {"format": "rle", "rle": mask2rle(mask), "labels": ["Sky"]}
    plain = {**brush(mask, [], from_name="brush"), "type": "brush"}
    plain["value"] = {"format": "rle", "rle": mask2rle(mask)}
    tasks = [{"id": 1, "data": {"image": "a.png"}, "annotations": [annotation(1, [labelled, plain])]}]
    snapshot = write_snapshot(tasks, tmp_path / "snapshot.json")
    sdk = run_sdk(config, snapshot, "BRUSH_TO_PNG", tmp_path / "sdk")
    ours = unzip(convert_ours(config, snapshot, "BRUSH_TO_PNG", tmp_path / "ours"))
    assert list(ours.files) == list(sdk.files) == ["task-1-annotation-1-by-1-lbl-Sky-0.png"]
