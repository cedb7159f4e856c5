"""Images/s of `batch` on the same images: the local pool vs Ray Data with 1 and 2 actors; peak memory.

    .venv/bin/python benchmarks/bench_batch.py [--images 200] [--model mediapipe_face_full]

Every variant runs in one process, one after another, on the same generated folder (the astronaut and the
camera photo, shifted and flipped so no two files are the same); each prints images/s and the ratios to
the local pool, measured in this one run. Peak memory is each worker's high-water RSS: the driver's for the
local pool (the threads share it), each Ray actor's own (getrusage in the actor) for Ray. Ray's
times include starting its actors (each imports torch and loads the model once): on 200 images that
start-up is most of a Ray run; it is paid once per run, not per image.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maskmargin.batch import MaskMarginMasker  # noqa: E402
from maskmargin.cli.batch import run_batch  # noqa: E402
from maskmargin.settings import MaskSettings  # noqa: E402


class PeakMasker(MaskMarginMasker):
    """The masker, also reporting its process's peak RSS (MiB) in a column."""

    def __call__(self, batch):
        out = super().__call__(batch)
        out["peak_mib"] = np.full(len(out["path"]), peak_mib(), np.float64)
        out["pid"] = np.full(len(out["path"]), os.getpid(), np.int64)
        return out


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_images(folder: Path, count: int) -> None:
    photos = [data.astronaut(), np.dstack([data.camera()] * 3)]
    for i in range(count):
        photo = np.roll(photos[i % 2], 7 * i, axis=1)
        Image.fromarray(photo[:, ::-1] if i % 3 else photo).save(folder / f"img{i:04d}.jpg", quality=90)


def ray_peaks(ray, folder: Path, model: str, workers: int, batch_size: int) -> list[float]:
    ds = ray.data.read_binary_files(str(folder), include_paths=True, num_cpus=0)
    peaks = ds.map_batches(
        PeakMasker, fn_constructor_kwargs={"model": model}, concurrency=workers, batch_size=batch_size
    ).select_columns(["peak_mib", "pid"])
    per_actor: dict[int, float] = {}
    for r in peaks.iter_rows():
        per_actor[int(r["pid"])] = max(per_actor.get(int(r["pid"]), 0.0), float(r["peak_mib"]))
    return sorted(per_actor.values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--model", default="mediapipe_face_full")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    settings = MaskSettings()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        make_images(folder, args.images)
        rates = {}

        def timed(name: str, **kw) -> None:
            start = time.perf_counter()
            done, _, errors = run_batch(str(folder), Path(tmp) / name, args.model, settings, progress=False, **kw)
            rates[name] = done / (time.perf_counter() - start)
            assert done == args.images and errors == 0

        timed("local pool, 2 threads", workers=2, batch_size=args.batch_size)
        local_peak = peak_mib()
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray_peaks(ray, folder, args.model, 1, args.batch_size)  # warm: workers started, libraries loaded
        for workers in (1, 2):
            timed(f"ray, {workers} actor(s)", workers=workers, batch_size=args.batch_size, use_ray=True)
        peaks = ray_peaks(ray, folder, args.model, 2, args.batch_size)
        ray.shutdown()
    base = rates["local pool, 2 threads"]
    print(f"{args.images} images, {args.model}, batch size {args.batch_size}, 2 CPUs")
    for name, rate in rates.items():
        print(f"  {name:22} {rate:7.1f} images/s   ratio to local pool {rate / base:5.2f}")
    print(
        f"  peak RSS: local pool process {local_peak:.0f} MiB; "
        f"each Ray actor {', '.join(f'{p:.0f}' for p in peaks)} MiB"
    )


if __name__ == "__main__":
    main()
