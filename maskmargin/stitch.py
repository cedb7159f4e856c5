"""Inpaint Stitch: each inpainted crop scaled back to its window and blended into its own image.

The blend weight of a pixel is the full-size mask's own value (its maskBlur fade), taken only for
the pixels the crop's region owns (regions.py): where the mask is 0 the output is bit-identical to
the input, where it is 1 it is the inpainted pixel, and no pixel depends on the order of the crops.
"""

from __future__ import annotations

import torch

from .buffers import copy_of
from .crop import CropResult
from .errors import InvalidParameter
from .images import check_image_batch, rgb_tensor
from .resample import resize
from .settings import Progress
from .workers import in_order


def inpaint_stitch(stitch: CropResult, inpainted: torch.Tensor, progress: Progress | None = None) -> torch.Tensor:
    """The [B, H, W, 3] images with every crop of `stitch` put back from `inpainted` [N, h, w, C]."""
    inpainted = check_image_batch(inpainted)
    source = rgb_tensor(stitch.source)
    expected = 1 if stitch.placeholder else len(stitch.plan)
    if inpainted.shape[0] != expected:
        raise InvalidParameter(
            f"Inpaint Stitch got {inpainted.shape[0]} images for {expected} crops: connect the sampler's output "
            f"for the whole crop batch of the Mask Margin Crop that made this stitch",
            parameter="image",
        )
    out = copy_of(source)  # a new tensor: images without a region (all of them, with a placeholder) pass through
    inpainted = rgb_tensor(inpainted)

    def scaled_back(i: int) -> torch.Tensor:  # the costly part, on worker threads; the blends stay in order
        x0, y0, x1, y1 = stitch.plan[i].window
        return resize(inpainted[i].to(source.device), y1 - y0, x1 - x0)

    with in_order(scaled_back, range(len(stitch.plan))) as backs:
        for i, back in enumerate(backs):
            _blend(out, stitch, i, back)
            if progress is not None:
                progress(i + 1, len(stitch.plan))
    return out


def _blend(out: torch.Tensor, stitch: CropResult, i: int, back: torch.Tensor) -> None:
    """Crop i, scaled back to its window, lerped into `out` through the mask on the pixels its region owns."""
    c = stitch.plan[i]
    x0, y0 = c.window[:2]
    rx0, ry0, rx1, ry1 = c.region.box
    new = back[ry0 - y0 : ry1 - y0, rx0 - x0 : rx1 - x0]
    alpha = stitch.masks[c.image, ry0:ry1, rx0:rx1].to(out.device)
    owned = torch.from_numpy(c.region.owned).to(out.device) & (alpha > 0)
    target = out[c.image, ry0:ry1, rx0:rx1]
    # lerp is exact at both ends: weight 0 keeps the source, weight 1 gives the inpainted pixel
    blended = torch.lerp(target, new.to(target.dtype), alpha.unsqueeze(-1).clamp(0, 1))
    target.copy_(torch.where(owned.unsqueeze(-1), blended, target))
