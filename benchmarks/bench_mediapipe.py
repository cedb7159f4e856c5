"""MediaPipe's models run in torch by MaskMargin vs mediapipe 0.10.21 itself, per image on the CPU.

    python benchmarks/bench_mediapipe.py --mediapipe-python SIDE_VENV/bin/python [--rounds 5] [--threads N]

SIDE_VENV: Python 3.12 with `mediapipe==0.10.21 "numpy<2" scikit-image` (mediapipe is not a dependency
of the project). Both sides run on the same images in alternating rounds (the machine's load hits both),
medians per image. Measured:
- face_full: full-range face detection (MaskMargin `mediapipe_face_full` detect_batch vs
  mp.solutions FaceDetection(model_selection=1).process), 1024 px photo, batch 1 and batch 8;
- mesh: face detection + 478-point attention mesh for one face (MaskMargin `eyes_mesh_mediapipe`
  vs mp.solutions FaceMesh(static_image_mode=True, refine_landmarks=True)), batch 1 and batch 8.
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
print(json.dumps(out))
"""


def photo() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(np.repeat(np.repeat(data.astronaut(), 2, axis=0), 2, axis=1))


def ours(repeats: int) -> dict[str, float]:
    from maskmargin.loader import load_detector

    image = photo()
    face, mesh = load_detector("mediapipe_face_full"), load_detector("eyes_mesh_mediapipe")
    assert len(face.detect(image, 0.25, 6)) == 1 and len(mesh.detect(image, 0.25, 6)) == 1
    out = {}
    for b in (1, 8):
        for name, det in (("face_full", face), ("mesh", mesh)):
            images = [image] * b
            det.detect_batch(images, 0.25, 6)
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                det.detect_batch(images, 0.25, 6)
                times.append((time.perf_counter() - t) / b)
            out[f"{name} b{b}"] = sorted(times)[len(times) // 2] * 1000
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mediapipe-python", required=True, help="a Python with mediapipe==0.10.21 installed")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of both sides")
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per measurement and round")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own choice)")
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    mine: dict[str, list[float]] = {}
    theirs: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for k, v in ours(args.repeats).items():
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
    print(f"{'measure':14} {'MaskMargin':>11} {'mediapipe':>10} {'ratio':>7}")
    for k in mine:
        a, b = statistics.median(mine[k]), statistics.median(theirs[k])
        print(f"{k:14} {a:11.2f} {b:10.2f} {a / b:6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
