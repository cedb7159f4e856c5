"""Speed and memory of Mask Margin Crop + Inpaint Stitch against the physical floor, quiet and under load.

    python benchmarks/bench_crop_stitch.py [--device cpu|cuda] [--repeats N] [--quick]

Cases (all on real photo content: scikit-image's public-domain astronaut, tiled and resized):
- 4k-1: one 3840x2160 photo, 1 face-sized region, working size 1024   (yardstick: < 30 ms)
- 4k-8: one 3840x2160 photo, 8 regions of 150-600 px, working size 1024 (yardstick: < 100 ms, every region zoomed)
- b16-512 / b16-1024: a batch of 16 1024x1024 images, 1 region each, working size 512 / 1024
  (yardstick for 512: < 30 ms per image)
- r1 .. r32: 1 to 32 regions of 150-400 px on one 3840x2160 photo, working size 1024 (growth in regions)
- f1 .. f64: 1 to 64 frames of 1024x1024, one region each, working size 512 (growth in frames)
- r1-copy: r1 with a copy of the mask, whose origin Mask Margin Crop cannot know: it reads the whole mask
  for parts no detection touches (the masks of the other cases come from `build_masks`, as Image Mask's do,
  and are read only where they can be above 0)

The floor is the work no implementation can skip, written as plainly as numpy and OpenCV allow, one
region after another: resize each window and its mask to the working size, one fresh output frame,
resize each crop back, one blend per region (t += (new - t) * mask over the region's box). It gets
the windows for free (no labelling, no ownership, no clamping). Ours is `mask_margin_crop` (given the
detections, as Image Mask hands them on) + `inpaint_stitch` with the crops as the "inpainted" images
(the sampler's cost is not ours).

Each case runs in a child process of its own: ours and the floor interleaved, medians of --repeats
(twice as many under load), first quiet, then with busy processes on every core
(`contention.background_load`, started and stopped by the child). Peak memory is measured in further
children, one per side, so that each peak is its own (VmHWM above the inputs on the CPU;
torch.cuda.max_memory_allocated on a GPU).
The growth exponent is the least-squares slope of log(time) on log(regions) or log(frames).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from contention import background_load, growth_exponent, interleaved, paired_ratio  # noqa: E402

CASES = {
    "4k-1": dict(width=3840, height=2160, batch=1, regions=1, working=1024, target_ms=30),
    "4k-8": dict(width=3840, height=2160, batch=1, regions=8, working=1024, target_ms=100),
    "b16-512": dict(width=1024, height=1024, batch=16, regions=1, working=512, target_ms=30),
    "b16-1024": dict(width=1024, height=1024, batch=16, regions=1, working=1024, target_ms=None),
}
REGIONS = [1, 2, 4, 8, 16, 32]
FRAMES = [1, 4, 16, 64]
for k in REGIONS:
    CASES[f"r{k}"] = dict(width=3840, height=2160, batch=1, regions=k, working=1024, target_ms=None, grid=True)
for k in FRAMES:
    CASES[f"f{k}"] = dict(width=1024, height=1024, batch=k, regions=1, working=512, target_ms=None)
# r1 with a mask of unknown origin (a copy): the whole 4K mask is read for parts no detection touches
CASES["r1-copy"] = dict(CASES["r1"], copied_mask=True)
MEMORY_CASES = ["4k-1", "4k-8", "b16-512", "b16-1024"]


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def boxes_for(case: dict, rng) -> list[tuple[int, int, int, int]]:
    w, h, k = case["width"], case["height"], case["regions"]
    if case.get("grid"):  # one region in each of k cells of an 8 x 4 grid, sizes 150-400 px
        cells = [(cx, cy) for cy in range(4) for cx in range(8)]
        order = rng.permutation(len(cells))[:k]
        cw, ch = w // 8, h // 4
        out = []
        for i in order:
            cx, cy = cells[int(i)]
            side = int(rng.integers(150, min(cw, ch) - 60))
            x = cx * cw + int(rng.integers(30, cw - side - 29))
            y = cy * ch + int(rng.integers(30, ch - side - 29))
            out.append((x, y, x + side, y + side))
        return out
    boxes: list[tuple[int, int, int, int]] = []
    while len(boxes) < k:  # faces of 150-600 px that do not touch
        side = int(rng.integers(150, min(600, w, h) - 1))
        x, y = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
        if all(x + side + 80 < b[0] or b[2] + 80 < x or y + side + 80 < b[1] or b[3] + 80 < y for b in boxes):
            boxes.append((x, y, x + side, y + side))
    return boxes


def floor(images, masks, plan, width: int, height: int):
    """The physical floor on numpy arrays: resize in, one fresh frame, resize back, one blend per region."""
    import cv2
    import numpy as np

    n = len(plan)
    crops = np.empty((n, height, width, 3), np.float32)
    crop_masks = np.empty((n, height, width), np.float32)

    def window(x, win, border):
        hh, ww = x.shape[:2]
        x0, y0, x1, y1 = win
        inside = x[max(y0, 0) : min(y1, hh), max(x0, 0) : min(x1, ww)]
        pad = (max(-y0, 0), max(y1 - hh, 0), max(-x0, 0), max(x1 - ww, 0))
        return cv2.copyMakeBorder(inside, *pad, border) if any(pad) else inside

    for i, (b, win, _) in enumerate(plan):
        shrink = (win[2] - win[0]) > width
        cv2.resize(
            window(images[b], win, cv2.BORDER_REPLICATE),
            (width, height),
            dst=crops[i],
            interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC,
        )
        cv2.resize(
            window(masks[b], win, cv2.BORDER_CONSTANT),
            (width, height),
            dst=crop_masks[i],
            interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR,
        )
    out = images.copy()
    for i, (b, (x0, y0, x1, y1), (rx0, ry0, rx1, ry1)) in enumerate(plan):
        shrink = (x1 - x0) < width
        back = cv2.resize(crops[i], (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        t = out[b, ry0:ry1, rx0:rx1]
        t += (back[ry0 - y0 : ry1 - y0, rx0 - x0 : rx1 - x0] - t) * masks[b, ry0:ry1, rx0:rx1, None]
    return crops, crop_masks, out


def run_case(name: str, device: str, repeats: int, memory: str | None) -> dict:
    import numpy as np
    import torch
    from skimage import data

    from maskmargin.crop import mask_margin_crop, plan_crops
    from maskmargin.detection import Detection, ImageDetections
    from maskmargin.masks import build_masks
    from maskmargin.resample import resize
    from maskmargin.settings import CropSettings
    from maskmargin.stitch import inpaint_stitch

    case = CASES[name]
    w, h, n = case["width"], case["height"], case["batch"]
    astro = torch.from_numpy(data.astronaut()).float().div(255)
    photo = resize(astro.repeat(-(-h // 512), -(-w // 512), 1)[:h, :w].contiguous(), h, w)
    images = photo.unsqueeze(0).expand(n, h, w, 3).contiguous()
    rng = np.random.default_rng(0)
    found = [
        ImageDetections(w, h, tuple(Detection(tuple(map(float, b)), 0.9, "face") for b in boxes_for(case, rng)))
        for _ in range(n)
    ]
    masks = build_masks(found, 8, 8)  # as Image Mask makes them: Mask Margin Crop knows where they can be set
    if case.get("copied_mask"):
        masks = masks.clone()
    settings = CropSettings(case["working"], case["working"], 32)
    plan = [(c.image, c.window, c.region.box) for c in plan_crops(masks, found, settings)]
    images_np, masks_np = images.numpy(), masks.numpy()
    if device == "cuda":
        images, masks = images.cuda(), masks.cuda()

    def ours() -> None:
        c = mask_margin_crop(images, masks, settings, found, device=device)
        inpaint_stitch(c, c.crops)
        if device == "cuda":
            torch.cuda.synchronize()

    def bare() -> None:
        floor(images_np, masks_np, plan, settings.width, settings.height)

    input_mib = (images.numel() * 4 + masks.numel() * 4) / 2**20
    if memory is not None:  # one side only: its peak is its own
        fn = ours if memory == "ours" else bare
        fn()
        base = rss_kib("VmRSS")
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base_gpu = torch.cuda.memory_allocated()
        fn()
        out = {"peak_mib": max(rss_kib("VmHWM") - base, 0) / 1024, "input_mib": input_mib}
        if device == "cuda":
            out["peak_gpu_mib"] = (torch.cuda.max_memory_allocated() - base_gpu) / 2**20
        return out
    quiet = interleaved({"ours": ours, "floor": bare}, repeats)
    with background_load() as busy:  # twice the rounds: under load one round's ratio spreads far wider
        loaded = interleaved({"ours": ours, "floor": bare}, 2 * repeats)
    return {
        "case": name,
        "crops": len(plan),
        "images": n,
        "regions": case["regions"],
        "target_ms": case["target_ms"],
        "busy": busy,
        **{f"{phase}_{k}": v * 1000 for phase, t in (("quiet", quiet), ("loaded", loaded)) for k, v in t.items()},
        **{
            f"{phase}_{k}_min": v.min * 1000
            for phase, t in (("quiet", quiet), ("loaded", loaded))
            for k, v in t.items()
        },
        "quiet_paired": paired_ratio(quiet["ours"], quiet["floor"]),
        "loaded_paired": paired_ratio(loaded["ours"], loaded["floor"]),
    }


def child(name: str, device: str, repeats: int, memory: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "--case", name, "--device", device, "--repeats", str(repeats)]
    proc = subprocess.run(cmd + (["--memory", memory] if memory else []), capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{name}: failed\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="only the four yardstick cases, no memory")
    ap.add_argument("--only", help="comma-separated case names")
    ap.add_argument("--case", help=argparse.SUPPRESS)  # the child process
    ap.add_argument("--memory", choices=["ours", "floor"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case, args.device, args.repeats, args.memory)))
        return 0
    import torch

    names = args.only.split(",") if args.only else list(CASES)[:4] if args.quick else list(CASES)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, device {args.device}; "
        f"medians of {args.repeats} interleaved runs, each case in its own process; "
        f"'loaded': one busy process per core started by the benchmark"
    )
    print(
        "ratio: the median of ours / floor over rounds run back to back (the medians' ratio in brackets)\n"
        f"{'case':<9} {'crops':>5} | {'quiet ms':>8} {'floor':>7} {'ratio':>15} | {'loaded ms':>9} {'floor':>7} "
        f"{'ratio':>15} | {'per img':>7} {'target':>7}"
    )
    results = {}
    for name in names:
        try:
            r = child(name, args.device, args.repeats)
        except RuntimeError as exc:
            print(exc)
            return 1
        results[name] = r
        per_image = r["quiet_ours"] / r["images"]
        target = f"<{r['target_ms']}" if r["target_ms"] else "-"
        verdict = "" if not r["target_ms"] else " PASS" if per_image < r["target_ms"] else " FAIL"
        print(
            f"{name:<9} {r['crops']:>5} | {r['quiet_ours']:8.1f} {r['quiet_floor']:7.1f} "
            f"{r['quiet_paired']:5.2f}x ({r['quiet_ours'] / r['quiet_floor']:5.2f}x) | "
            f"{r['loaded_ours']:9.1f} {r['loaded_floor']:7.1f} "
            f"{r['loaded_paired']:5.2f}x ({r['loaded_ours'] / r['loaded_floor']:5.2f}x) | "
            f"{per_image:7.1f} {target:>7}{verdict}",
            flush=True,
        )
    for label, series, key in (("regions on 4K", REGIONS, "r"), ("frames of 1024 px", FRAMES, "f")):
        got = [k for k in series if f"{key}{k}" in results]
        if len(got) < 2:
            continue
        parts = []
        for phase in ("quiet", "loaded"):
            for side in ("ours", "floor"):
                e = growth_exponent(got, [results[f"{key}{k}"][f"{phase}_{side}"] for k in got])
                parts.append(f"{phase} {side} {e:.2f}")
        print(f"growth exponent in {label} ({got[0]}-{got[-1]}): " + ", ".join(parts))
    if not args.quick:
        print("\npeak memory above the inputs (one call after a warm-up, each side in its own process, MiB)")
        print(f"{'case':<9} {'inputs':>7} {'ours':>7} {'floor':>7} {'ratio':>6}")
        for name in [m for m in MEMORY_CASES if m in names]:
            a, b = child(name, args.device, 1, "ours"), child(name, args.device, 1, "floor")
            key = "peak_gpu_mib" if "peak_gpu_mib" in a else "peak_mib"
            ratio = a[key] / b[key] if b[key] else float("nan")
            print(f"{name:<9} {a['input_mib']:7.0f} {a[key]:7.0f} {b[key]:7.0f} {ratio:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
