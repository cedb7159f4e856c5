"""Mask Margin Crop: every masked region of every image, cut out with context and zoomed to a working size.

For each region (see regions.py) the crop window is its box plus `margin` pixels of context per
side, grown to the working size's aspect ratio by adding more context (never by distorting). The
window keeps its centre even at the image border: the part past the border is filled by repeating
the edge pixels (the crop mask is 0 there), so the region never shifts inside the crop. Window sides
are whole multiples of the working size's reduced ratio (e.g. 13:19 for 832x1216), so the zoom is
the same on both axes, and the working size is a multiple of 8, so a VAE round trip shifts nothing.

A tracked region (a video's detection with a track id, tracking.py) gets a steady window instead: one
size for the whole track, the largest any of its frames needs (so the zoom never changes), centred on the
track's smoothed box to a fraction of a pixel (`Crop.shift`: whole-pixel windows would add a step of up to
a pixel, times the zoom, whenever the rounding flips), so the framing moves only as smoothly as the track.

All crops come out as one batch for one sampler call; the STITCH value (a `CropResult`) remembers
where each one goes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from . import buffers
from .detection import ImageDetections
from .errors import InvalidParameter
from .images import check_image_batch, rgb_tensor
from .masks import known_support
from .regions import Box, Region, find_regions, merge
from .resample import resize, translate
from .settings import CropSettings, Progress
from .workers import each


@dataclass(frozen=True)
class Crop:
    """One crop: which image, the region it stitches back, and its window in that image's pixels."""

    image: int
    region: Region
    window: Box  # may reach past the image's borders
    track: int | None = None  # the video track of its detection (Region Prompts' line for it), if any
    shift: tuple[float, float] = (0.0, 0.0)  # the window's sub-pixel offset (x, y) past `window`, |each| <= 0.5

    def pixels(self, x: torch.Tensor) -> torch.Tensor:
        """x's pixels under this crop's window (`window_pixels`), moved by its sub-pixel shift."""
        if self.shift == (0.0, 0.0):
            return window_pixels(x, self.window)
        x0, y0, x1, y1 = self.window
        wide = window_pixels(x, (x0 - 2, y0 - 2, x1 + 2, y1 + 2))  # the cubic kernel reaches 2 pixels out
        return translate(wide, *self.shift)[2:-2, 2:-2]


@dataclass(frozen=True)
class CropResult:
    """What Mask Margin Crop returns; the object itself is the STITCH value."""

    crops: torch.Tensor  # [N, height, width, 3]
    crop_masks: torch.Tensor  # [N, height, width]
    source: torch.Tensor  # the input IMAGE batch, never modified
    masks: torch.Tensor  # [B, H, W] the full-size masks the blend follows
    plan: tuple[Crop, ...]  # one per crop; empty when no image had a region (see placeholder)
    width: int
    height: int
    skipped: frozenset[int] = frozenset()  # crops Inpaint Stitch leaves out (Region Prompts' `-` lines)

    @property
    def placeholder(self) -> bool:
        """True when no image had a region: `crops` then holds one stand-in that stitching ignores."""
        return not self.plan

    def zooms(self) -> list[float]:
        """Working pixels per source pixel, per crop."""
        return [self.width / (c.window[2] - c.window[0]) for c in self.plan]


def crop_window(box: Box, margin: int, width: int, height: int) -> Box:
    """The window around `box` with `margin` context per side, grown to width:height exactly."""
    g = math.gcd(width, height)
    unit_w, unit_h = width // g, height // g
    need_w, need_h = box[2] - box[0] + 2 * margin, box[3] - box[1] + 2 * margin
    k = max(1, math.ceil(max(need_w / unit_w, need_h / unit_h)))
    cw, ch = k * unit_w, k * unit_h
    x0 = (box[0] + box[2] - cw) // 2
    y0 = (box[1] + box[3] - ch) // 2
    return x0, y0, x0 + cw, y0 + ch


def plan_crops(
    masks: torch.Tensor,
    detections: list[ImageDetections] | None,
    settings: CropSettings,
    support: Sequence[Sequence[Box]] | None = None,
) -> list[Crop]:
    """The crops of a batch of [B, H, W] masks, image by image (the images' regions found on worker threads).
    `support`: per image, rectangles known to hold all of its mask (`masks.known_support`)."""

    def regions_of(b: int) -> list[Region]:
        found = detections[b] if detections is not None else None
        known = support[b] if support is not None else None
        regions = find_regions(masks[b], found, settings.min_region_size, support=known)
        return _merge_overlapping(regions, settings) if settings.merge_overlapping else regions

    plan = []
    for b, regions in enumerate(each(regions_of, range(masks.shape[0]))):
        plan += [Crop(b, r, crop_window(r.box, settings.margin, settings.width, settings.height)) for r in regions]
    return _steady(plan, detections) if detections is not None else plan


def _steady(plan: list[Crop], detections: list[ImageDetections]) -> list[Crop]:
    """The crops of tracked regions with their track's steady window: the largest size any of its frames
    needs (every window of one working size has the same aspect, so the widest is also the tallest),
    centred on the detection's smoothed box, moved only where it would cut the region's own box."""
    tracked: dict[int, list[int]] = {}
    for i, c in enumerate(plan):
        if c.region.detection is not None:
            track = detections[c.image].detections[c.region.detection].track
            if track is not None:
                tracked.setdefault(track, []).append(i)
    out = list(plan)
    for track, members in tracked.items():
        widest = max(members, key=lambda i: plan[i].window[2] - plan[i].window[0])
        cw, ch = plan[widest].window[2] - plan[widest].window[0], plan[widest].window[3] - plan[widest].window[1]
        for i in members:
            c = plan[i]
            assert c.region.detection is not None
            x0, y0, x1, y1 = detections[c.image].detections[c.region.detection].box
            (wx0, dx), (wy0, dy) = (
                _place((x0 + x1 - cw) / 2, c.region.box[0::2], cw),
                _place((y0 + y1 - ch) / 2, c.region.box[1::2], ch),
            )
            out[i] = replace(c, window=(wx0, wy0, wx0 + cw, wy0 + ch), track=track, shift=(dx, dy))
    return out


def _place(start: float, region: tuple[int, int], size: int) -> tuple[int, float]:
    """(whole-pixel start, sub-pixel shift) of a window of `size` starting at `start`, holding region
    [r0, r1) whole: moved (shift 0) where it would cut it."""
    whole = math.floor(start + 0.5)
    if not region[1] - size <= whole <= region[0]:
        return min(max(whole, region[1] - size), region[0]), 0.0
    return whole, start - whole


def _merge_overlapping(regions: list[Region], settings: CropSettings) -> list[Region]:
    """Merge regions whose crop windows overlap until none do (merged windows are larger: check again)."""
    regions = list(regions)
    changed = True
    while changed:
        changed = False
        windows = [crop_window(r.box, settings.margin, settings.width, settings.height) for r in regions]
        for i in range(len(regions)):
            for j in range(i + 1, len(regions)):
                if _overlap(windows[i], windows[j]):
                    regions[i] = merge(regions[i], regions[j])
                    del regions[j]
                    changed = True
                    break
            if changed:
                break
    return regions


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def window_pixels(x: torch.Tensor, window: Box) -> torch.Tensor:
    """x[y0:y1, x0:x1] for a window that may pass the borders, the edge pixels repeated past them.

    A view where the window lies inside; past a border, a new tensor made by OpenCV on the CPU and by
    index_select elsewhere."""
    h, w = x.shape[:2]
    x0, y0, x1, y1 = window
    if x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h:
        return x[y0:y1, x0:x1]
    if x.device.type == "cpu" and x.dtype == torch.float32:
        return _window_pixels_numpy(x, window)
    return _window_pixels_torch(x, window)


def _window_pixels_numpy(x: torch.Tensor, window: Box) -> torch.Tensor:
    import cv2  # comes with mediapipe and ultralytics

    h, w = x.shape[:2]
    x0, y0, x1, y1 = window
    inside = x.numpy()[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)]
    if inside.ndim == 3 and inside.shape[2] > 4:  # OpenCV's border copy takes up to 4 channels
        return _window_pixels_torch(x, window)
    out = cv2.copyMakeBorder(inside, max(-y0, 0), max(y1 - h, 0), max(-x0, 0), max(x1 - w, 0), cv2.BORDER_REPLICATE)
    return torch.from_numpy(out.reshape(y1 - y0, x1 - x0, *x.shape[2:]))


def _window_pixels_torch(x: torch.Tensor, window: Box) -> torch.Tensor:
    h, w = x.shape[:2]
    x0, y0, x1, y1 = window
    rows = torch.arange(y0, y1, device=x.device).clamp_(0, h - 1)
    cols = torch.arange(x0, x1, device=x.device).clamp_(0, w - 1)
    return x.index_select(0, rows).index_select(1, cols)


def owned_mask(mask: torch.Tensor, crop: Crop) -> torch.Tensor:
    """The crop's window of `mask` keeping only the pixels its region owns: the sampler repaints those
    and leaves a neighbour's part of the mask as context (its own crop repaints it)."""
    x0, y0, x1, y1 = crop.window
    rx0, ry0, rx1, ry1 = crop.region.box
    out = buffers.empty((y1 - y0, x1 - x0), mask.device)
    rows, cols = slice(ry0 - y0, ry1 - y0), slice(rx0 - x0, rx1 - x0)
    inner = out[rows, cols]
    if mask.device.type == "cpu" and mask.dtype == torch.float32:  # numpy: one thread, no pool to wait on
        np.multiply(mask.numpy()[ry0:ry1, rx0:rx1], crop.region.owned, out=inner.numpy())
    else:
        torch.mul(mask[ry0:ry1, rx0:rx1], torch.from_numpy(crop.region.owned).to(mask.device), out=inner)
    # zero only the context around the region's box (the window is often several times the box)
    for part in (out[: rows.start], out[rows.stop :], out[rows, : cols.start], out[rows, cols.stop :]):
        buffers.clear(part)
    return out


def check_masks(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """A [B, H, W] float mask batch matching the images: one mask is shared by every image."""
    if not isinstance(masks, torch.Tensor):
        raise InvalidParameter(f"mask must be a tensor, got {type(masks).__name__}", parameter="mask")
    if masks.ndim == 2:
        masks = masks.unsqueeze(0)
    if masks.ndim != 3 or masks.shape[0] == 0:
        raise InvalidParameter(f"mask must be [batch, height, width], got shape {tuple(masks.shape)}", parameter="mask")
    b, h, w = images.shape[:3]
    if tuple(masks.shape[1:]) != (h, w):
        raise InvalidParameter(
            f"the mask is {masks.shape[2]}x{masks.shape[1]} but the image is {w}x{h}: "
            f"make the mask from this image (or resize it to match)",
            parameter="mask",
        )
    if masks.shape[0] not in (1, b):
        raise InvalidParameter(
            f"{masks.shape[0]} masks for {b} images: give one mask, or one per image", parameter="mask"
        )
    return masks.expand(b, h, w).to(torch.float32)


def mask_margin_crop(
    images: torch.Tensor,
    masks: torch.Tensor,
    settings: CropSettings,
    detections: list[ImageDetections] | None = None,
    device: torch.device | str | None = None,
    progress: Progress | None = None,
) -> CropResult:
    """Crop every region of every image to settings.width x settings.height. Inputs are not modified."""
    images = check_image_batch(images)
    support = known_support(masks) if isinstance(masks, torch.Tensor) else None  # of the tensor as given
    masks = check_masks(images, masks)
    if support is not None and len(support) != masks.shape[0]:
        support = tuple(support) * masks.shape[0] if len(support) == 1 else None  # one mask for every image
    if detections is not None:
        if len(detections) != images.shape[0]:
            raise InvalidParameter(
                f"{len(detections)} detection sets for {images.shape[0]} images: connect the "
                f"detections made from this image batch",
                parameter="detections",
            )
        h, w = images.shape[1:3]
        if any((d.width, d.height) != (w, h) for d in detections):
            raise InvalidParameter(
                "the detections were made on images of another size than these", parameter="detections"
            )
    rgb = rgb_tensor(images)
    device = torch.device(device) if device is not None else images.device
    plan = plan_crops(masks, detections, settings, support)
    n = max(len(plan), 1)
    crops = buffers.empty((n, settings.height, settings.width, 3), device)
    crop_masks = buffers.empty((n, settings.height, settings.width), device)

    def one(i: int) -> None:  # OpenCV and numpy let go of the GIL: the crops are cut on a few threads
        c = plan[i]
        resize(c.pixels(rgb[c.image]).to(device), settings.height, settings.width, out=crops[i])
        mask = owned_mask(masks[c.image], c).to(device)
        if c.shift != (0.0, 0.0):
            mask = translate(mask, *c.shift, smooth=True)
        resize(mask, settings.height, settings.width, out=crop_masks[i], smooth=True)

    each(one, range(len(plan)), progress)
    if not plan:  # a stand-in so the sampler step still runs; stitching ignores it
        resize(rgb[0].to(device), settings.height, settings.width, out=crops[0])
        buffers.clear(crop_masks)
    return CropResult(crops, crop_masks, images, masks, tuple(plan), settings.width, settings.height)
