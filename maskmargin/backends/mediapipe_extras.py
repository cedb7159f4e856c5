"""Offline extras from MediaPipe's models: hands (palm detection + hand landmarks) and people (selfie
segmentation), run in torch like the face models.

Not part of the Image Masking API (no AIR id); offered for users without YOLO files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..bounds import tight_bounds
from ..detection import Detection
from ..registry import ModelSpec
from . import mediapipe_files as files
from . import mediapipe_graphs as graphs
from .base import Detector, Progress
from .mediapipe_faces import GraphDetector, batched
from .mediapipe_ops import as_box, images_to_tensors

HAND_MARGIN = 0.15  # landmarks sit on joints; widen the box to cover the skin around them
MAX_HANDS = 20
HAND_PRESENCE = 0.5  # MediaPipe's hand-presence cut (min_tracking_confidence's default)


def build(spec: ModelSpec, model_folders: tuple[Path, ...] = (), device: str | torch.device | None = None) -> Detector:
    if spec.backend == "mediapipe_hands":
        return HandDetector(spec, model_folders, device)
    return SelfiePersonDetector(spec, model_folders, device)


def _device(device: str | torch.device | None) -> torch.device:
    return torch.device(device) if device is not None else graphs.default_device()


class HandDetector(GraphDetector):
    """Hands: palms found by BlazePalm (score = the palm's), boxes from the 21 landmarks of each hand crop."""

    def __init__(self, spec: ModelSpec, model_folders: tuple[Path, ...] = (), device: str | torch.device | None = None):
        super().__init__(spec)
        self.device = _device(device)
        palm = files.require_file(graphs.PALM.file, model_folders, spec.name)
        self.palms = graphs.SsdDetector(graphs.PALM, palm, self.device)
        self.hands = graphs.HandLandmarks(files.require_file(graphs.HAND_FILE, model_folders, spec.name), self.device)

    def _run(self, images: Sequence[np.ndarray], confidence: float, limit: int) -> list[list[Detection]]:
        tensors = images_to_tensors(images, self.device)
        per_image = self.palms.run(tensors, float(confidence))
        owners, rois, scores = [], [], []
        for i, found in enumerate(per_image):
            for j in np.argsort(-found.scores, kind="stable")[:limit]:
                owners.append(i)
                rois.append(graphs.hand_roi(found.boxes[j], found.keypoints[j]))
                scores.append(float(found.scores[j]))
        roi_t = torch.tensor(rois, dtype=torch.float64, device=self.device).reshape(-1, 5)
        points, presence, left = self.hands.run(tensors, roi_t, owners)
        out: list[list[Detection]] = [[] for _ in images]
        for k, i in enumerate(owners):
            if presence[k] < HAND_PRESENCE:
                continue
            h, w = images[i].shape[:2]
            (x0, y0), (x1, y1) = points[k].min(axis=0), points[k].max(axis=0)
            m = HAND_MARGIN * max(x1 - x0, y1 - y0)
            box = (max(x0 - m, 0.0), max(y0 - m, 0.0), min(x1 + m, float(w)), min(y1 + m, float(h)))
            side = "left" if left[k] > 0.5 else "right"  # mp.solutions' labels (it assumes a mirrored image)
            out[i].append(Detection(as_box(box), scores[k], f"hand ({side})"))
        return out

    def detect_all(self, image: np.ndarray, confidence: float) -> list[Detection]:
        return self._run([image], confidence, MAX_HANDS)[0]

    def detect_batch(
        self, images: Sequence[np.ndarray], confidence: float, max_detections: int, progress: Progress | None = None
    ) -> list[list[Detection]]:
        return batched(
            images, progress, lambda chunk: self._run(chunk, confidence, max_detections), confidence, max_detections
        )


class SelfiePersonDetector(GraphDetector):
    """All people as one segmentation region; score = mean foreground probability inside it."""

    def __init__(self, spec: ModelSpec, model_folders: tuple[Path, ...] = (), device: str | torch.device | None = None):
        super().__init__(spec)
        self.device = _device(device)
        self.graph = graphs.Selfie(files.require_file(graphs.SELFIE_FILE, model_folders, spec.name), self.device)

    def probabilities(self, images: Sequence[np.ndarray]) -> list[torch.Tensor]:
        return self.graph.run(images_to_tensors(images, self.device))

    def _run(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        return [_person(p.float().cpu().numpy()) for p in self.probabilities(images)]

    def detect_all(self, image: np.ndarray, confidence: float) -> list[Detection]:
        return self._run([image])[0]

    def detect_batch(
        self, images: Sequence[np.ndarray], confidence: float, max_detections: int, progress: Progress | None = None
    ) -> list[list[Detection]]:
        return batched(images, progress, self._run, confidence, max_detections)


def _person(prob: np.ndarray) -> list[Detection]:
    on = prob > 0.5
    rect = tight_bounds(on)
    if rect is None:
        return []
    x0, y0, x1, y1 = rect
    local = on[y0:y1, x0:x1]
    score = float(prob[y0:y1, x0:x1][local].mean())
    return [
        Detection((float(x0), float(y0), float(x1), float(y1)), score, "person", mask=local, mask_box=(x0, y0, x1, y1))
    ]
