"""A folder of test images for the batch command: public-domain photos, generated ones and a corrupt file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from photos import ASTRONAUT
from PIL import Image
from skimage import data

CORRUPT = "broken/corrupt.png"
CORRUPT_ERROR = "inputImage is not a readable PNG, JPG or WEBP image"


def image_folder(folder: Path) -> Path:
    """astronaut.png, nested/astronaut.jpg, camera.png (gray), blank.webp (no face) and a corrupt PNG."""
    (folder / "nested").mkdir(parents=True)
    (folder / "broken").mkdir()
    Image.fromarray(ASTRONAUT).save(folder / "astronaut.png")
    Image.fromarray(ASTRONAUT).save(folder / "nested" / "astronaut.jpg", quality=90)
    Image.fromarray(data.camera()).save(folder / "camera.png")
    Image.fromarray(np.full((96, 128, 3), 128, np.uint8)).save(folder / "blank.webp")
    (folder / CORRUPT).write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png")
    (folder / "notes.txt").write_text("not an image: not in the batch")
    return folder


GOOD = ("astronaut.png", "blank.webp", "camera.png", "nested/astronaut.jpg")
