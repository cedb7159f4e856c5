"""Resizing images and masks for the zoom loop: area averaging when shrinking, bicubic when enlarging.

On the CPU through OpenCV (several times faster than torch's CPU kernels, multithreaded); on a GPU
through torch. Both use pixel-centre alignment, so a crop scaled up and back lands where it was.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def resize(x: torch.Tensor, height: int, width: int, kernel: str | None = None) -> torch.Tensor:
    """A new [height, width, C] (or [height, width]) float tensor from `x`, on x's device, values kept in range.

    Shrinking averages areas (no aliasing); enlarging is bicubic, clamped to the source's range so
    it never rings past black or white. `kernel` "opencv" or "torch" overrides the choice by device.
    """
    if tuple(x.shape[:2]) == (height, width):
        return x.clone()
    shrink = height * width < x.shape[0] * x.shape[1]
    if (kernel or ("opencv" if x.device.type == "cpu" else "torch")) == "opencv":
        import cv2  # comes with mediapipe and ultralytics

        src = np.ascontiguousarray(x.to(torch.float32).numpy())
        out = torch.from_numpy(cv2.resize(src, (width, height), interpolation=cv2.INTER_AREA if shrink
                                          else cv2.INTER_CUBIC))
        if out.ndim < x.ndim:  # OpenCV drops a single channel axis
            out = out.unsqueeze(-1)
    else:
        nchw = x.to(torch.float32).reshape(x.shape[0], x.shape[1], -1).permute(2, 0, 1).unsqueeze(0)
        if shrink:
            out = F.interpolate(nchw, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
        else:
            out = F.interpolate(nchw, size=(height, width), mode="bicubic", align_corners=False)
        out = out[0].permute(1, 2, 0).reshape(height, width, *x.shape[2:])
    if not shrink:
        out = out.clamp_(float(x.min()), float(x.max())) if x.numel() else out
    return out.reshape(height, width, *x.shape[2:])
