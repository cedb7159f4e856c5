"""The face detailer's time split, one sampler call for all faces vs one call per face (Impact's and adetailer's way).

    COMFYUI_DIR=... .venv/bin/python benchmarks/bench_detailer.py [--faces 1 4 8] [--steps 4] [--size 256]
    make bench-detailer

One image with 1, 4 or 8 faces (astronaut heads on a grey canvas), the random-weight SD1.5 checkpoint of
tests/random_checkpoints.py (built into the cache if missing) at a 256 px working size, on ComfyUI's own
functions (no server): detect (Image Mask), crop (Mask Margin Crop), VAE encode, sampler, VAE decode, stitch.
"Batch" is MaskMargin's loop: every crop in one VAE encode, one sampler call and one decode. "Per face"
runs encode, sampler and decode once per crop, as detailers that loop over faces do. Prints the medians of
`--repeat` runs and the ratio of sampler time, per face loop over batch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def comfy_ready() -> None:
    comfy_dir = os.environ.get("COMFYUI_DIR") or str(Path.home() / ".cache" / "maskmargin" / "ComfyUI-0.8.0")
    os.environ["COMFYUI_DIR"] = comfy_dir  # random_sd15_path builds the checkpoint with it
    os.environ.setdefault("TQDM_DISABLE", "1")  # the sampler's progress bars would bury the table
    sys.path.insert(0, comfy_dir)
    import comfy.cli_args
    import torch

    if not torch.cuda.is_available():
        comfy.cli_args.args.cpu = True


def faces_image(n: int):
    """A 1024 x 512 float image with n astronaut heads (200 px) in a 4 x 2 grid, the rest grey."""
    import numpy as np
    import torch
    from PIL import Image
    from skimage import data

    head = np.asarray(Image.fromarray(data.astronaut()[10:250, 110:330]).resize((200, 220)))
    canvas = np.full((512, 1024, 3), 128, dtype=np.uint8)
    for k in range(n):
        r, c = divmod(k, 4)
        y, x = 20 + r * 250, 28 + c * 250
        canvas[y : y + 220, x : x + 200] = head if k % 2 == 0 else head[:, ::-1]
    return torch.from_numpy(canvas).float().div(255)[None]


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args(argv)
    comfy_ready()
    import torch

    with torch.inference_mode():  # as ComfyUI runs its nodes
        return run(args)


def run(args: argparse.Namespace) -> int:
    import comfy.sd
    import torch
    from detailer_fixtures import random_sd15_path

    import nodes
    from maskmargin.crop import mask_margin_crop
    from maskmargin.loader import load_detector
    from maskmargin.pipeline import image_mask
    from maskmargin.settings import CropSettings, MaskSettings
    from maskmargin.stitch import inpaint_stitch

    model, clip, vae = comfy.sd.load_checkpoint_guess_config(str(random_sd15_path()))[:3]
    positive = nodes.CLIPTextEncode().encode(clip, "a detailed photo of a face")[0]
    negative = nodes.CLIPTextEncode().encode(clip, "blurry")[0]
    detector = load_detector("mediapipe_face_full")
    settings = CropSettings(args.size, args.size, 32, 8)

    def sample(latent: dict) -> dict:
        return nodes.common_ksampler(
            model, 7, args.steps, 6.0, "euler", "normal", positive, negative, latent, denoise=0.5
        )[0]

    def encode(pixels, mask):
        return nodes.SetLatentNoiseMask().set_mask(nodes.VAEEncode().encode(vae, pixels)[0], mask)[0]

    # warm-up: first calls load the models and build kernels
    warm = mask_margin_crop(
        faces_image(1), image_mask(detector, faces_image(1), MaskSettings(0.25, 20, 8, 8)).masks, settings
    )
    vae.decode(sample(encode(warm.crops, warm.crop_masks))["samples"])

    print(
        f"random SD1.5, {args.size} px crops, {args.steps} steps, euler, CPU threads {torch.get_num_threads()}; "
        f"seconds (median of {args.repeat})"
    )
    header = ("faces", "mode", "detect", "crop", "encode", "sampler", "decode", "stitch", "total")
    print(" | ".join(f"{h:>8}" for h in header))
    ratios = []
    for n in args.faces:
        image = faces_image(n)
        rows: dict[str, list[list[float]]] = {"batch": [], "per face": []}
        for _ in range(args.repeat):
            found, t_detect = timed(image_mask, detector, image, MaskSettings(0.25, 20, 8, 8))
            crop, t_crop = timed(mask_margin_crop, image, found.masks, settings, found.detections)
            assert len(crop.plan) == n, f"found {len(crop.plan)} faces, placed {n}"
            latent, t_enc = timed(encode, crop.crops, crop.crop_masks)
            sampled, t_samp = timed(sample, latent)
            decoded, t_dec = timed(vae.decode, sampled["samples"])
            _, t_stitch = timed(inpaint_stitch, crop, decoded)
            rows["batch"].append([t_detect, t_crop, t_enc, t_samp, t_dec, t_stitch])
            t_enc1 = t_samp1 = t_dec1 = 0.0
            outs = []
            for i in range(n):
                lat, t = timed(encode, crop.crops[i : i + 1], crop.crop_masks[i : i + 1])
                t_enc1 += t
                smp, t = timed(sample, lat)
                t_samp1 += t
                dec, t = timed(vae.decode, smp["samples"])
                t_dec1 += t
                outs.append(dec)
            _, t_stitch1 = timed(inpaint_stitch, crop, torch.cat(outs))
            rows["per face"].append([t_detect, t_crop, t_enc1, t_samp1, t_dec1, t_stitch1])
        medians = {mode: [statistics.median(col) for col in zip(*runs)] for mode, runs in rows.items()}
        for mode, cols in medians.items():
            print(" | ".join([f"{n:>8}", f"{mode:>8}", *(f"{c:8.3f}" for c in cols), f"{sum(cols):8.3f}"]))
        ratio = medians["per face"][3] / medians["batch"][3]
        total = sum(medians["per face"]) / sum(medians["batch"])
        ratios.append((n, ratio, total))
    for n, ratio, total in ratios:
        print(f"{n} faces: sampler per-face loop / one batch = {ratio:.2f}x; whole graph {total:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
