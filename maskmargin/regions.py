"""Masked regions of one image: what Mask Margin Crop cuts out, one crop per region.

A region is a bounding box plus the mask pixels it owns. Every mask pixel is owned by at most one
region, so stitching is a plain per-pixel choice: no paste order, no averaging of two inpaintings
(which would ghost where they disagree).

- From the mask alone, each 8-connected part of `mask > 0` is a region.
- With detections, each detection is a region: a part of the mask touched by one detection goes to
  it; a part touched by several (faces whose masks run together) is split, each pixel going to the
  nearest detection box; a part touched by none becomes a region of its own, so no masked pixel is
  left out by accident.

Connected parts are labelled per occupied window, not over the rectangle that holds the whole mask
(nearly the whole frame when faces are spread over it): the frame is cut along empty rows and
columns (no 8-connected part crosses an empty line) until each window holds what cannot be cut,
and each window is labelled on its own. The result is the same as labelling the whole frame.
When only the detections' parts are wanted, the windows are looked for inside rectangles grown from the
detection boxes until nothing masked lies on their edge (no part leaves them), and the rest of the frame is
never read: on a video frame a whole-frame pass reads 4-8 MB where a face's part is a few hundred KB.
The same holds for every part when the mask's support is known (`masks.known_support`: a mask made by
`build_masks`, Image Mask, Select Regions or Track Video, unchanged since): only the rectangles that can hold
a masked pixel are read, and the regions are those a whole-frame read would find.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

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
    detection: int | None = None  # the index of the detection this region belongs to, if any

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


def masked(mask: torch.Tensor) -> np.ndarray:
    """A numpy array whose pixels above 0 are the masked ones: a CPU tensor's own memory (numpy then
    reads it in one thread, with no thread pool to wait on), `mask > 0` as uint8 made on the device and
    transferred once for a tensor on a GPU."""
    if mask.device.type == "cpu" and mask.dtype in (torch.float32, torch.float64, torch.float16, torch.uint8):
        return mask.numpy()
    return (mask > 0).to(torch.uint8).cpu().numpy()


def _runs(peak: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of consecutive entries above 0 of a 1-d array."""
    idx = np.flatnonzero(peak > 0)
    if not len(idx):
        return []
    cuts = np.flatnonzero(np.diff(idx) > 1)
    starts = np.concatenate(([idx[0]], idx[cuts + 1]))
    ends = np.concatenate((idx[cuts], [idx[-1]])) + 1
    return list(zip(starts.tolist(), ends.tolist()))


def occupied_windows(on: np.ndarray) -> list[Box]:
    """Rectangles that hold every pixel above 0 of the 2-d array `on`, cut along empty rows and columns
    until no window can be cut further: no 8-connected part spans two of them."""
    windows: list[Box] = []
    todo: list[Box] = [(0, 0, on.shape[1], on.shape[0])]
    while todo:
        x0, y0, x1, y1 = todo.pop()
        rows = _runs(on[y0:y1, x0:x1].max(axis=1))  # numpy's SIMD max: 10-20x OpenCV's reduce
        for r0, r1 in rows:
            cols = _runs(on[y0 + r0 : y0 + r1, x0:x1].max(axis=0))
            for c0, c1 in cols:
                window = (x0 + c0, y0 + r0, x0 + c1, y0 + r1)
                if len(rows) == 1 and len(cols) == 1:
                    windows.append(window)  # tight on both axes and cut by neither: label it
                else:
                    todo.append(window)  # smaller than the one it came from: try to cut it again
    return windows


@dataclass(frozen=True)
class Parts:
    """The 8-connected parts of a mask, labelled window by window; part k is `boxes[k]`, in the order a
    raster scan of the whole frame meets them (top to bottom, then left to right)."""

    windows: list[Box]
    labels: list[np.ndarray]  # per window: its labels (0 = not masked)
    boxes: list[Box]  # per part, in image pixels
    where: list[tuple[int, int]]  # per part: (window, its label there)

    def owned(self, k: int) -> np.ndarray:
        """bool [box]: the pixels of part k."""
        w, label = self.where[k]
        wx0, wy0 = self.windows[w][:2]
        x0, y0, x1, y1 = self.boxes[k]
        return self.labels[w][y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0] == label

    def touching(self, box: Box) -> list[int]:
        """The parts with at least one pixel inside `box`, in part order.

        Decided from the parts' boxes where they lie wholly inside or outside `box`; only a part that
        `box` cuts is looked at pixel by pixel, and only inside the cut."""
        if not self.boxes:
            return []
        parts = np.asarray(self.boxes)
        x0, y0 = np.maximum(parts[:, 0], box[0]), np.maximum(parts[:, 1], box[1])
        x1, y1 = np.minimum(parts[:, 2], box[2]), np.minimum(parts[:, 3], box[3])
        meets = (x0 < x1) & (y0 < y1)
        inside = meets & (x0 == parts[:, 0]) & (y0 == parts[:, 1]) & (x1 == parts[:, 2]) & (y1 == parts[:, 3])
        found = set(np.flatnonzero(inside).tolist())
        for k in np.flatnonzero(meets & ~inside).tolist():
            w, label = self.where[k]
            wx0, wy0 = self.windows[w][:2]
            cut = self.labels[w][y0[k] - wy0 : y1[k] - wy0, x0[k] - wx0 : x1[k] - wx0]
            if (cut == label).any():
                found.add(k)
        return sorted(found)


def closed_window(on: np.ndarray, box: Box) -> Box:
    """A rectangle holding `box` whose one-pixel ring outside holds no pixel above 0, so that every
    8-connected part with a pixel in it lies wholly inside: grown from `box` side by side (by an eighth of
    its size, at least 16 pixels: a mask's fade band reaches a little beyond its box) where the ring meets a
    pixel. Reads only the rings."""
    h, w = on.shape
    x0, y0, x1, y1 = box
    grown = True
    while grown:
        step, grown = max(16, max(x1 - x0, y1 - y0) // 8), False
        cols, rows = slice(max(x0 - 1, 0), min(x1 + 1, w)), slice(max(y0 - 1, 0), min(y1 + 1, h))
        if y0 > 0 and on[y0 - 1, cols].max() > 0:
            y0, grown = max(y0 - step, 0), True
        if y1 < h and on[y1, cols].max() > 0:
            y1, grown = min(y1 + step, h), True
        if x0 > 0 and on[rows, x0 - 1].max() > 0:
            x0, grown = max(x0 - step, 0), True
        if x1 < w and on[rows, x1].max() > 0:
            x1, grown = min(x1 + step, w), True
    return x0, y0, x1, y1


def _windows_near(on: np.ndarray, boxes: list[Box]) -> list[Box]:
    """Occupied windows holding every part with a pixel in one of `boxes` (and maybe other parts near
    them), found inside closed windows around the boxes: the rest of the frame is never read."""
    closed: list[Box] = []  # disjoint, so no part is in two of them
    for box in boxes:
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        window = closed_window(on, box)
        while (hit := next((c for c in closed if _overlap(c, window)), None)) is not None:
            closed.remove(hit)
            window = closed_window(on, union_box(hit, window))
        closed.append(window)
    return [
        (x0 + wx0, y0 + wy0, x1 + wx0, y1 + wy0)
        for wx0, wy0, wx1, wy1 in closed
        for x0, y0, x1, y1 in occupied_windows(on[wy0:wy1, wx0:wx1])
    ]


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def find_parts(on: np.ndarray, near: list[Box] | None = None) -> Parts:
    """The connected parts (8-connectivity) of the pixels above 0 of the 2-d array `on`; given `near`,
    at least those with a pixel in one of these boxes, looking only around them."""
    import cv2  # connected parts in C, a few ms on a 4K frame

    whole = near is None
    if whole:  # one pass to 0/1 bytes: the scans and the labelling below then read a quarter of the bytes
        on = np.greater(on, 0).view(np.uint8)
    windows = occupied_windows(on) if whole else _windows_near(on, near or [])
    labels, found = [], []
    for w, (x0, y0, x1, y1) in enumerate(windows):
        window = on[y0:y1, x0:x1] if whole else np.greater(on[y0:y1, x0:x1], 0).view(np.uint8)
        count, lab = cv2.connectedComponents(window, connectivity=8)  # a third of the time with stats
        if count == 2:  # one part: an occupied window is tight round what it holds
            stats = np.array([[0, 0, 0, 0], [0, 0, x1 - x0, y1 - y0]])
        else:
            count, lab, stats, _ = cv2.connectedComponentsWithStats(window, connectivity=8)
        labels.append(lab)
        for k in range(1, count):
            x, y, bw, bh = (int(v) for v in stats[k, :4])
            first = int(np.argmax(lab[y, x : x + bw] == k))  # where a raster scan meets the part
            found.append(((y + y0, x + first + x0), (x + x0, y + y0, x + bw + x0, y + bh + y0), (w, k)))
    found.sort(key=lambda f: f[0])
    return Parts(windows, labels, [f[1] for f in found], [f[2] for f in found])


def find_regions(
    mask: torch.Tensor,
    found: ImageDetections | None = None,
    min_size: int = 0,
    orphans: bool = True,
    support: Sequence[Box] | None = None,
) -> list[Region]:
    """Regions of one [H, W] mask (per detection in their order, then parts no detection touches; without
    detections, the parts top to bottom); regions whose larger side is below `min_size` are dropped.
    `orphans=False` leaves out the parts no detection touches, and then only the mask around the detections'
    boxes is read (Track Video, which moves each detection's part, on long clips). `support`: rectangles known
    to hold every pixel above 0 (`masks.known_support`), so that only they are read; the same regions."""
    on = masked(mask)
    near = list(support) if support is not None else None
    if found is None:
        parts = find_parts(on, near)
        regions = [Region(box, parts.owned(k)) for k, box in enumerate(parts.boxes)]
    else:
        boxes = [d.pixel_box(mask.shape[1], mask.shape[0]) for d in found.detections]
        parts = find_parts(on, near if orphans else boxes)
        regions = _by_detection(parts, found, boxes)
        if not orphans:
            regions = [r for r in regions if r.detection is not None]
    return [r for r in regions if r.size >= min_size]


def _by_detection(parts: Parts, found: ImageDetections, boxes: list[Box]) -> list[Region]:
    touching: dict[int, list[int]] = {}  # part index -> detections whose box holds some of its pixels
    for j, box in enumerate(boxes):
        for k in parts.touching(box):
            touching.setdefault(k, []).append(j)
    pieces: dict[int, list[Region]] = {}  # detection -> pieces of the mask it owns
    orphans: list[Region] = []
    for k, box in enumerate(parts.boxes):
        part = parts.owned(k)
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
        regions.append(replace(region, detection=j))
    return regions + orphans


def _tight(box: Box, owned: np.ndarray) -> Region:
    """The region of `owned` (placed at `box`) with its box shrunk to the pixels it owns."""
    rect = tight_bounds(owned)
    if rect is None:
        return Region(box, owned)
    x0, y0, x1, y1 = rect
    return Region((box[0] + x0, box[1] + y0, box[0] + x1, box[1] + y1), owned[y0:y1, x0:x1])
