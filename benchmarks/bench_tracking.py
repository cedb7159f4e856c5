"""What Track Video costs per frame, against detecting that frame (goal: under 5%).

    python benchmarks/bench_tracking.py [--side 1024] [--frames 40] [--repeats 5]

The clip is tests/synthetic_video.py's: the astronaut's real face moving along a smooth path and growing,
one frame covered, at --side x --side. Detection is Image Mask as the node calls it (`image_mask` with
mediapipe_face_full, padding 4, blur 4, no previews); tracking is `track_video` on its output, split into
linking + smoothing (`link` and `tracked_detections`) and moving the masks (`steady_masks`); the steady
windows' own cost shows as Mask Margin Crop's planning with and without tracked detections. Moving the masks
is also set against its floor: a fresh output batch and each tracked part resampled once into it, one
frame after another, with the parts and their moves given for free (what no implementation can skip).
Medians of --repeats runs, interleaved (detection, then tracking) so that a busy machine weighs on both;
one process.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from synthetic_video import COVERED, ONE_FACE, Motion, video  # noqa: E402

from maskmargin.crop import plan_crops  # noqa: E402
from maskmargin.loader import load_detector  # noqa: E402
from maskmargin.pipeline import image_mask  # noqa: E402
from maskmargin.regions import find_regions  # noqa: E402
from maskmargin.settings import CropSettings, MaskSettings  # noqa: E402
from maskmargin.tracking import TrackSettings, link, steady_masks, tracked_detections  # noqa: E402

T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """(fn's result, the seconds it took)."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def floor(shape: tuple[int, ...], parts: list[list[tuple[tuple[int, int, int, int], np.ndarray]]]) -> np.ndarray:
    """A fresh zeroed batch and each part resampled once into its window (the identity move: the same work
    as any other), frame by frame."""
    out = np.zeros(shape, np.float32)
    move = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    for f, frame in enumerate(parts):
        for (x0, y0, x1, y1), values in frame:
            cv2.warpAffine(values, move, (x1 - x0, y1 - y0), dst=out[f, y0:y1, x0:x1], flags=cv2.INTER_LINEAR)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=1024)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    grow = args.side / 384  # the clip's path is laid out for 384 px: scale it with the frame
    motion = Motion(
        start=(ONE_FACE.start[0] * grow, ONE_FACE.start[1] * grow),
        speed=(ONE_FACE.speed[0] * grow, ONE_FACE.speed[1] * grow),
        bend=ONE_FACE.bend * grow,
        scale=(ONE_FACE.scale[0] * grow, ONE_FACE.scale[1] * grow),
        frames=args.frames,
    )
    images = torch.from_numpy(video([motion], COVERED, side=args.side)).float().div(255)
    detector = load_detector("mediapipe_face_full")
    settings, track, crop = MaskSettings(confidence=0.5), TrackSettings(), CropSettings(512, 512, 32)
    found = image_mask(detector, images, settings)  # warm-up, and the input tracking works on
    parts = [  # the floor's input: each frame's detected parts as (window, values)
        [
            (r.box, np.where(r.owned, found.masks[f, r.box[1] : r.box[3], r.box[0] : r.box[2]].numpy(), np.float32(0)))
            for r in find_regions(found.masks[f], found.detections[f], orphans=False)
        ]
        for f in range(args.frames)
    ]
    assert np.array_equal(floor(found.masks.shape, parts) > 0, found.masks.numpy() > 0), "the floor draws every part"
    times: dict[str, list[float]] = {k: [] for k in ("detect", "link", "masks", "floor", "plan", "plan_tracked")}
    for _ in range(args.repeats):
        times["detect"].append(timed(lambda: image_mask(detector, images, settings))[1])
        tracks, took = timed(lambda: link(found.detections, track))
        tracked, more = timed(lambda: tracked_detections(found.detections, tracks))  # noqa: B023 (called here)
        times["link"].append(took + more)
        moved, took = timed(lambda: steady_masks(found.masks, found.detections, tracks))  # noqa: B023
        times["masks"].append(took)
        times["floor"].append(timed(lambda: floor(found.masks.shape, parts))[1])
        times["plan"].append(timed(lambda: plan_crops(found.masks, found.detections, crop))[1])
        times["plan_tracked"].append(timed(lambda: plan_crops(moved, tracked, crop))[1])  # noqa: B023
    per_frame = {k: statistics.median(v) / args.frames * 1000 for k, v in times.items()}
    detect = per_frame["detect"]
    print(f"{args.frames} frames of {args.side}x{args.side}, one face, medians of {args.repeats} (ms per frame)")
    print(f"  detection (Image Mask)           {detect:8.3f}")
    linking, masks, least = per_frame["link"], per_frame["masks"], per_frame["floor"]
    print(f"  linking + smoothing              {linking:8.3f}   {linking / detect:6.2%} of detection (goal < 5%)")
    print(f"  moving the masks                 {masks:8.3f}   {masks / detect:6.2%} of detection")
    print(f"    its floor (fresh frames, each part resampled once) {least:8.3f}", end="")
    print(f"   {least / detect:6.2%} of detection; moving the masks = {masks / least:.2f}x its floor")
    total = linking + masks
    print(f"  Track Video in all               {total:8.3f}   {total / detect:6.2%} of detection (goal < 5%)")
    extra = per_frame["plan_tracked"] - per_frame["plan"]
    print(f"  steady windows in the crop plan  {extra:8.3f}   {extra / detect:6.2%} of detection")
    return 0


if __name__ == "__main__":
    sys.exit(main())
