"""The test images of the MediaPipe parity fixtures, built with plain numpy so that every numpy and
scikit-image version makes the same pixels (tools/make_mediapipe_fixtures.py uses them too)."""

from __future__ import annotations

import numpy as np


def _rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]


def parity_images() -> dict[str, np.ndarray]:
    """name -> RGB uint8 [H, W, 3]."""
    from skimage import data

    astronaut = np.ascontiguousarray(data.astronaut())
    camera = _rgb(data.camera())
    small = astronaut[::2, ::2]
    group = np.full((400, 720, 3), 90, dtype=np.uint8)
    group[60:316, 20:276] = small
    group[100:356, 300:556] = small[:, ::-1]
    group[250:378, 580:708] = small[::2, ::2]
    turned = np.ascontiguousarray(np.rot90(astronaut[:400, 80:480]))
    tall = np.full((700, 300, 3), 200, dtype=np.uint8)
    tall[150:406, 22:278] = small
    return {
        "astronaut": astronaut,
        "camera": np.ascontiguousarray(camera),
        "group": group,
        "turned": turned,
        "tall": tall,
    }
