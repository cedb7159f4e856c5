"""MediaPipe's graphs batched on a GPU: ms per frame for a batch of 1024 px frames (issue 11's GPU measure).

    python benchmarks/bench_mediapipe_gpu.py [--frames 64] [--size 1024] [--repeats 5] [--device cuda]

`mediapipe_face_full` and `eyes_mesh_mediapipe` through `detect_batch` on the device (every stage one
batched torch forward), against the same batch on the CPU (LiteRT where installed) in the same run. Frames
are the astronaut photo shifted and flipped, one face each. Without the device it says so and exits 0.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def frames(count: int, size: int) -> list[np.ndarray]:
    from skimage import data
    from skimage.transform import resize

    base = (resize(data.astronaut(), (size, size), order=1) * 255).astype(np.uint8)
    out = []
    for i in range(count):
        frame = np.roll(base, (i * 7) % (size // 8), axis=1)
        out.append(np.ascontiguousarray(frame[:, ::-1] if i % 2 else frame))
    return out


def per_frame(det, batch: list[np.ndarray], repeats: int, sync) -> float:
    det.detect_batch(batch, 0.25, 6)
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        det.detect_batch(batch, 0.25, 6)
        sync()
        times.append((time.perf_counter() - t) / len(batch) * 1000)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    import torch

    from maskmargin.loader import load_detector

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: nothing measured")
        return 0
    batch = frames(args.frames, args.size)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    print(f"{args.frames} frames of {args.size} px, ms per frame (median of {args.repeats})")
    print(f"{'model':22} {args.device:>8} {'cpu':>8} {'cpu/device':>11}")
    for name in ("mediapipe_face_full", "eyes_mesh_mediapipe"):
        on_device = per_frame(load_detector(name, device=args.device), batch, args.repeats, sync)
        on_cpu = per_frame(load_detector(name, device="cpu"), batch, max(1, args.repeats // 2), lambda: None)
        print(f"{name:22} {on_device:8.2f} {on_cpu:8.2f} {on_cpu / on_device:10.1f}x")
    if args.device == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
