"""The tight bounding rectangle of a 2-D mask, for numpy arrays and torch tensors alike."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1/y1 exclusive


def tight_bounds(mask: np.ndarray | torch.Tensor) -> Rect | None:
    """(x0, y0, x1, y1) of the pixels above 0, None when there are none.

    Rows are found first and columns only within them: a small shape on a large frame costs little.
    CPU tensors are read through numpy (one thread, no thread pool to wait on), others stay on their
    device; max > 0 is any > 0 for masks in 0..1, and reduces faster.
    """
    if not isinstance(mask, np.ndarray) and mask.device.type == "cpu":
        mask = mask.numpy()
    if isinstance(mask, np.ndarray):
        rows = np.flatnonzero(mask.max(axis=1) > 0) if mask.size else np.zeros(0, int)
        if not len(rows):
            return None
        y0, y1 = int(rows[0]), int(rows[-1]) + 1
        cols = np.flatnonzero(mask[y0:y1].max(axis=0) > 0)
        return int(cols[0]), y0, int(cols[-1]) + 1, y1
    import torch

    trows = torch.nonzero(mask.amax(dim=1) > 0)
    if not len(trows):
        return None
    y0, y1 = int(trows[0]), int(trows[-1]) + 1
    tcols = torch.nonzero(mask[y0:y1].amax(dim=0) > 0)
    return int(tcols[0]), y0, int(tcols[-1]) + 1, y1
