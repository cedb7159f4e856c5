"""What Track Video costs per frame, against detecting that frame (goal: under 5%).

    python benchmarks/bench_tracking.py [--side 1024] [--frames 40] [--repeats 5]

The clip is tests/synthetic_video.py's: the astronaut's real face moving along a smooth path and growing,
one frame covered, at --side x --side. Detection is Image Mask as the node calls it (`image_mask` with
mediapipe_face_full, padding 4, blur 4, no previews); tracking is `track_video` on its output, split into
linking + smoothing (`link` and `tracked_detections`) and moving the masks (`steady_masks`); the steady
windows' own cost shows as Mask Margin Crop's planning with and without tracked detections. Medians of
--repeats runs, interleaved (detection, then tracking) so that a busy machine weighs on both; one process.
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

import torch  # noqa: E402
from synthetic_video import COVERED, ONE_FACE, Motion, video  # noqa: E402

from maskmargin.crop import plan_crops  # noqa: E402
from maskmargin.loader import load_detector  # noqa: E402
from maskmargin.pipeline import image_mask  # noqa: E402
from maskmargin.settings import CropSettings, MaskSettings  # noqa: E402
from maskmargin.tracking import TrackSettings, link, steady_masks, tracked_detections  # noqa: E402

T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """(fn's result, the seconds it took)."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


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
    times: dict[str, list[float]] = {"detect": [], "link": [], "masks": [], "plan": [], "plan_tracked": []}
    for _ in range(args.repeats):
        times["detect"].append(timed(lambda: image_mask(detector, images, settings))[1])
        tracks, took = timed(lambda: link(found.detections, track))
        tracked, more = timed(lambda: tracked_detections(found.detections, tracks))  # noqa: B023 (called here)
        times["link"].append(took + more)
        moved, took = timed(lambda: steady_masks(found.masks, found.detections, tracks))  # noqa: B023
        times["masks"].append(took)
        times["plan"].append(timed(lambda: plan_crops(found.masks, found.detections, crop))[1])
        times["plan_tracked"].append(timed(lambda: plan_crops(moved, tracked, crop))[1])  # noqa: B023
    per_frame = {k: statistics.median(v) / args.frames * 1000 for k, v in times.items()}
    detect = per_frame["detect"]
    print(f"{args.frames} frames of {args.side}x{args.side}, one face, medians of {args.repeats} (ms per frame)")
    print(f"  detection (Image Mask)           {detect:8.3f}")
    for key, name in (("link", "linking + smoothing"), ("masks", "moving the masks")):
        print(f"  {name:32} {per_frame[key]:8.3f}   {per_frame[key] / detect:6.2%} of detection")
    total = per_frame["link"] + per_frame["masks"]
    print(f"  Track Video in all               {total:8.3f}   {total / detect:6.2%} of detection (goal < 5%)")
    extra = per_frame["plan_tracked"] - per_frame["plan"]
    print(f"  steady windows in the crop plan  {extra:8.3f}   {extra / detect:6.2%} of detection")
    return 0


if __name__ == "__main__":
    sys.exit(main())
