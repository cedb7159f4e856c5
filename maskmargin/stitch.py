"""Inpaint Stitch: each inpainted crop scaled back to its window and blended into its own image.

The blend weight of a pixel is the full-size mask's own value (its maskBlur fade), taken only for
the pixels the crop's region owns (regions.py): where the mask is 0 the output is bit-identical to
the input, where it is 1 it is the inpainted pixel, and no pixel depends on the order of the crops.

One blend kernel per device kind, chosen by where the tensors are (`blend_kernel`): on the CPU numpy
(one thread per call, no thread pool to wait on, the GIL let go), so each worker scales its crop back
and blends it at once (regions own disjoint pixels: the workers never write the same pixel); on a GPU
a torch lerp per crop, in crop order.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .buffers import copy_of
from .crop import CropResult
from .errors import InvalidParameter
from .images import check_image_batch, rgb_tensor
from .resample import resize, translate
from .settings import Progress
from .workers import each, in_order

Blend = Callable[[torch.Tensor, CropResult, int, torch.Tensor], None]
STRIP_BYTES = 256 << 10  # a strip of the CPU blend: its four scratch buffers stay in a core's L2 cache


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
    if source.dtype != torch.float32:  # float16/float64 images, as Mask Margin Crop accepts: IMAGE out is float32
        source = source.to(torch.float32)  # exact for float16; float64 rounds as any IMAGE would
    out = copy_of(source)  # a new tensor: images without a region (all of them, with a placeholder) pass through
    inpainted = rgb_tensor(inpainted)
    kernel = blend_kernel(out, stitch.masks)

    def scaled_back(i: int) -> torch.Tensor:  # the costly part, on worker threads
        c = stitch.plan[i]
        x0, y0, x1, y1 = c.window
        back = resize(inpainted[i].to(source.device), y1 - y0, x1 - x0)
        # a steady window sits a fraction of a pixel past `window`: its pixels move back by as much
        return back if c.shift == (0.0, 0.0) else translate(back, -c.shift[0], -c.shift[1])

    if kernel is blend_numpy:  # disjoint pixels, no shared state: each crop blended where it was scaled back
        kept = [i for i in range(len(stitch.plan)) if i not in stitch.skipped]  # `-` regions keep their pixels
        each(lambda i: kernel(out, stitch, i, scaled_back(i)), kept, progress)
        return out
    with in_order(scaled_back, range(len(stitch.plan))) as backs:
        for i, back in enumerate(backs):
            if i not in stitch.skipped:  # a region left untouched keeps its source pixels
                kernel(out, stitch, i, back)
            if progress is not None:
                progress(i + 1, len(stitch.plan))
    return out


def blend_kernel(out: torch.Tensor, masks: torch.Tensor) -> Blend:
    """`blend_numpy` where the output and the masks are float32 CPU tensors, else `blend_torch`."""
    on_cpu = out.device.type == "cpu" and masks.device.type == "cpu"
    return blend_numpy if on_cpu and out.dtype == masks.dtype == torch.float32 else blend_torch


def _region_of(
    out: torch.Tensor, stitch: CropResult, i: int, back: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    """(target in out, the inpainted pixels over it, the mask there, the region's ownership) of crop i."""
    c = stitch.plan[i]
    x0, y0 = c.window[:2]
    rx0, ry0, rx1, ry1 = c.region.box
    new = back[ry0 - y0 : ry1 - y0, rx0 - x0 : rx1 - x0]
    alpha = stitch.masks[c.image, ry0:ry1, rx0:rx1]
    return out[c.image, ry0:ry1, rx0:rx1], new, alpha, c.region.owned


def blend_numpy(out: torch.Tensor, stitch: CropResult, i: int, back: torch.Tensor) -> None:
    """Crop i, scaled back to its window, blended into `out` through the mask on the pixels its region
    owns, in place: target (1 - w) + new w, exact at both ends (w = 1 gives the inpainted pixel), and
    written only where the region owns a pixel with w > 0 (OpenCV's masked add), so every other pixel
    keeps its bits and workers blending other regions never touch the same pixel.

    Five single-threaded SIMD passes, strip by strip of rows through scratch buffers of STRIP_BYTES: a
    whole box's temporaries (10 MB for a 600 px face) would be fresh pages, and their page faults cost
    more than the arithmetic."""
    import cv2  # comes with mediapipe and ultralytics

    region = _region_of(out, stitch, i, back)
    target, new, alpha, owned = region[0].numpy(), region[1].numpy(), region[2].numpy(), region[3]
    h, w = alpha.shape
    rows = max(1, min(h, STRIP_BYTES // max(1, w * 12)))
    where_buf, low_buf = np.empty((rows, w), np.bool_), np.empty((rows, w), np.float32)
    weight_buf, keep_buf = np.empty((rows, w, 3), np.float32), np.empty((rows, w, 3), np.float32)
    for r in range(0, h, rows):
        s = slice(r, min(r + rows, h))
        n = s.stop - r
        where, low, weight, keep = where_buf[:n], low_buf[:n], weight_buf[:n], keep_buf[:n]
        np.greater(alpha[s], 0, out=where)
        where &= owned[s]
        np.minimum(alpha[s], 1.0, out=low)
        cv2.merge([low] * 3, dst=weight)  # same-shape operands: numpy broadcasting is 4x slower
        np.subtract(1.0, weight, out=keep)
        cv2.multiply(new[s], weight, dst=weight)
        cv2.multiply(target[s], keep, dst=keep)
        done = cv2.add(keep, weight, dst=target[s], mask=where.view(np.uint8))
        if done.ctypes.data != target[s].ctypes.data:  # OpenCV wrote a copy: cannot happen for rows of pixels
            raise RuntimeError("Inpaint Stitch: OpenCV did not blend in place")


def blend_torch(out: torch.Tensor, stitch: CropResult, i: int, back: torch.Tensor) -> None:
    """Crop i blended into `out` on any device: a lerp weighted by the mask (exact at both ends: weight
    0 keeps the source, weight 1 gives the inpainted pixel), kept only where the region owns a pixel
    with weight > 0, so no other pixel changes by a bit even if the sampler gave NaN or infinity."""
    target, new, alpha, owned = _region_of(out, stitch, i, back)
    weight = alpha.to(out.device, torch.float32)
    keep = torch.from_numpy(owned).to(out.device) & (weight > 0)
    blended = torch.lerp(target, new.to(out.device, target.dtype), weight.clamp(0, 1).unsqueeze(-1).to(target.dtype))
    target.copy_(torch.where(keep.unsqueeze(-1), blended, target))
