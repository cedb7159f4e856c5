"""Preview images: the mask tinted over the photo and every detection's box drawn."""

from __future__ import annotations

import torch

from .detection import ImageDetections

TINT = torch.tensor([1.0, 0.25, 0.1])  # orange-red: visible on skin and on dark backgrounds
BOX = torch.tensor([0.1, 1.0, 0.3])


def draw_preview(rgb: torch.Tensor, masks: torch.Tensor, found: list[ImageDetections]) -> torch.Tensor:
    """A new [B, H, W, 3] tensor: `rgb` with masks tinted at 45% and boxes outlined. Inputs are not modified."""
    out = rgb.to(torch.float32, copy=True)
    masks = masks.to(rgb.device, torch.float32)
    tint = TINT.to(rgb.device)
    colour = BOX.to(rgb.device)
    for b, image_found in enumerate(found):
        ys, xs = _bounds(masks[b])
        if ys is not None:  # tint only inside the mask's bounding rectangle
            window = out[b, ys, xs]
            window.lerp_(tint.expand_as(window), 0.45 * masks[b, ys, xs].unsqueeze(-1))
        h, w = image_found.height, image_found.width
        t = max(1, round(min(h, w) / 256))  # line width grows with the image
        for det in image_found.detections:
            x0, y0, x1, y1 = det.pixel_box(w, h)
            if x1 <= x0 or y1 <= y0:
                continue
            out[b, y0 : min(y0 + t, y1), x0:x1] = colour
            out[b, max(y1 - t, y0) : y1, x0:x1] = colour
            out[b, y0:y1, x0 : min(x0 + t, x1)] = colour
            out[b, y0:y1, max(x1 - t, x0) : x1] = colour
    return out.clamp_(0, 1)


def _bounds(mask: torch.Tensor) -> tuple[slice | None, slice | None]:
    rows = torch.nonzero(mask.amax(dim=1) > 0)
    if len(rows) == 0:
        return None, None
    cols = torch.nonzero(mask.amax(dim=0) > 0)
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)
