"""Speed and memory of Mask Margin Crop + Inpaint Stitch (the speed yardsticks in benchmarks/README.md).

    python benchmarks/bench_crop_stitch.py [--device cpu|cuda] [--repeats N]

Cases (all on real photo content: scikit-image's public-domain astronaut, tiled and resized):
- 4k-1: one 3840x2160 photo, 1 face-sized region, working size 1024   (yardstick: < 30 ms)
- 4k-8: one 3840x2160 photo, 8 regions of 150-600 px, working size 1024 (yardstick: < 100 ms, every region zoomed)
- b16-512 / b16-1024: a batch of 16 1024x1024 images, 1 region each, working size 512 / 1024
  (yardstick for 512: < 30 ms per image)

Each case runs in a child process of its own, so its peak memory (VmHWM on the CPU,
torch.cuda.max_memory_allocated on a GPU) is its own: reported above the inputs it starts with.
The stitch step gets the crops themselves as the "inpainted" images (the sampler's cost is not ours).
Times are medians (PASS/FAIL judged on them), with the fastest run beside them: on a shared machine
the fastest run is the better estimate of the code's own cost.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "4k-1": dict(width=3840, height=2160, batch=1, regions=1, working=1024, target_ms=30),
    "4k-8": dict(width=3840, height=2160, batch=1, regions=8, working=1024, target_ms=100),
    "b16-512": dict(width=1024, height=1024, batch=16, regions=1, working=512, target_ms=30),
    "b16-1024": dict(width=1024, height=1024, batch=16, regions=1, working=1024, target_ms=None),
}


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def run_case(name: str, device: str, repeats: int) -> dict:
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import torch
    from skimage import data

    from maskmargin.crop import mask_margin_crop
    from maskmargin.detection import Detection, ImageDetections
    from maskmargin.masks import build_masks
    from maskmargin.resample import resize
    from maskmargin.settings import CropSettings
    from maskmargin.stitch import inpaint_stitch

    case = CASES[name]
    w, h, n = case["width"], case["height"], case["batch"]
    astro = torch.from_numpy(data.astronaut()).float().div(255)
    photo = resize(astro.repeat(2, 2, 1), h, w)  # real content at the target size
    images = photo.unsqueeze(0).expand(n, h, w, 3).contiguous()
    rng = np.random.default_rng(0)
    found = []
    for _ in range(n):
        boxes, placed = [], 0
        while placed < case["regions"]:  # faces of 150-600 px that do not touch
            side = int(rng.integers(150, 600))
            x, y = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
            if all(x + side + 80 < b[0] or b[2] + 80 < x or y + side + 80 < b[1] or b[3] + 80 < y for b in boxes):
                boxes.append((x, y, x + side, y + side))
                placed += 1
        found.append(ImageDetections(w, h, tuple(Detection(tuple(map(float, b)), 0.9, "face") for b in boxes)))
    masks = build_masks(found, 8, 8)
    settings = CropSettings(case["working"], case["working"], 32)
    if device == "cuda":
        images, masks = images.cuda(), masks.cuda()

    def once() -> tuple[float, float]:
        t0 = time.perf_counter()
        c = mask_margin_crop(images, masks, settings, found, device=device)
        if device == "cuda":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        inpaint_stitch(c, c.crops)
        if device == "cuda":
            torch.cuda.synchronize()
        return t1 - t0, time.perf_counter() - t1

    once()  # warm up (OpenCV thread pool, CUDA kernels)
    base_rss = rss_kib("VmRSS")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base_gpu = torch.cuda.memory_allocated()
    crops, stitches = zip(*(once() for _ in range(repeats)))
    c = mask_margin_crop(images, masks, settings, found, device=device)
    out = {
        "case": name,
        "device": device,
        "crops": len(c.plan),
        "zooms": [round(z, 2) for z in c.zooms()],
        "crop_ms": statistics.median(crops) * 1000,
        "stitch_ms": statistics.median(stitches) * 1000,
        "fastest_ms": min(c + s for c, s in zip(crops, stitches)) * 1000,
        "images": n,
        "target_ms": case["target_ms"],
        "input_mib": (images.numel() * 4 + masks.numel() * 4) / 2**20,
        "peak_mib": max(rss_kib("VmHWM") - base_rss, 0) / 1024,
    }
    if device == "cuda":
        out["peak_gpu_mib"] = (torch.cuda.max_memory_allocated() - base_gpu) / 2**20
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--case", help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case, args.device, args.repeats)))
        return 0
    import torch

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, device {args.device}; "
        f"medians of {args.repeats} runs, each case in its own process"
    )
    print(
        f"{'case':<9} {'crops':>5} {'zoom':>11} | {'crop ms':>8} {'stitch ms':>9} {'total/img':>9} {'fastest':>7} "
        f"{'target':>7} | "
        f"{'inputs MiB':>10} {'peak MiB':>9}"
    )
    for name in CASES:
        proc = subprocess.run(
            [sys.executable, __file__, "--case", name, "--device", args.device, "--repeats", str(args.repeats)],
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            print(f"{name}: failed\n{proc.stderr[-2000:]}")
            return 1
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        per_image = (r["crop_ms"] + r["stitch_ms"]) / r["images"]
        zoom = f"{min(r['zooms']):.2f}-{max(r['zooms']):.2f}" if r["zooms"] else "-"
        target = f"<{r['target_ms']}" if r["target_ms"] else "-"
        verdict = "" if not r["target_ms"] else " PASS" if per_image < r["target_ms"] else " FAIL"
        gpu = f"  (GPU peak {r['peak_gpu_mib']:.0f} MiB)" if "peak_gpu_mib" in r else ""
        fastest = r["fastest_ms"] / r["images"]
        print(
            f"{name:<9} {r['crops']:>5} {zoom:>11} | {r['crop_ms']:8.1f} {r['stitch_ms']:9.1f} {per_image:9.1f} "
            f"{fastest:7.1f} {target:>7}{verdict} | {r['input_mib']:10.0f} {r['peak_mib']:9.0f}{gpu}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
