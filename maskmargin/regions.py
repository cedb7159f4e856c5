"""Masked regions of one image: what Mask Margin Crop cuts out, one crop per region.

A region is a bounding box plus the mask pixels it owns. Every mask pixel is owned by at most one
region, so stitching is a plain per-pixel choice: no paste order, no averaging of two inpaintings
(which would ghost where they disagree).

- From the mask alone, each 8-connected part of `mask > 0` is a region.
- With detections, each detection is a region: a part of the mask touched by one detection goes to
  it; a part touched by several (faces whose masks run together) is split, each pixel going to the
  nearest detection box; a part touched by none becomes a region of its own, so no masked pixel is
  left out by accident.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .bounds import tight_bounds
from .detection import ImageDetections
from .masks import box_distance

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1/y1 exclusive


@dataclass(frozen=True)
class Region:
    box: Box
    owned: np.ndarray  # bool [y1 - y0, x1 - x0]: the mask pixels (mask > 0) this region stitches back
    label: str = ""

    @property
    def size(self) -> int:
        """The larger side of the box, in pixels."""
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])


def union_box(a: Box, b: Box) -> Box:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def merge(a: Region, b: Region) -> Region:
    """One region covering both, owning what either owned."""
    box = union_box(a.box, b.box)
    owned = np.zeros((box[3] - box[1], box[2] - box[0]), dtype=bool)
    for r in (a, b):
        x0, y0 = r.box[0] - box[0], r.box[1] - box[1]
        owned[y0 : y0 + r.owned.shape[0], x0 : x0 + r.owned.shape[1]] |= r.owned
    names = dict.fromkeys(part for r in (a, b) for part in r.label.split("+") if part)
    return Region(box, owned, "+".join(names))


def find_regions(mask: torch.Tensor, found: ImageDetections | None = None, min_size: int = 0) -> list[Region]:
    """Regions of one [H, W] mask (per detection in their order, then parts no detection touches; without
    detections, the parts top to bottom); regions whose larger side is below `min_size` are dropped."""
    import cv2  # comes with mediapipe and ultralytics: connected parts in C, a few ms on a 4K frame

    # label only the rectangle that holds the mask (max > 0 is any > 0, and reduces faster): a face on a
    # 4K frame then costs a small fraction of the frame
    rect = tight_bounds(mask)
    if rect is None:
        return []
    x0, y0, x1, y1 = rect
    on = (mask[y0:y1, x0:x1] > 0).cpu().numpy().view(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(on, connectivity=8)
    frame = Labels(labels, x0, y0, mask.shape[1], mask.shape[0])
    parts = [(int(x) + x0, int(y) + y0, int(x + w) + x0, int(y + h) + y0) for x, y, w, h, _ in stats[1:count, :5]]
    if found is None:
        regions = [Region(box, frame.at(box) == k + 1) for k, box in enumerate(parts)]
    else:
        regions = _by_detection(frame, parts, found)
    return [r for r in regions if r.size >= min_size]


@dataclass(frozen=True)
class Labels:
    """Connected-part labels of a rectangle whose top-left corner is (x0, y0) in a width x height image."""

    labels: np.ndarray
    x0: int
    y0: int
    width: int
    height: int

    def at(self, box: Box) -> np.ndarray:
        """The labels inside `box` (image pixels), clipped to the labelled rectangle."""
        h, w = self.labels.shape
        x0, y0 = min(max(box[0] - self.x0, 0), w), min(max(box[1] - self.y0, 0), h)
        x1, y1 = min(max(box[2] - self.x0, x0), w), min(max(box[3] - self.y0, y0), h)
        return self.labels[y0:y1, x0:x1]


def _by_detection(frame: Labels, parts: list[Box], found: ImageDetections) -> list[Region]:
    boxes = [d.pixel_box(frame.width, frame.height) for d in found.detections]
    touching: dict[int, list[int]] = {}  # part index -> detections whose box holds some of its pixels
    for j, box in enumerate(boxes):
        present = np.bincount(frame.at(box).ravel(), minlength=1)  # counting beats sorting (np.unique)
        for part_index in np.flatnonzero(present[1:]):  # (not `k`: numpy 2's stubs type it apart from the int below)
            touching.setdefault(int(part_index), []).append(j)
    pieces: dict[int, list[Region]] = {}  # detection -> pieces of the mask it owns
    orphans: list[Region] = []
    for k, box in enumerate(parts):
        part = frame.at(box) == k + 1
        owners = touching.get(k, [])
        if not owners:
            orphans.append(Region(box, part, "mask"))
        elif len(owners) == 1:
            pieces.setdefault(owners[0], []).append(Region(box, part))
        else:  # split between the detections: each pixel to the nearest box (ties: the higher score)
            dist = torch.stack([box_distance(boxes[j], box) for j in owners]).numpy()
            nearest = dist.argmin(axis=0)
            for i, j in enumerate(owners):
                pieces.setdefault(j, []).append(_tight(box, part & (nearest == i)))
    regions = []
    for j, det in enumerate(found.detections):
        owned = [p for p in pieces.get(j, []) if p.owned.any()]
        if not owned:
            continue  # nothing of the mask left to inpaint for this detection
        region = Region(boxes[j], np.zeros((boxes[j][3] - boxes[j][1], boxes[j][2] - boxes[j][0]), bool), det.label)
        for piece in owned:
            region = merge(region, piece)  # the pieces carry no label: the detection's stays
        regions.append(region)
    return regions + orphans


def _tight(box: Box, owned: np.ndarray) -> Region:
    """The region of `owned` (placed at `box`) with its box shrunk to the pixels it owns."""
    rect = tight_bounds(owned)
    if rect is None:
        return Region(box, owned)
    x0, y0, x1, y1 = rect
    return Region((box[0] + x0, box[1] + y0, box[0] + x1, box[1] + y1), owned[y0:y1, x0:x1])
