"""Test photos, loaded once per test process and read-only (a test that writes into one fails loudly)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data


def _frozen(pixels: np.ndarray) -> np.ndarray:
    pixels.setflags(write=False)
    return pixels


# NASA's public-domain portrait: 512 x 512, one face around x 175..280, y 70..175
ASTRONAUT = _frozen(data.astronaut())
# the same as a ComfyUI IMAGE [H, W, 3] float32 in 0..1 (unsqueeze for a batch)
ASTRONAUT_IMAGE = torch.from_numpy(ASTRONAUT.copy()).float().div(255)


def astronaut_png(folder: Path) -> Path:
    """The astronaut saved as a PNG file in `folder`."""
    path = Path(folder) / "astronaut.png"
    Image.fromarray(ASTRONAUT).save(path)
    return path
