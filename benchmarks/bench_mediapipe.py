"""MediaPipe's models run in torch by MaskMargin vs mediapipe 0.10.21 itself, per image on the CPU.

    python benchmarks/bench_mediapipe.py --mediapipe-python SIDE_VENV/bin/python [--rounds 5] [--threads N]

SIDE_VENV: Python 3.12 with `mediapipe==0.10.21 "numpy<2" scikit-image` (mediapipe is not a dependency
of the project). Both sides run on the same images in alternating rounds (the machine's load hits both),
medians per image. Measured:
- face_full: full-range face detection (MaskMargin `mediapipe_face_full` detect_batch vs
  mp.solutions FaceDetection(model_selection=1).process), 1024 px photo, batch 1 and batch 8;
- mesh: face detection + 478-point attention mesh for one face (MaskMargin `eyes_mesh_mediapipe`
  vs mp.solutions FaceMesh(static_image_mode=True, refine_landmarks=True)), batch 1 and batch 8;
  `eyes_mesh_mediapipe` finds faces with the full-range detector (for group photos), FaceMesh with the
  short-range one, so "mesh short" runs our mesh behind the short-range detector: the same pipeline.
Each of ours on both CPU runtimes (LiteRT and torch; MASKMARGIN_TFLITE_RUNTIME) unless --runtimes torch.
Prints each time and the ratio ours / mediapipe (goal: within 1.5x).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MP_SCRIPT = r"""
import json, os, sys, time
os.environ["GLOG_minloglevel"] = "2"
import numpy as np, mediapipe as mp
from skimage import data
photo = np.ascontiguousarray(np.repeat(np.repeat(data.astronaut(), 2, axis=0), 2, axis=1))
fd = mp.solutions.face_detection.FaceDetection(model_selection=1)
fm = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)
def per_image(fn, batch, repeats):
    for _ in range(2):
        fn(photo)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(batch):
            fn(photo)
        times.append((time.perf_counter() - t) / batch)
    return sorted(times)[len(times) // 2] * 1000
out = {}
for b in (1, 8):
    out[f"face_full b{b}"] = per_image(fd.process, b, int(sys.argv[1]))
    out[f"mesh b{b}"] = per_image(fm.process, b, int(sys.argv[1]))
    out[f"mesh short b{b}"] = out[f"mesh b{b}"]
print(json.dumps(out))
"""


def photo() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(np.repeat(np.repeat(data.astronaut(), 2, axis=0), 2, axis=1))


def ours(repeats: int, runtime: str) -> dict[str, float]:
    import os

    from maskmargin.backends.mediapipe_mesh import MeshDetector
    from maskmargin.loader import ModelDirs, load_detector
    from maskmargin.registry import find_model
    from maskmargin.tflite import litert

    os.environ[litert.RUNTIME_VARIABLE] = runtime
    image = photo()
    face, mesh = load_detector("mediapipe_face_full"), load_detector("eyes_mesh_mediapipe")
    # FaceMesh's own pipeline: the short-range detector in front of the mesh (eyes_mesh uses full range)
    spec = find_model("eyes_mesh_mediapipe")
    assert spec is not None
    same = MeshDetector(spec, ModelDirs().mediapipe)
    short = load_detector("mediapipe_face_short")
    assert isinstance(short, type(same.faces))
    same.faces = short
    for det in (face, mesh, same):
        assert len(det.detect(image, 0.25, 6)) == 1
    out = {}
    for b in (1, 8):
        for name, det in (("face_full", face), ("mesh", mesh), ("mesh short", same)):
            images = [image] * b
            det.detect_batch(images, 0.25, 6)
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                det.detect_batch(images, 0.25, 6)
                times.append((time.perf_counter() - t) / b)
            out[f"{name} b{b} {runtime}"] = sorted(times)[len(times) // 2] * 1000
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mediapipe-python", required=True, help="a Python with mediapipe==0.10.21 installed")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of both sides")
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per measurement and round")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own choice)")
    ap.add_argument(
        "--runtimes", choices=["litert", "torch"], default="litert", help="litert: both runtimes; torch: torch only"
    )
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    mine: dict[str, list[float]] = {}
    theirs: dict[str, list[float]] = {}
    runtimes = ["litert", "torch"] if "litert" in args.runtimes else [args.runtimes]
    for _ in range(args.rounds):
        for runtime in runtimes:
            for k, v in ours(args.repeats, runtime).items():
                mine.setdefault(k, []).append(v)
        run = subprocess.run(
            [args.mediapipe_python, "-c", MP_SCRIPT, str(args.repeats)], capture_output=True, text=True, check=True
        )
        for k, v in json.loads(run.stdout.strip().splitlines()[-1]).items():
            theirs.setdefault(k, []).append(v)
    print(
        f"CPU, torch {torch.__version__} with {torch.get_num_threads()} threads; 1024x1024 photo, one face; "
        f"ms per image, medians of {args.rounds} rounds"
    )
    print(f"{'measure':24} {'MaskMargin':>11} {'mediapipe':>10} {'ratio':>7}")
    for k in mine:
        a, b = statistics.median(mine[k]), statistics.median(theirs[k.rsplit(" ", 1)[0]])
        print(f"{k:24} {a:11.2f} {b:10.2f} {a / b:6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
