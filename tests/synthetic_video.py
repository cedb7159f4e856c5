"""Synthetic videos for the tracking tests and benchmark: the astronaut's real face moved along a known smooth
path (sub-pixel, so the motion itself has no steps), growing as it goes, optionally with a second face that
crosses in front of it and frames where the face is covered."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from photos import ASTRONAUT

HEAD = ASTRONAUT[10:250, 110:330]  # 240 x 220: the face with hair and collar
SIDE = 384


@dataclass(frozen=True)
class Motion:
    """The head's centre and scale per frame: a straight move plus a gentle curve, the scale growing evenly."""

    start: tuple[float, float]
    speed: tuple[float, float]  # px per frame
    bend: float  # px per frame^2 (the true second difference of the centre's y)
    scale: tuple[float, float]  # at the first and the last frame
    frames: int

    def at(self, t: int) -> tuple[float, float, float]:
        mid = (self.frames - 1) / 2
        cx = self.start[0] + self.speed[0] * t
        cy = self.start[1] + self.speed[1] * t + self.bend * (t - mid) ** 2 / 2
        s = self.scale[0] + (self.scale[1] - self.scale[0]) * t / max(self.frames - 1, 1)
        return cx, cy, s


def background(side: int = SIDE) -> np.ndarray:
    """A soft grey-blue gradient with fixed fine noise: texture, but no face."""
    rng = np.random.default_rng(5)
    ramp = np.linspace(70, 150, side, dtype=np.float32)
    base = ramp[None, :, None] * np.array([0.9, 1.0, 1.1], np.float32) + ramp[:, None, None] * 0.3
    return np.clip(base + rng.normal(0, 4, (side, side, 3)), 0, 255).astype(np.float32)


def paste(frame: np.ndarray, head: np.ndarray, cx: float, cy: float, scale: float) -> None:
    """`head` scaled by `scale`, its centre at (cx, cy) (sub-pixel, bilinear), painted over `frame` in place."""
    import cv2

    h, w = head.shape[:2]
    m = np.array([[scale, 0, cx - scale * w / 2], [0, scale, cy - scale * h / 2]], np.float64)
    size = (frame.shape[1], frame.shape[0])
    moved = cv2.warpAffine(head.astype(np.float32), m, size, flags=cv2.INTER_LINEAR)
    cover = cv2.warpAffine(np.ones((h, w), np.float32), m, size, flags=cv2.INTER_LINEAR)[..., None]
    frame *= 1 - cover
    frame += moved * cover


def video(paths: list[Motion], covered: tuple[int, ...] = (), side: int = SIDE, noise: float = 0.0) -> np.ndarray:
    """[T, side, side, 3] uint8: one head per path (the second mirrored, painted over the first); in the
    `covered` frames a grey card hides the first head; `noise`: the sensor noise's spread, in 8-bit levels,
    new in every frame."""
    rng = np.random.default_rng(11)
    frames = []
    for t in range(paths[0].frames):
        frame = background(side)
        for k, path in enumerate(paths):
            cx, cy, s = path.at(t)
            paste(frame, HEAD if k == 0 else HEAD[:, ::-1], cx, cy, s)
        if t in covered:
            cx, cy, s = paths[0].at(t)
            hw, hh = HEAD.shape[1] * s / 2 + 4, HEAD.shape[0] * s / 2 + 4
            frame[max(int(cy - hh), 0) : int(cy + hh), max(int(cx - hw), 0) : int(cx + hw)] = 128
        if noise:
            frame += rng.normal(0, noise, frame.shape).astype(np.float32)
        frames.append(np.clip(np.rint(frame), 0, 255).astype(np.uint8))
    return np.stack(frames)


# one face drifting right and down, growing from 0.55x to 0.8x, with a covered frame in the middle
ONE_FACE = Motion(start=(120.0, 170.0), speed=(3.1, 0.7), bend=0.04, scale=(0.55, 0.8), frames=40)
COVERED = (19,)
# a face that does not move, for the masks' frame-to-frame overlap (with sensor noise, the only change)
STILL = Motion(start=(190.0, 180.0), speed=(0.0, 0.0), bend=0.0, scale=(0.7, 0.7), frames=24)
# two faces crossing: A moving right, B (smaller, mirrored, painted in front) moving left a little lower
CROSSING = (
    Motion(start=(90.0, 170.0), speed=(5.2, 0.0), bend=0.0, scale=(0.6, 0.6), frames=40),
    Motion(start=(300.0, 215.0), speed=(-5.4, 0.0), bend=0.0, scale=(0.5, 0.5), frames=40),
)
