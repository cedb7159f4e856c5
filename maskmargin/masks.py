"""Mask building: union of detections, exact Euclidean padding, and the outer fade band (maskBlur).

Semantics (the API's maskPadding and maskBlur; docs/ARCHITECTURE.md has where this sits):
- padding k > 0 keeps every pixel within Euclidean distance k of a detection's shape;
  k < 0 keeps only pixels farther than |k| from anything outside that detection's shape (each
  detection shrinks on its own, then the shapes are united). The image border does not erode.
- blur b adds a band OUTSIDE the padded mask: a pixel at distance e (0 < e <= b) from the padded mask
  gets 1 - e / (b + 1); inside stays exactly 1, beyond the band exactly 0. The padded mask is taken
  geometrically (every point within k of the shape), so e = d - k for a pixel at distance d from the
  shape: one distance pass gives both, and corners fade as round as they grow. A shrunk shape is
  eroded on the pixel grid first and the band measured from it.

All work happens on torch tensors inside the union rectangle of the detections (grown by the
padding and blur), so cost scales with the masked area, not the frame, and runs on the GPU when
asked.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from . import buffers
from .detection import Detection, ImageDetections

Rect = tuple[int, int, int, int]

_FAR = 1.0e9
LARGE_BOX = 512 * 512  # window area (pixels) from which a box's interior is filled instead of computed


def _axis_distance(mask: torch.Tensor) -> torch.Tensor:
    """Per-column distance (in rows) to the nearest True pixel of the same column; _FAR if none."""
    cols = mask.t().contiguous()  # scans run along contiguous memory: several times faster on CPU
    h = cols.shape[1]
    rows = torch.arange(h, device=mask.device, dtype=torch.float32).expand_as(cols)
    above = torch.where(cols, rows, torch.full_like(rows, -_FAR)).cummax(dim=1).values
    below = torch.where(cols, rows, torch.full_like(rows, 2 * _FAR)).flip(1).cummin(dim=1).values.flip(1)
    return torch.minimum(rows - above, below - rows).t()


def _axis_distance_np(mask: np.ndarray) -> np.ndarray:
    """numpy's `_axis_distance`: the running max/min go down the rows, a whole row at a time."""
    rows = np.arange(mask.shape[0], dtype=np.float32)[:, None]
    above = np.maximum.accumulate(np.where(mask, rows, np.float32(-_FAR)), axis=0)
    below = np.minimum.accumulate(np.where(mask, rows, np.float32(2 * _FAR))[::-1], axis=0)[::-1]
    return np.minimum(rows - above, below - rows)


def distance_within(mask: torch.Tensor, limit: int) -> torch.Tensor:
    """Exact Euclidean distance from every pixel to the nearest True pixel of `mask` ([H, W] bool).

    Exact up to `limit`; farther pixels get a value > `limit` (not their true distance). Two passes:
    an exact column pass (cummax), then a row pass over offsets -limit..limit. On the CPU in numpy
    (one thread per call, no thread pool to wait on), elsewhere in torch.
    """
    if limit < 0:
        raise ValueError("limit must be >= 0")
    if mask.device.type == "cpu":
        return torch.from_numpy(_distance_within_np(mask.numpy(), limit))
    return _distance_within_torch(mask, limit)


def _distance_within_torch(mask: torch.Tensor, limit: int) -> torch.Tensor:
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


def _distance_within_np(mask: np.ndarray, limit: int) -> np.ndarray:
    col = _axis_distance_np(mask)
    col_sq = np.where(col <= limit, col * col, np.float32(_FAR)).astype(np.float32, copy=False)
    best = col_sq.copy()
    shifted = np.empty_like(col_sq)
    w = mask.shape[1]
    for dx in range(1, min(limit, w - 1) + 1):
        step = np.float32(dx * dx)
        np.add(col_sq[:, :-dx], step, out=shifted[:, dx:])
        np.minimum(best[:, dx:], shifted[:, dx:], out=best[:, dx:])
        np.add(col_sq[:, dx:], step, out=shifted[:, :-dx])
        np.minimum(best[:, :-dx], shifted[:, :-dx], out=best[:, :-dx])
    return np.sqrt(best, out=best)


def fade_by_distance(d: torch.Tensor, padding: int, blur: int) -> torch.Tensor:
    """Mask values from the distance `d` to a shape that is then padded by `padding` >= 0.

    Geometric semantics: the padded shape is every pixel within `padding` of the shape, and a pixel
    at distance e = d - padding > 0 from it lies in the fade band when e <= blur, with value
    1 - e / (blur + 1). One distance computation serves both the growth and the band.
    """
    if d.device.type == "cpu":
        return torch.from_numpy(_fade_np(d.numpy(), padding, blur))
    return _fade_torch(d, padding, blur)


def _fade_torch(d: torch.Tensor, padding: int, blur: int) -> torch.Tensor:
    value = (1.0 - (d - padding) / (blur + 1)).clamp_(max=1.0)
    return torch.where(d <= padding + blur, value, torch.zeros_like(value))


def _fade_np(d: np.ndarray, padding: int, blur: int) -> np.ndarray:
    value = np.subtract(d, np.float32(padding), dtype=np.float32)
    value /= np.float32(blur + 1)
    np.subtract(np.float32(1.0), value, out=value)
    np.minimum(value, np.float32(1.0), out=value)
    value[d > padding + blur] = 0.0
    return value


def pad_and_fade(shape: torch.Tensor, padding: int, blur: int) -> torch.Tensor:
    """Float mask of a bool shape grown (or shrunk) by `padding` with the outer fade band `blur`."""
    if padding < 0:
        shape, padding = grow(shape, padding), 0
    if padding == 0 and blur == 0:
        return shape.to(torch.float32)
    return fade_by_distance(distance_within(shape, padding + blur), padding, blur)


def grow(mask: torch.Tensor, padding: int) -> torch.Tensor:
    """Bool mask grown (padding > 0) or shrunk (padding < 0) by exact Euclidean distance."""
    if padding == 0:
        return mask.clone()
    if padding > 0:
        return distance_within(mask, padding) <= padding
    return ~(distance_within(~mask, -padding) <= -padding)


def box_distance(
    rect: tuple[int, int, int, int], window: tuple[int, int, int, int], device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Exact distance from each pixel of `window` to the nearest pixel of the rectangle `rect`.

    Closed form (no search): the nearest pixel of a rectangle is the pixel clamped into it, so
    boxes, the most common detections, cost a few operations on their window.
    """
    if torch.device(device).type == "cpu":
        return torch.from_numpy(_box_distance_np(rect, window))
    return _box_distance_torch(rect, window, device)


def _box_distance_np(rect: tuple[int, int, int, int], window: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = rect
    cols, rows = np.arange(window[0], window[2], dtype=np.float32), np.arange(window[1], window[3], dtype=np.float32)
    dx = np.maximum(np.maximum(x0 - cols, cols - (x1 - 1)), 0)
    dy = np.maximum(np.maximum(y0 - rows, rows - (y1 - 1)), 0)
    return np.sqrt(np.square(dy)[:, None] + np.square(dx)[None, :])


def _box_distance_torch(
    rect: tuple[int, int, int, int], window: tuple[int, int, int, int], device: torch.device | str
) -> torch.Tensor:
    x0, y0, x1, y1 = rect
    wx0, wy0, wx1, wy1 = window
    cols = torch.arange(wx0, wx1, device=device, dtype=torch.float32)
    rows = torch.arange(wy0, wy1, device=device, dtype=torch.float32)
    dx = torch.maximum(x0 - cols, cols - (x1 - 1)).clamp_(min=0)
    dy = torch.maximum(y0 - rows, rows - (y1 - 1)).clamp_(min=0)
    return (dy.square().unsqueeze(1) + dx.square().unsqueeze(0)).sqrt_()


def _combine(target: torch.Tensor, values: torch.Tensor) -> None:
    """target = max(target, values), in place (numpy on the CPU)."""
    if target.device.type == "cpu":
        np.maximum(target.numpy(), values.numpy(), out=target.numpy())
    else:
        torch.maximum(target, values, out=target)


def build_mask(
    found: ImageDetections,
    padding: int,
    blur: int,
    device: torch.device | str = "cpu",
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """The [H, W] float32 mask for one image's detections, with padding and the fade band.

    Each detection is grown (or shrunk) and faded inside its own window, then combined with max:
    exact, because the distance to a union is the smallest distance to its parts and the fade falls
    with distance; and far cheaper than one window spanning faces spread over the frame. `out`, when
    given, is a zeroed [H, W] tensor to fill (a slice of a batch).
    """
    h, w = found.height, found.width
    if out is None:
        out = buffers.zeros((h, w), device)
    reach = max(padding, 0) + max(blur, 0)
    for det in found.detections:
        if det.mask is None and padding >= 0:
            _add_box(out, det.pixel_box(w, h), padding, blur)
            continue
        rect, local = det.region(w, h)
        if not local.size or not local.any():
            continue
        shape = torch.from_numpy(np.ascontiguousarray(local)).to(out.device)
        if padding < 0:
            shape = _shrink_in_place_window(shape, rect, -padding, w, h)
        window = _grown(rect, reach, w, h)
        core = buffers.zeros((window[3] - window[1], window[2] - window[0]), out.device, torch.bool)
        inner = (slice(rect[1] - window[1], rect[3] - window[1]), slice(rect[0] - window[0], rect[2] - window[0]))
        if core.device.type == "cpu":
            core.numpy()[inner] = shape.numpy()
        else:
            core[inner] = shape
        target = out[window[1] : window[3], window[0] : window[2]]
        _combine(target, pad_and_fade(core, max(padding, 0), blur))
    return out


def _add_box(out: torch.Tensor, rect: tuple[int, int, int, int], padding: int, blur: int) -> None:
    """Combine a box grown by `padding` >= 0 with its fade band into `out` (distances in closed form).

    Inside the box the mask is 1, so a large box only needs its band: four thin strips. A small one is
    cheaper as one window (fewer tensor operations)."""
    if rect[2] <= rect[0] or rect[3] <= rect[1]:
        return
    h, w = out.shape
    window = _grown(rect, padding + blur, w, h)
    if window != rect and (window[2] - window[0]) * (window[3] - window[1]) < LARGE_BOX:
        parts = [window]
    else:  # no band at all, or a large box: fill the inside, compute only the band
        inside = out[rect[1] : rect[3], rect[0] : rect[2]]
        if inside.device.type == "cpu":
            inside.numpy().fill(1.0)  # numpy: one thread, no pool to wait on
        else:
            inside.fill_(1.0)
        parts = _band(window, rect)
    for strip in parts:
        target = out[strip[1] : strip[3], strip[0] : strip[2]]
        _combine(target, fade_by_distance(box_distance(rect, strip, out.device), padding, blur))


def _band(window: tuple[int, int, int, int], rect: tuple[int, int, int, int]) -> list[tuple[int, int, int, int]]:
    """The parts of `window` outside `rect` (which it contains) as up to four rectangles."""
    wx0, wy0, wx1, wy1 = window
    x0, y0, x1, y1 = rect
    strips = [(wx0, wy0, wx1, y0), (wx0, y1, wx1, wy1), (wx0, y0, x0, y1), (x1, y0, wx1, y1)]
    return [s for s in strips if s[2] > s[0] and s[3] > s[1]]


def _grown(rect: tuple[int, int, int, int], reach: int, width: int, height: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = rect
    return max(x0 - reach, 0), max(y0 - reach, 0), min(x1 + reach, width), min(y1 + reach, height)


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
    h, w = sizes.pop()
    out = tracked(buffers.zeros, (len(found), h, w), device)
    for b, f in enumerate(found):
        build_mask(f, padding, blur, out=out[b])
    return remember_support(out, [support_windows(f, padding, blur) for f in found])


# Where masks built here can be above 0, per image, for the masks still alive and unchanged: Mask Margin
# Crop then looks for the parts no detection touches only there instead of reading the whole frame (a 4K
# mask is 33 MB, read from memory in 2-3 ms after a frame copy has pushed it out of the caches).
_SUPPORT: dict[int, tuple[weakref.ref[torch.Tensor], int, tuple[tuple[Rect, ...], ...]]] = {}


def support_windows(found: ImageDetections, padding: int, blur: int) -> tuple[Rect, ...]:
    """Rectangles holding every pixel `build_mask(found, padding, blur)` sets above 0: each detection's
    box or shape rectangle grown by the padding and the fade band (a shrunk shape stays inside its own)."""
    reach = max(padding, 0) + max(blur, 0)
    windows = []
    for det in found.detections:
        x0, y0, x1, y1 = _rect_of(det, found.width, found.height)
        if x1 > x0 and y1 > y0:
            windows.append(_grown((x0, y0, x1, y1), reach, found.width, found.height))
    return tuple(windows)


def _rect_of(det: Detection, width: int, height: int) -> Rect:
    if det.mask is None or det.mask_box is None:
        return det.pixel_box(width, height)
    x0, y0, x1, y1 = det.mask_box
    return max(x0, 0), max(y0, 0), max(min(x1, width), 0), max(min(y1, height), 0)


def tracked(make: Callable[..., torch.Tensor], *args: Any) -> torch.Tensor:
    """`make(*args)` as an ordinary tensor even under inference mode (ComfyUI runs nodes in it): inference
    tensors keep no version counter, so `known_support` could not tell whether they were changed."""
    with torch.inference_mode(False):
        return make(*args)


def remember_support(masks: torch.Tensor, windows: Sequence[Sequence[Rect]]) -> torch.Tensor:
    """`masks` ([B, H, W], just made by `tracked`) returned, with `windows` (per image, rectangles holding
    every pixel above 0) remembered for `known_support` while the tensor lives and is not changed in place."""
    if masks.is_inference():  # no version counter: a change could not be seen
        return masks
    key = id(masks)

    def forget(_: weakref.ref[torch.Tensor]) -> None:  # the tensor is gone: its id may be reused
        _SUPPORT.pop(key, None)

    _SUPPORT[key] = (weakref.ref(masks, forget), masks._version, tuple(tuple(w) for w in windows))
    return masks


def known_support(masks: torch.Tensor) -> tuple[tuple[Rect, ...], ...] | None:
    """Per image, rectangles holding every pixel above 0 of `masks`, when this very tensor was built by
    `build_masks`, Image Mask or Select Regions and no torch operation has changed it since (its version
    counter); else None."""
    entry = _SUPPORT.get(id(masks))
    if entry is None or entry[0]() is not masks or masks.is_inference() or entry[1] != masks._version:
        return None
    return entry[2]
