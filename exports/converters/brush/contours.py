"""Mask outlines for COCO polygons: outer contour tracing as OpenCV does it, polygon area and bounding box."""

import numpy as np

__all__ = ["bounding_box", "polygon_area", "trace_outer_contours"]

# COCO polygons are the outer borders of the mask's 8-connected regions, as OpenCV's
# `findContours(mask, RETR_EXTERNAL, CHAIN_APPROX_SIMPLE)` gives them (the SDK's choice): Suzuki and Abe's
# border following (1985) on a copy of the mask with a one-pixel background frame, in raster order, where a
# region enclosed by another region's hole is left out, and each border keeps only the pixels where its
# direction changes. The tracing marks the border pixels it visits, which decides both whether a later
# start pixel lies on a border already traced and whether it lies inside an outer region.

_FOREGROUND = 1
_VISITED = 2  # a traced border pixel
_VISITED_EAST_EDGE = 130  # a traced border pixel whose east neighbour was seen to be background
# Chain directions: 0 east, then counter-clockwise as seen on screen (2 up, 4 west, 6 down).
_DX = (1, 1, 0, -1, -1, -1, 0, 1)
_DY = (0, -1, -1, -1, 0, 1, 1, 1)


def trace_outer_contours(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """Outer borders of the non-zero regions of a 2-D mask, as lists of (x, y) corner pixels.

    Same points, in the same order, as OpenCV's `findContours(..., RETR_EXTERNAL, CHAIN_APPROX_SIMPLE)`.
    """
    height, width = mask.shape
    step = width + 2
    framed = np.zeros((height + 2, step), dtype=np.uint8)
    framed[1:-1, 1:-1] = mask != 0
    flat = framed.ravel()
    # Candidate starts: foreground pixels with background to the west. Tracing only turns foreground into
    # marks, so the candidates only shrink and are checked again when reached.
    candidates = np.flatnonzero((flat[1:] == _FOREGROUND) & (flat[:-1] == 0)) + 1
    cells = bytearray(flat.tobytes())
    offsets = (1, 1 - step, -step, -step - 1, -1, step - 1, step, step + 1) * 2
    contours = []
    for start in candidates.tolist():
        if cells[start] != _FOREGROUND:
            continue
        row_start = start - start % step
        # Inside a region already traced when the nearest mark to the west is not an east edge.
        if cells.rfind(b"\x02", row_start, start) > cells.rfind(b"\x82", row_start, start):
            continue
        y, x = divmod(start, step)
        contours.append(_follow_border(cells, start, offsets, x - 1, y - 1))
    contours.reverse()  # OpenCV lists the last border found first
    return contours


def _follow_border(cells: bytearray, start: int, offsets: tuple[int, ...], x: int, y: int) -> list[tuple[int, int]]:
    """Walk one outer border from its first pixel, marking it; the corner points in walking order."""
    direction = 4  # the background pixel west of the start
    while True:
        direction = (direction - 1) & 7
        first = start + offsets[direction]
        if cells[first] or direction == 4:
            break
    if not cells[first]:  # an isolated pixel
        cells[start] = _VISITED_EAST_EDGE
        return [(x, y)]
    points = []
    current, previous_direction = start, direction ^ 4
    while True:
        search_end = direction
        k = search_end
        while True:  # counter-clockwise, starting after the pixel the walk came from
            k += 1
            following = current + offsets[k]
            if cells[following]:
                break
        direction = k & 7
        if 1 <= direction <= search_end:  # the search passed the east neighbour, which is background
            cells[current] = _VISITED_EAST_EDGE
        elif cells[current] == _FOREGROUND:
            cells[current] = _VISITED
        if direction != previous_direction:
            points.append((x, y))
            previous_direction = direction
        x += _DX[direction]
        y += _DY[direction]
        if following == start and current == first:
            return points
        current = following
        direction = (direction + 4) & 7


def polygon_area(points: list[tuple[int, int]]) -> int:
    """Area enclosed by a closed polygon (shoelace formula), truncated to an integer."""
    twice = 0
    px, py = points[-1]
    for x, y in points:
        twice += px * y - py * x
        px, py = x, y
    return abs(twice) // 2


def bounding_box(points: list[tuple[int, int]]) -> list[int]:
    """`[x, y, width, height]` of the pixels the points cover, the last row and column included."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return [min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1]
