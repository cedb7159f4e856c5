"""Mask building: union of detections, exact Euclidean padding, and the outer fade band (maskBlur).

Semantics (DESIGN.md section 1):
- padding k > 0 keeps every pixel within Euclidean distance k of a detection's shape;
  k < 0 keeps only pixels farther than |k| from anything outside that detection's shape (each
  detection shrinks on its own, then the shapes are united). The image border does not erode.
- blur b adds a band OUTSIDE the padded mask: a pixel at distance d (0 < d <= b) from the padded mask
  gets 1 - d / (b + 1); inside stays exactly 1, beyond the band exactly 0.

All work happens on torch tensors inside the union rectangle of the detections (grown by the
padding and blur), so cost scales with the masked area, not the frame, and runs on the GPU when
asked.
"""

from __future__ import annotations

import numpy as np
import torch

from .detection import ImageDetections

_FAR = 1.0e9


def _axis_distance(mask: torch.Tensor) -> torch.Tensor:
    """Per-column distance (in rows) to the nearest True pixel of the same column; _FAR if none."""
    cols = mask.t().contiguous()  # scans run along contiguous memory: several times faster on CPU
    h = cols.shape[1]
    rows = torch.arange(h, device=mask.device, dtype=torch.float32).expand_as(cols)
    above = torch.where(cols, rows, torch.full_like(rows, -_FAR)).cummax(dim=1).values
    below = torch.where(cols, rows, torch.full_like(rows, 2 * _FAR)).flip(1).cummin(dim=1).values.flip(1)
    return torch.minimum(rows - above, below - rows).t()


def distance_within(mask: torch.Tensor, limit: int) -> torch.Tensor:
    """Exact Euclidean distance from every pixel to the nearest True pixel of `mask` ([H, W] bool).

    Exact up to `limit`; farther pixels get a value > `limit` (not their true distance). Two passes:
    an exact column pass (cummax), then a row pass over offsets -limit..limit.
    """
    if limit < 0:
        raise ValueError("limit must be >= 0")
    col = _axis_distance(mask)
    col_sq = torch.where(col <= limit, col * col, torch.full_like(col, _FAR))
    best = col_sq.clone()
    w = mask.shape[1]
    for dx in range(1, min(limit, w - 1) + 1):
        step = float(dx * dx)
        # neighbour to the left / right, dx columns away
        best[:, dx:] = torch.minimum(best[:, dx:], col_sq[:, :-dx] + step)
        best[:, :-dx] = torch.minimum(best[:, :-dx], col_sq[:, dx:] + step)
    return best.sqrt()


def fade_outside(mask: torch.Tensor, blur: int) -> torch.Tensor:
    """Float mask: 1 inside `mask`, 1 - d/(blur+1) at distance d <= blur outside it, 0 beyond."""
    if blur <= 0:
        return mask.to(torch.float32)
    d = distance_within(mask, blur)
    return torch.where(d <= blur, 1.0 - d / (blur + 1), torch.zeros_like(d))


def grow(mask: torch.Tensor, padding: int) -> torch.Tensor:
    """Bool mask grown (padding > 0) or shrunk (padding < 0) by exact Euclidean distance."""
    if padding == 0:
        return mask.clone()
    if padding > 0:
        return distance_within(mask, padding) <= padding
    return ~(distance_within(~mask, -padding) <= -padding)


def refine_mask(mask: torch.Tensor, padding: int, blur: int) -> torch.Tensor:
    """Apply padding then the outer fade band to a whole [H, W] mask (values > 0.5 count as inside).

    For masks that are not made of separate detections (e.g. a mask returned by a remote service);
    negative padding then shrinks the union as a whole.
    """
    core = mask > 0.5
    return fade_outside(grow(core, padding), blur)


def build_mask(
    found: ImageDetections,
    padding: int,
    blur: int,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """The [H, W] float32 mask for one image's detections, with padding and the fade band.

    Each detection is grown (or shrunk) and faded inside its own window, then combined with max:
    exact, because the distance to a union is the smallest distance to its parts and the fade falls
    with distance; and far cheaper than one window spanning faces spread over the frame.
    """
    h, w = found.height, found.width
    out = torch.zeros((h, w), dtype=torch.float32, device=device)
    reach = max(padding, 0) + max(blur, 0)
    for det in found.detections:
        (rx0, ry0, rx1, ry1), local = det.region(w, h)
        if not local.size or not local.any():
            continue
        shape = torch.from_numpy(np.ascontiguousarray(local)).to(device)
        if padding < 0:
            shape = _shrink_in_place_window(shape, (rx0, ry0, rx1, ry1), -padding, w, h)
        x0, y0 = max(rx0 - reach, 0), max(ry0 - reach, 0)
        x1, y1 = min(rx1 + reach, w), min(ry1 + reach, h)
        core = torch.zeros((y1 - y0, x1 - x0), dtype=torch.bool, device=device)
        core[ry0 - y0 : ry1 - y0, rx0 - x0 : rx1 - x0] = shape
        if padding > 0:
            core = grow(core, padding)
        window = out[y0:y1, x0:x1]
        torch.maximum(window, fade_outside(core, blur), out=window)
    return out


def _shrink_in_place_window(
    shape: torch.Tensor, rect: tuple[int, int, int, int], k: int, width: int, height: int
) -> torch.Tensor:
    """Erode one detection's shape by k; pixels outside the image never count as background."""
    x0, y0, x1, y1 = rect
    # a one-pixel ring of background around the shape, except where the image border is
    left, top = int(x0 > 0), int(y0 > 0)
    right, bottom = int(x1 < width), int(y1 < height)
    framed = torch.zeros(
        (shape.shape[0] + top + bottom, shape.shape[1] + left + right), dtype=torch.bool, device=shape.device
    )
    framed[top : top + shape.shape[0], left : left + shape.shape[1]] = shape
    shrunk = grow(framed, -k)
    return shrunk[top : top + shape.shape[0], left : left + shape.shape[1]]


def build_masks(
    found: list[ImageDetections],
    padding: int,
    blur: int,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """[B, H, W] float32 masks for a batch (all images must share one size)."""
    if not found:
        raise ValueError("no images")
    sizes = {(f.height, f.width) for f in found}
    if len(sizes) != 1:
        raise ValueError(f"images in one batch must share a size, got {sorted(sizes)}")
    return torch.stack([build_mask(f, padding, blur, device) for f in found])
