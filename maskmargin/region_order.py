"""Choose and order the regions of each image before Mask Margin Crop: which faces, and in what order.

Mask Margin Crop makes one crop per detection, in the detections' order (regions.py), so the crop order,
and with it the order of Region Prompts' lines, is the order of the detections. `select_regions` reorders
and filters each image's detections and removes the mask pixels of every region it drops (the pixels that
region owned, its fade band included), so a dropped face is neither cropped nor changed by the stitch.
Parts of the mask that no detection touches become detections of their own (label "mask", score 0), and
without detections every connected part of the mask is one (label "mask", score 1): everything masked can
be ordered and chosen the same way.

Order: detection order (as given), left to right, right to left, top to bottom, bottom to top, largest
first, smallest first, most confident first. Then, in that order: keep by label, by size (the box's larger
side, in pixels or as a fraction of the image's larger side) and by index (`0,2`, `-1`, `1:3`).

A tracked video (detections with track ids, tracking.py) is chosen track by track, once for the batch, so a
frame never swaps faces: each track stands as its mean box and score and its largest size, the tracks are
ordered and kept as above, and the kept ones are numbered again 0, 1, ... in that order (the ids Region
Prompts' lines follow). Regions without a track there are kept only when no index is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from . import buffers
from .detection import Detection, ImageDetections
from .errors import InvalidParameter
from .masks import known_support, remember_support, tracked
from .regions import Box, Region, find_regions

ORDERS = (
    "detection order",
    "left to right",
    "right to left",
    "top to bottom",
    "bottom to top",
    "largest first",
    "smallest first",
    "most confident first",
)
SIZE_UNITS = ("px", "fraction of image")


@dataclass(frozen=True)
class RegionSelection:
    """Validated on creation: errors name the parameter."""

    order: str = "detection order"
    keep_index: str = ""  # "" keeps all; "0,2", "-1", "1:3"
    keep_labels: str = ""  # "" keeps all; "face, hand" (case-insensitive, a label matches when it starts so)
    min_size: float = 0.0
    max_size: float = 0.0  # 0: no upper limit
    size_unit: str = "px"

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise InvalidParameter(f"order must be one of {', '.join(ORDERS)}, got {self.order!r}", parameter="order")
        if self.size_unit not in SIZE_UNITS:
            raise InvalidParameter(
                f"size_unit must be one of {', '.join(SIZE_UNITS)}, got {self.size_unit!r}", parameter="size_unit"
            )
        for name in ("min_size", "max_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise InvalidParameter(f"{name} must be a number >= 0, got {value!r}", parameter=name)
        parse_indices(self.keep_index, 0)  # raises on a malformed list


def parse_indices(text: str, count: int) -> list[int]:
    """Positions picked by `text` among `count` items, in the order written, each once; "" picks all.

    Items are separated by commas or spaces: `2` (the third), `-1` (the last), `1:3` (the second and
    third, as Python slices). Indices past the end pick nothing (an image with fewer regions keeps fewer).
    """
    text = text.strip()
    if not text:
        return list(range(count))
    picked: list[int] = []
    for item in text.replace(",", " ").split():
        try:
            if ":" in item:
                parts = [int(p) if p.strip() else None for p in item.split(":")]
                if len(parts) > 3:
                    raise ValueError
                chosen = list(range(count))[slice(*parts)]
            else:
                k = int(item)
                chosen = [k + count if k < 0 else k] if -count <= k < count else []
        except ValueError:
            raise InvalidParameter(
                f"keep_index must be indices separated by commas, such as 0,2 or -1 or 1:3; got {text!r}",
                parameter="keep_index",
            ) from None
        picked += [k for k in chosen if k not in picked]
    return picked


def _labels(text: str) -> list[str]:
    return [part.strip().lower() for part in text.split(",") if part.strip()]


def _sort_key(order: str, det: Detection):
    x0, y0, x1, y1 = det.box
    return {
        "left to right": ((x0 + x1) / 2, (y0 + y1) / 2),
        "right to left": (-(x0 + x1) / 2, (y0 + y1) / 2),
        "top to bottom": ((y0 + y1) / 2, (x0 + x1) / 2),
        "bottom to top": (-(y0 + y1) / 2, (x0 + x1) / 2),
        "largest first": (-(x1 - x0) * (y1 - y0),),
        "smallest first": ((x1 - x0) * (y1 - y0),),
        "most confident first": (-det.score,),
    }[order]


def _pick(items: list[tuple[Detection, int]], selection: RegionSelection, labels: list[str], scale: int) -> list[int]:
    """The positions of the (detection, size) items kept by label and size, ordered, then picked by index."""
    kept = [
        k
        for k, (det, size) in enumerate(items)
        if (not labels or any(det.label.lower().startswith(lab) for lab in labels))
        and size >= selection.min_size * scale
        and (not selection.max_size or size <= selection.max_size * scale)
    ]
    if selection.order != "detection order":
        kept.sort(key=lambda k: _sort_key(selection.order, items[k][0]))
    return [kept[k] for k in parse_indices(selection.keep_index, len(kept))]


def _track_ranks(
    per_image: list[list[tuple[Detection, Region]]], selection: RegionSelection, labels: list[str], scale: int
) -> dict[int, int] | None:
    """{track id: its new number} of the tracks kept, chosen once for the batch; None when nothing is tracked."""
    seen: dict[int, list[tuple[Detection, Region]]] = {}
    for pairs in per_image:
        for det, region in pairs:
            if det.track is not None:
                seen.setdefault(det.track, []).append((det, region))
    if not seen:
        return None
    ids = sorted(seen)  # detection order for tracks: by id, the order they were confirmed in
    standing = []
    for track in ids:
        boxes = np.array([d.box for d, _ in seen[track]])
        mean = tuple(float(v) for v in boxes.mean(axis=0))
        score = float(np.mean([d.score for d, _ in seen[track]]))
        first = seen[track][0][0]
        standing.append(
            (
                Detection((mean[0], mean[1], mean[2], mean[3]), score, first.label, track=track),
                max(r.size for _, r in seen[track]),
            )
        )
    return {ids[k]: rank for rank, k in enumerate(_pick(standing, selection, labels, scale))}


def regions_as_detections(
    mask: torch.Tensor, found: ImageDetections | None, support: Sequence[Box] | None = None
) -> tuple[list[Detection], list[Region]]:
    """Each region of one [H, W] mask as a detection, with the region itself (same order); `support` as
    `find_regions` takes it."""
    regions = find_regions(mask, found, 0, support=support)
    dets = []
    for r in regions:
        if found is not None and r.detection is not None:
            det = found.detections[r.detection]
        else:
            x0, y0, x1, y1 = r.box
            det = Detection((float(x0), float(y0), float(x1), float(y1)), 0.0 if found is not None else 1.0, "mask")
        dets.append(det)
    return dets, regions


def select_regions(
    masks: torch.Tensor, detections: list[ImageDetections] | None, selection: RegionSelection
) -> tuple[torch.Tensor, list[ImageDetections]]:
    """(new [B, H, W] masks, new detections per image): each image's regions ordered and filtered.

    Inputs are not modified; an image with no region left keeps an all-zero mask (it passes through
    Mask Margin Crop and Inpaint Stitch unchanged).
    """
    if masks.ndim != 3:
        raise InvalidParameter(f"mask must be [batch, height, width], got shape {tuple(masks.shape)}", parameter="mask")
    b, h, w = masks.shape
    if detections is not None and len(detections) not in (b, 1):
        raise InvalidParameter(
            f"{len(detections)} detection sets for {b} masks: connect the detections made with this mask",
            parameter="detections",
        )
    labels = _labels(selection.keep_labels)
    scale = max(h, w) if selection.size_unit == "fraction of image" else 1
    founds = [None if detections is None else detections[i if len(detections) == b else 0] for i in range(b)]
    support = known_support(masks)
    per_image = [
        list(zip(*regions_as_detections(masks[i], founds[i], support[i] if support is not None else None)))
        for i in range(b)
    ]
    ranks = _track_ranks(per_image, selection, labels, scale)
    out = tracked(buffers.zeros, (b, h, w), masks.device)
    chosen: list[ImageDetections] = []
    kept: list[list[Box]] = []
    for i, pairs in enumerate(per_image):
        if ranks is None:
            pairs = [pairs[k] for k in _pick([(d, r.size) for d, r in pairs], selection, labels, scale)]
        else:
            numbered = [(ranks[t], d, r) for d, r in pairs if (t := d.track) is not None and t in ranks]
            numbered.sort(key=lambda n: n[0])
            alone = [p for p in pairs if p[0].track is None] if not selection.keep_index.strip() else []
            alone = [alone[k] for k in _pick([(d, r.size) for d, r in alone], selection, labels, scale)]
            pairs = [(replace(d, track=rank), r) for rank, d, r in numbered] + alone
        for _, r in pairs:
            _paste(out[i], masks[i], r)
        kept.append([r.box for _, r in pairs])
        found = founds[i]
        chosen.append(ImageDetections(w, h, tuple(d for d, _ in pairs), found.model if found is not None else ""))
    return remember_support(out, kept), chosen  # the kept regions' boxes hold all of the new masks


def _paste(out: torch.Tensor, mask: torch.Tensor, region: Region) -> None:
    """The mask's values on the pixels `region` owns, into the zeroed [H, W] `out`, only over its box:
    numpy on the CPU (one thread, no pool to wait on), torch elsewhere."""
    x0, y0, x1, y1 = region.box
    target, source = out[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    if target.device.type == "cpu" and source.device.type == "cpu" and source.dtype == torch.float32:
        np.copyto(target.numpy(), source.numpy(), where=region.owned)
    else:
        owned = torch.from_numpy(region.owned).to(target.device)
        target.copy_(torch.where(owned, source.to(target.device, torch.float32), target))
