"""A second look at an image in overlapping tiles, for objects too small for the detector's input.

Detectors shrink the whole image to their input size first (BlazeFace full range: 192 px, YOLO: 640
px), so an object too few input pixels wide is missed: BlazeFace loses faces under about 6% of the
image's longer side (a 90 px face in a 1600 px photo, 230 px in 4K). Tiles show such faces larger:
2 x 2 tiles of 60% each way for images up to 2560 px, finer grids beyond (3 x 3 up to 3584 px, 4 x 4 for
4K...), so that no tile is longer than 1536 px. Neighbouring tiles overlap by a third of a tile; a
detection touching a tile's inner edge is dropped (it is whole in a neighbouring tile or in the
whole-image pass), then all passes are merged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .backends.base import Detector
from .detection import Detection, select

MAX_TILE_SIDE = 1536  # pixels: a larger image gets a finer grid
EDGE = 2  # pixels: a box this close to a tile's inner edge is cut by it
SAME_IOU = 0.45  # two boxes this alike are one object
INSIDE = 0.8  # a box this much inside a higher-scoring one is a part of it
PER_VIEW = 20  # detections kept per view before merging: the API's largest maxDetections


def grid_size(width: int, height: int) -> int:
    """Tiles per row and column: 2, or more for an image whose 2 x 2 tiles would exceed MAX_TILE_SIDE."""
    n = 2
    while tile_share(n) * max(width, height) > MAX_TILE_SIDE:
        n += 1
    return n


def tile_share(n: int) -> float:
    """Each tile's share of the image's width and height in an n x n grid whose neighbouring tiles
    overlap by a third of a tile: n tiles of s with n - 1 steps of 2s/3 span the image."""
    return 3 / (2 * n + 1)


def tile_rects(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """The tiles (x0, y0, x1, y1) of an image, row by row."""
    n = grid_size(width, height)
    tw, th = math.ceil(width * tile_share(n)), math.ceil(height * tile_share(n))
    xs = [round(i * (width - tw) / (n - 1)) for i in range(n)]
    ys = [round(i * (height - th) / (n - 1)) for i in range(n)]
    return [(x, y, x + tw, y + th) for y in ys for x in xs]


def detect_with_tiles(detector: Detector, image: np.ndarray, confidence: float, max_detections: int) -> list[Detection]:
    """Detections on the whole image and on its tiles, merged, then selected as the API says."""
    h, w = image.shape[:2]
    rects = tile_rects(w, h)
    views = [image] + [np.ascontiguousarray(image[y0:y1, x0:x1]) for x0, y0, x1, y1 in rects]
    found = detector.detect_batch(views, confidence, PER_VIEW)
    candidates = list(found[0])
    for rect, tile_found in zip(rects, found[1:]):
        # a part (lips) is judged by its whole object (the face): a face cut by the tile's edge gives a bad mesh
        candidates += [d.moved(rect[0], rect[1]) for d in tile_found if not _cut(d.whole_box, rect, w, h)]
    return select(merge(candidates), confidence, max_detections)


def _cut(box: Sequence[float], rect: tuple[int, int, int, int], width: int, height: int) -> bool:
    """Whether a box (tile pixels) touches an edge of the tile that lies inside the image."""
    x0, y0, x1, y1 = box
    tw, th = rect[2] - rect[0], rect[3] - rect[1]
    return (
        (rect[0] > 0 and x0 <= EDGE)
        or (rect[1] > 0 and y0 <= EDGE)
        or (rect[2] < width and x1 >= tw - EDGE)
        or (rect[3] < height and y1 >= th - EDGE)
    )


def merge(detections: list[Detection]) -> list[Detection]:
    """One detection per object: the highest-scoring of each group of boxes that are alike, or of a
    box and the parts of it that a tile saw. Parts (a face's lips) are compared by their objects' boxes:
    two lips boxes a pixel apart on a small face barely overlap, their faces' boxes nearly coincide."""
    kept: list[Detection] = []
    for d in sorted(detections, key=lambda d: d.score, reverse=True):
        if all(not _same(d.whole_box, k.whole_box) for k in kept):
            kept.append(d)
    return kept


def _same(a: Sequence[float], b: Sequence[float]) -> bool:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return False
    inter = iw * ih
    area_a, area_b = (a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area_a + area_b - inter) >= SAME_IOU or inter / max(min(area_a, area_b), 1e-9) >= INSIDE
