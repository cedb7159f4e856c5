"""SEGS both ways, without importing Impact-Pack: our regions as Impact's SEGS value, and SEGS as our
detections and mask.

Impact-Pack's SEGS value is `((height, width), [SEG, ...])` for one image, each SEG a namedtuple with the
fields `cropped_image, cropped_mask, confidence, crop_region, bbox, label, control_net_wrapper`:

- `crop_region` and `bbox`: `[x1, y1, x2, y2]` ints in the image's pixels (x2/y2 exclusive); the crop
  region is the bbox grown by `crop_factor` about its centre, moved (not cut) to stay inside the image;
- `cropped_mask`: float32 numpy `[y2 - y1, x2 - x1]` of the crop region, 0..1;
- `cropped_image`: the crop region of the image, a `[1, h, w, 3]` tensor (or None);
- `confidence`: the detection's score; `label`: its label; `control_net_wrapper`: None.

Impact's nodes read the fields by name, so a namedtuple with the same name and fields is accepted as theirs.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import numpy as np
import torch

from .detection import Detection, ImageDetections
from .errors import InvalidParameter
from .regions import find_regions

SEG = namedtuple(
    "SEG",
    ["cropped_image", "cropped_mask", "confidence", "crop_region", "bbox", "label", "control_net_wrapper"],
    defaults=[None],
)
Segs = tuple[tuple[int, int], list[Any]]


def _span(centre: float, size: float, limit: int) -> tuple[int, int]:
    """[start, end) of `size` pixels about `centre`, moved to lie inside [0, limit) (cut only when larger)."""
    size = min(max(round(size), 1), limit)
    start = round(centre - size / 2)
    start = min(max(start, 0), limit - size)
    return start, start + size


def crop_region(bbox: tuple[int, int, int, int], crop_factor: float, width: int, height: int) -> list[int]:
    x0, y0, x1, y1 = bbox
    cx0, cx1 = _span((x0 + x1) / 2, (x1 - x0) * crop_factor, width)
    cy0, cy1 = _span((y0 + y1) / 2, (y1 - y0) * crop_factor, height)
    return [cx0, cy0, cx1, cy1]


def to_segs(image: torch.Tensor, mask: torch.Tensor, found: ImageDetections | None, crop_factor: float = 3.0) -> Segs:
    """One image's regions (as Mask Margin Crop finds them) as SEGS; `image` [1, H, W, C], `mask` [H, W]."""
    if crop_factor < 1:
        raise InvalidParameter(f"crop_factor must be at least 1, got {crop_factor}", parameter="crop_factor")
    h, w = mask.shape
    items = []
    for region in find_regions(mask, found, 0):
        det = found.detections[region.detection] if found is not None and region.detection is not None else None
        bbox = det.pixel_box(w, h) if det is not None else region.box
        area = crop_region(bbox, crop_factor, w, h)
        rx0, ry0, rx1, ry1 = region.box
        # the region's own mask pixels (its fade band included), inside the crop region
        full = torch.zeros((h, w), dtype=torch.float32)
        owned = torch.from_numpy(region.owned)
        full[ry0:ry1, rx0:rx1] = torch.where(owned, mask[ry0:ry1, rx0:rx1].float().cpu(), 0.0)
        x0, y0, x1, y1 = area
        cropped_mask = full[y0:y1, x0:x1].numpy().copy()
        cropped_image = image[:1, y0:y1, x0:x1, :3].clone()
        score = float(det.score) if det is not None else 1.0
        label = det.label if det is not None else "mask"
        items.append(SEG(cropped_image, cropped_mask, score, area, list(bbox), label, None))
    return (h, w), items


def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().float().numpy()
    array = np.asarray(value, dtype=np.float32)
    while array.ndim > 2:  # [1, h, w] masks occur in the wild
        array = array[0]
    return array


def from_segs(segs: Segs) -> tuple[torch.Tensor, ImageDetections]:
    """(mask [1, H, W], detections) from a SEGS value: each SEG's cropped mask pasted at its crop region
    (the larger value where two overlap), each SEG a detection with its bbox, confidence, label and shape."""
    try:
        (h, w), items = segs[0][:2], segs[1]
        h, w = int(h), int(w)
    except (TypeError, ValueError, IndexError):
        raise InvalidParameter(
            "segs must be a SEGS value ((height, width), [SEG, ...]) as Impact-Pack's nodes make", parameter="segs"
        ) from None
    mask = torch.zeros((1, h, w), dtype=torch.float32)
    dets = []
    for seg in items:
        x0, y0 = (int(v) for v in seg.crop_region[:2])
        local = _as_array(seg.cropped_mask)
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + local.shape[1], w), min(y0 + local.shape[0], h)
        part = torch.from_numpy(local[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0].copy()).clamp_(0, 1)
        torch.maximum(mask[0, cy0:cy1, cx0:cx1], part, out=mask[0, cy0:cy1, cx0:cx1])
        bx0, by0, bx1, by1 = (float(v) for v in seg.bbox)
        shape = part.numpy() > 0
        dets.append(
            Detection(
                (bx0, by0, bx1, by1),
                float(np.asarray(seg.confidence).reshape(-1)[0]),
                str(seg.label),
                shape if shape.any() else None,
                (cx0, cy0, cx1, cy1) if shape.any() else None,
            )
        )
    return mask, ImageDetections(w, h, tuple(dets), "SEGS")
