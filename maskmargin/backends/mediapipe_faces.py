"""BlazeFace face detection (full and short range) through mp.solutions or the Tasks API."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..detection import Detection
from ..errors import BackendBroken
from ..registry import ModelSpec
from . import mediapipe_support as mps
from .base import Detector

# Tasks API file names: ours first, then the names the 0.10.21 wheel uses.
_TASK_FILES = {
    "full": (
        ("face_detection_full_range.tflite", "face_detection_full_range_sparse.tflite"),
        "modules/face_detection/face_detection_full_range_sparse.tflite",
    ),
    "short": (
        ("face_detection_short_range.tflite", "blaze_face_short_range.tflite"),
        "modules/face_detection/face_detection_short_range.tflite",
    ),
}


class FaceDetector(Detector):
    """Faces as boxes; `faces()` also gives BlazeFace's six keypoints (eyes, nose, mouth, ears)."""

    def __init__(self, spec: ModelSpec, model_folders: tuple[Path, ...] = (), variant: str | None = None):
        super().__init__(spec)
        self.variant = variant or spec.option or "full"
        self._solutions = mps.use_solutions()
        self._model_path: Path | None = None
        if not self._solutions:
            names, bundled = _TASK_FILES[self.variant]
            self._model_path = mps.model_file(names, model_folders, bundled)
        # keyed by confidence (fixed when a graph is made); shared with every detector of the same graphs
        self._graphs = mps.shared_pool(("face", self.variant, self._model_path), self._make_graph)  # type: ignore[arg-type]

    @property
    def api(self) -> str:
        return "solutions" if self._solutions else "tasks"

    def _make_graph(self, confidence: float):
        if self._solutions:
            fd = mps.solutions().face_detection
            return fd.FaceDetection(
                model_selection=1 if self.variant == "full" else 0, min_detection_confidence=confidence
            )
        mps.import_mediapipe()  # a clear error before the submodule import below
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(self._model_path)),
            running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=confidence,
        )
        return vision.FaceDetector.create_from_options(options)

    def faces(self, image: np.ndarray, confidence: float) -> list[tuple[Detection, np.ndarray]]:
        """(detection, keypoints [6, 2] in pixels) for every face at or above `confidence`."""
        h, w = image.shape[:2]
        image = np.ascontiguousarray(image)
        with self._graphs.graph(float(confidence)) as graph:
            if self._solutions:
                raw = graph.process(image).detections or []
                return [_from_solution(d, w, h) for d in raw]
            mp = mps.import_mediapipe()
            try:
                result = graph.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=image))
            except RuntimeError as exc:
                raise BackendBroken(
                    f"the mediapipe Tasks API could not run {getattr(self._model_path, 'name', self.variant)} "
                    f"({str(exc).splitlines()[0]}). "
                    f"mediapipe 0.10.21's Tasks face detector runs the short-range model only: use "
                    f"mediapipe_face_short, or the mp.solutions API (unset MASKMARGIN_MEDIAPIPE_API)."
                ) from exc
            return [_from_task(d, w, h) for d in result.detections]

    def detect_all(self, image: np.ndarray, confidence: float) -> list[Detection]:
        return [d for d, _ in self.faces(image, confidence)]

    def close(self) -> None:
        self._graphs.close()


def _from_solution(det, w: int, h: int) -> tuple[Detection, np.ndarray]:
    loc = det.location_data
    b = loc.relative_bounding_box
    box = (b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h)
    kps = np.array([[k.x * w, k.y * h] for k in loc.relative_keypoints], dtype=np.float32).reshape(-1, 2)
    return Detection(box, float(det.score[0]), "face"), kps


def _from_task(det, w: int, h: int) -> tuple[Detection, np.ndarray]:
    b = det.bounding_box
    box = (float(b.origin_x), float(b.origin_y), float(b.origin_x + b.width), float(b.origin_y + b.height))
    kps = np.array([[k.x * w, k.y * h] for k in det.keypoints], dtype=np.float32).reshape(-1, 2)
    score = float(det.categories[0].score) if det.categories else 0.0
    return Detection(box, score, "face"), kps
