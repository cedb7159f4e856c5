"""Detections: what every backend returns and every consumer (masks, crop, API) reads."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from .bounds import tight_bounds


@dataclass(frozen=True)
class Detection:
    """One detected object in full-image pixel coordinates.

    `box` is (x_min, y_min, x_max, y_max) in pixels, x_max/y_max exclusive edges (a box covering
    pixel columns 10..19 is x_min=10, x_max=20). `mask`, when present, is the object's own shape as
    a bool array covering the integer rectangle `mask_box` of the image (kept local so that many
    detections on a large image stay small); None means the shape is the box itself.
    """

    box: tuple[float, float, float, float]
    score: float
    label: str
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)
    mask_box: tuple[int, int, int, int] | None = None
    # the box of the object this detection is a part of (the face of a lips region), None for a whole
    # object: two detections of one part are told apart by their objects, whose boxes are far larger
    part_of: tuple[float, float, float, float] | None = None
    # the id of the video track this detection belongs to (tracking.py), None for a frame seen alone
    track: int | None = None

    def pixel_box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The box as whole pixels clipped to the image: pixels whose centres lie inside the box."""
        x0, y0, x1, y1 = self.box  # math.floor: far cheaper than np.floor on a scalar (runs per box per use)
        return (
            min(max(math.floor(x0 + 0.5), 0), width),
            min(max(math.floor(y0 + 0.5), 0), height),
            min(max(math.floor(x1 + 0.5), 0), width),
            min(max(math.floor(y1 + 0.5), 0), height),
        )

    def moved(self, dx: int, dy: int) -> Detection:
        """This detection shifted by whole pixels (from a tile's coordinates to the image's)."""
        x0, y0, x1, y1 = self.box
        mask_box = None
        if self.mask_box is not None:
            mx0, my0, mx1, my1 = self.mask_box
            mask_box = (mx0 + dx, my0 + dy, mx1 + dx, my1 + dy)
        part_of = None
        if self.part_of is not None:
            px0, py0, px1, py1 = self.part_of
            part_of = (px0 + dx, py0 + dy, px1 + dx, py1 + dy)
        return replace(self, box=(x0 + dx, y0 + dy, x1 + dx, y1 + dy), mask_box=mask_box, part_of=part_of)

    @property
    def whole_box(self) -> tuple[float, float, float, float]:
        """The box of the whole object: `part_of` for a part, else the detection's own box."""
        return self.part_of if self.part_of is not None else self.box

    def region(self, width: int, height: int) -> tuple[tuple[int, int, int, int], np.ndarray]:
        """(rect, bool array) of this detection's shape, clipped to the image; rect = (x0, y0, x1, y1)."""
        if self.mask is None or self.mask_box is None:
            x0, y0, x1, y1 = self.pixel_box(width, height)
            return (x0, y0, x1, y1), np.ones((max(y1 - y0, 0), max(x1 - x0, 0)), dtype=bool)
        mx0, my0, mx1, my1 = self.mask_box
        cx0, cy0 = max(mx0, 0), max(my0, 0)
        cx1, cy1 = min(mx1, width), min(my1, height)
        local = self.mask[cy0 - my0 : max(cy1 - my0, cy0 - my0), cx0 - mx0 : max(cx1 - mx0, cx0 - mx0)]
        return (cx0, cy0, max(cx1, cx0), max(cy1, cy0)), local

    def full_mask(self, width: int, height: int) -> np.ndarray:
        """This detection's shape as a bool [height, width] array."""
        out = np.zeros((height, width), dtype=bool)
        (x0, y0, x1, y1), local = self.region(width, height)
        out[y0:y1, x0:x1] = local
        return out

    def to_api(self) -> dict[str, int]:
        """The API's detection object: integer pixel box, and `track_id` for a tracked one (video)."""
        x0, y0, x1, y1 = self.box
        out = {"x_min": int(round(x0)), "y_min": int(round(y0)), "x_max": int(round(x1)), "y_max": int(round(y1))}
        if self.track is not None:
            out["track_id"] = self.track
        return out


@dataclass(frozen=True)
class ImageDetections:
    """All detections on one image, with that image's size: the DETECTIONS value holds one per image."""

    width: int
    height: int
    detections: tuple[Detection, ...]
    model: str = ""

    def to_api(self) -> list[dict[str, int]]:
        return [d.to_api() for d in self.detections]


def select(detections: list[Detection], confidence: float, max_detections: int) -> list[Detection]:
    """Detections scoring at least `confidence`, highest first, at most `max_detections` of them."""
    kept = [d for d in detections if d.score >= confidence]
    kept.sort(key=lambda d: d.score, reverse=True)
    return kept[:max_detections]


def fill_polygons(polygons: list[np.ndarray]) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """Fill polygons ([K, 2] x, y in pixels) into one shape; returns (rect, local bool mask).

    Exact: a pixel is inside when its centre (i + 0.5, j + 0.5) is inside a polygon (scanline with
    the even-odd rule), so a shape that contains another always contains its pixels. The rect may
    extend past the image (callers clip it).
    """
    allpts = np.concatenate(polygons)
    x0 = int(np.floor(allpts[:, 0].min()))
    y0 = int(np.floor(allpts[:, 1].min()))
    x1 = int(np.ceil(allpts[:, 0].max())) + 1
    y1 = int(np.ceil(allpts[:, 1].max())) + 1
    out = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    centres = np.arange(y0, y1) + 0.5
    for poly in polygons:
        out |= _scanline_fill(np.asarray(poly, dtype=np.float64), centres, x0, x1 - x0)
    return (x0, y0, x1, y1), out


def _scanline_fill(poly: np.ndarray, yc: np.ndarray, x0: int, width: int) -> np.ndarray:
    a, b = poly, np.roll(poly, -1, axis=0)
    lo, hi = np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1])
    crosses = (yc[:, None] >= lo[None]) & (yc[:, None] < hi[None])  # [rows, edges], half-open: no double count
    dy = np.where(b[:, 1] == a[:, 1], 1.0, b[:, 1] - a[:, 1])
    xs = a[None, :, 0] + (yc[:, None] - a[None, :, 1]) * ((b[:, 0] - a[:, 0]) / dy)[None]
    xs = np.sort(np.where(crosses, xs, np.inf), axis=1)
    # columns whose centre j + 0.5 lies in [xs[2k], xs[2k+1]): j from ceil(x - 0.5)
    cols = np.clip(np.ceil(xs - 0.5) - x0, 0, width)
    starts, ends = cols[:, 0::2], cols[:, 1::2]
    n = min(starts.shape[1], ends.shape[1])
    marks = np.zeros((len(yc), width + 1), dtype=np.int32)
    rows = np.repeat(np.arange(len(yc)), n)
    valid = np.isfinite(xs[:, 0::2][:, :n]).ravel() & np.isfinite(xs[:, 1::2][:, :n]).ravel()
    np.add.at(marks, (rows[valid], starts[:, :n].ravel()[valid].astype(int)), 1)
    np.add.at(marks, (rows[valid], ends[:, :n].ravel()[valid].astype(int)), -1)
    return np.cumsum(marks, axis=1)[:, :width] > 0


def shape_detection(
    polygons: list[np.ndarray],
    score: float,
    label: str,
    width: int,
    height: int,
    part_of: tuple[float, float, float, float] | None = None,
) -> Detection:
    """A detection whose shape is the union of `polygons` inside the image; its box is the shape's tight bounds.
    `part_of`: the box of the object the shape is a part of (a face, for a feature)."""
    (x0, y0, x1, y1), local = fill_polygons(polygons)
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    local = local[cy0 - y0 : max(cy1 - y0, cy0 - y0), cx0 - x0 : max(cx1 - x0, cx0 - x0)]
    x0, y0 = cx0, cy0
    rect = tight_bounds(local)
    if rect is None:
        c = np.concatenate(polygons).mean(axis=0)
        return Detection((float(c[0]), float(c[1]), float(c[0]), float(c[1])), score, label, part_of=part_of)
    local = local[rect[1] : rect[3], rect[0] : rect[2]]
    bx0, by0 = x0 + rect[0], y0 + rect[1]
    box = (float(bx0), float(by0), float(bx0 + local.shape[1]), float(by0 + local.shape[0]))
    mask_box = (bx0, by0, bx0 + local.shape[1], by0 + local.shape[0])
    return Detection(box, score, label, mask=local, mask_box=mask_box, part_of=part_of)
