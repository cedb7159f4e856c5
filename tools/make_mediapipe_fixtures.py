"""Reference outputs of mediapipe 0.10.21 (mp.solutions) for tests/fixtures/mediapipe_reference.json.

Run ONCE, in a side venv that has mediapipe: Python 3.12, `pip install mediapipe==0.10.21 "numpy<2"
scikit-image`, then from the repository root:

    <side venv>/bin/python tools/make_mediapipe_fixtures.py

Coordinates are in input pixels (mp.solutions' relative values times the image size); scores as given.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mediapipe as mp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from mediapipe_images import parity_images  # noqa: E402


def faces(image: np.ndarray, selection: int) -> list[dict]:
    h, w = image.shape[:2]
    with mp.solutions.face_detection.FaceDetection(model_selection=selection, min_detection_confidence=0.5) as fd:
        found = fd.process(image).detections or []
    out = []
    for d in found:
        b = d.location_data.relative_bounding_box
        out.append(
            {
                "score": float(d.score[0]),
                "box": [b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h],
                "keypoints": [[k.x * w, k.y * h] for k in d.location_data.relative_keypoints],
            }
        )
    return out


def mesh(image: np.ndarray) -> list[list[list[float]]]:
    h, w = image.shape[:2]
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True) as fm:
        found = fm.process(image).multi_face_landmarks or []
    return [[[p.x * w, p.y * h] for p in f.landmark] for f in found]


def selfie(image: np.ndarray) -> dict:
    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
        prob = seg.process(image).segmentation_mask
    h, w = prob.shape
    ys = np.linspace(0, h - 1, 16).round().astype(int)
    xs = np.linspace(0, w - 1, 16).round().astype(int)
    return {"mean": float(prob.mean()), "ys": ys.tolist(), "xs": xs.tolist(), "grid": prob[np.ix_(ys, xs)].tolist()}


def hands(image: np.ndarray) -> list[dict]:
    h, w = image.shape[:2]
    with mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=4, min_detection_confidence=0.5) as hs:
        result = hs.process(image)
    out = []
    for marks, handed in zip(result.multi_hand_landmarks or [], result.multi_handedness or [], strict=True):
        c = handed.classification[0]
        out.append(
            {"label": c.label, "score": float(c.score), "landmarks": [[p.x * w, p.y * h] for p in marks.landmark]}
        )
    return out


def main() -> None:
    reference = {"mediapipe": mp.__version__, "images": {}}
    for name, image in parity_images().items():
        reference["images"][name] = {
            "shape": list(image.shape),
            "face_short": faces(image, 0),
            "face_full": faces(image, 1),
            "mesh": mesh(image),
            "selfie": selfie(image),
            "hands": hands(image),
        }
        print(name, {k: len(v) for k, v in reference["images"][name].items() if isinstance(v, list)})
    out = ROOT / "tests" / "fixtures" / "mediapipe_reference.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(reference, separators=(",", ":"), default=lambda v: round(v, 4)) + "\n")
    print("wrote", out, out.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
