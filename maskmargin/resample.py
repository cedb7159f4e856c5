"""Resizing images and masks for the zoom loop: area averaging when shrinking, bicubic when enlarging; and
sub-pixel moves (`translate`) for steady video windows.

On the CPU through OpenCV (several times faster than torch's CPU kernels, multithreaded); on a GPU
through torch. Both use pixel-centre alignment, so a crop scaled up and back lands where it was.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import buffers


def resize(
    x: torch.Tensor,
    height: int,
    width: int,
    kernel: str | None = None,
    out: torch.Tensor | None = None,
    smooth: bool = False,
) -> torch.Tensor:
    """`x` ([h, w, C] or [h, w]) resized to [height, width, ...] as float32, on x's device; x is not modified.

    Shrinking averages areas (no aliasing); enlarging is bicubic, clamped to 0..1 (or to the source's
    range where that is wider) so it never rings past black or white. `kernel` "opencv" or "torch"
    overrides the choice by device.
    `out`, when given, is the contiguous float32 tensor to write into (e.g. one slot of a batch).
    `smooth` content (masks) is enlarged bilinearly: cheaper, and it cannot overshoot.
    """
    if out is None:
        out = buffers.empty((height, width, *x.shape[2:]), x.device)
    if tuple(x.shape[:2]) == (height, width):
        return out.copy_(x)
    shrink = height * width < x.shape[0] * x.shape[1]
    if (kernel or ("opencv" if x.device.type == "cpu" else "torch")) == "opencv":
        import cv2  # comes with mediapipe and ultralytics

        src = x.to(torch.float32).numpy()  # a window of a frame as it is: OpenCV reads strided rows
        dst = out.numpy()
        if dst.ndim == 3 and dst.shape[2] == 1:  # OpenCV keeps single-channel images 2-d
            dst = dst[..., 0]
        cv2.resize(
            src if src.ndim == 2 or src.shape[2] > 1 else src[..., 0],
            (width, height),
            dst=dst,
            interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR if smooth else cv2.INTER_CUBIC,
        )
        if not shrink and not smooth:
            lo, hi = min(float(src.min()), 0.0), max(float(src.max()), 1.0)
            if (lo, hi) == (0.0, 1.0):  # the usual case: two SIMD passes, ten times faster than np.clip
                cv2.threshold(dst, 1.0, 1.0, cv2.THRESH_TRUNC, dst=dst)
                cv2.threshold(dst, 0.0, 0.0, cv2.THRESH_TOZERO, dst=dst)
            else:
                np.clip(dst, lo, hi, out=dst)
        return out
    else:
        nchw = x.to(torch.float32).reshape(x.shape[0], x.shape[1], -1).permute(2, 0, 1).unsqueeze(0)
        mode = dict(mode="bilinear", antialias=shrink) if shrink or smooth else dict(mode="bicubic")
        scaled = F.interpolate(nchw, size=(height, width), align_corners=False, **mode)
        out.copy_(scaled[0].permute(1, 2, 0).reshape(out.shape))
    if not shrink and not smooth:
        out.clamp_(min(float(x.min()), 0.0), max(float(x.max()), 1.0))
    return out


def translate(x: torch.Tensor, dx: float, dy: float, smooth: bool = False, kernel: str | None = None) -> torch.Tensor:
    """`x` ([h, w, C] or [h, w]) sampled at (column + dx, row + dy): its content moved by a fraction of a pixel,
    the edge pixels repeated past the borders; a new float32 tensor on x's device, x is not modified.

    What a steady video window needs: its sub-pixel position (crop.py). Bicubic, clamped as `resize` clamps
    an enlargement; `smooth` content (masks) bilinear. OpenCV on the CPU (offsets in 1/32 pixel steps), torch's
    grid_sample elsewhere; `kernel` "opencv" or "torch" overrides the choice by device."""
    if (kernel or ("opencv" if x.device.type == "cpu" else "torch")) == "opencv":
        import cv2  # comes with mediapipe and ultralytics

        src = x.to(torch.float32).numpy()
        flat = src if src.ndim == 2 or src.shape[2] > 1 else src[..., 0]  # OpenCV keeps one channel 2-d
        m = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
        flags = (cv2.INTER_LINEAR if smooth else cv2.INTER_CUBIC) | cv2.WARP_INVERSE_MAP
        warped = cv2.warpAffine(flat, m, (src.shape[1], src.shape[0]), flags=flags, borderMode=cv2.BORDER_REPLICATE)
        out = torch.from_numpy(warped.reshape(src.shape))
    else:
        h, w = x.shape[:2]
        nchw = x.to(torch.float32).reshape(h, w, -1).permute(2, 0, 1).unsqueeze(0)
        cols = (torch.arange(w, device=x.device, dtype=torch.float32) + 0.5 + dx) * (2 / w) - 1
        rows = (torch.arange(h, device=x.device, dtype=torch.float32) + 0.5 + dy) * (2 / h) - 1
        grid = torch.stack(torch.meshgrid(cols, rows, indexing="xy"), dim=-1).unsqueeze(0)
        mode = "bilinear" if smooth else "bicubic"
        moved = F.grid_sample(nchw, grid, mode=mode, padding_mode="border", align_corners=False)
        out = moved[0].permute(1, 2, 0).reshape(x.shape).contiguous()
    if not smooth:
        out.clamp_(min(float(x.min()), 0.0), max(float(x.max()), 1.0))
    return out
