"""Offline extras from models bundled in mediapipe 0.10.21: hands and people (selfie segmentation).

Not part of the Image Masking API (no AIR id); offered for users without YOLO files.
"""

from __future__ import annotations

import numpy as np

from ..bounds import tight_bounds
from ..detection import Detection
from ..errors import BackendBroken
from ..registry import ModelSpec
from . import mediapipe_support as mps
from .base import Detector

HAND_MARGIN = 0.15  # landmarks sit on joints; widen the box to cover the skin around them
MAX_HANDS = 20
# The palm detector's own threshold (its graph default). A hand's reported score is its handedness
# score, which `confidence` is compared with: a higher palm threshold would drop hands reported above it.
PALM_CONFIDENCE = 0.5


def build(spec: ModelSpec) -> Detector:
    if not mps.use_solutions():
        raise BackendBroken(
            f"{spec.name} uses models bundled with mediapipe 0.10.21 (mp.solutions), which this mediapipe "
            f"lacks. Use hand_yolov8n / person_yolov8n-seg instead, or install mediapipe==0.10.21 (Python <= 3.12)."
        )
    return HandDetector(spec) if spec.backend == "mediapipe_hands" else SelfiePersonDetector(spec)


class HandDetector(Detector):
    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self._graphs = mps.GraphPool(
            lambda confidence: mps.solutions().hands.Hands(
                static_image_mode=True, max_num_hands=MAX_HANDS, min_detection_confidence=confidence
            )
        )

    def detect_all(self, image: np.ndarray, confidence: float) -> list[Detection]:
        h, w = image.shape[:2]
        with self._graphs.graph(min(float(confidence), PALM_CONFIDENCE)) as graph:
            result = graph.process(np.ascontiguousarray(image))
        out = []
        for marks, handed in zip(result.multi_hand_landmarks or [], result.multi_handedness or []):
            pts = np.array([[p.x * w, p.y * h] for p in marks.landmark])
            (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
            m = HAND_MARGIN * max(x1 - x0, y1 - y0)
            box = (max(x0 - m, 0.0), max(y0 - m, 0.0), min(x1 + m, float(w)), min(y1 + m, float(h)))
            cls = handed.classification[0]
            if cls.score < confidence:  # the score reported is the one `confidence` applies to
                continue
            out.append(Detection(box, float(cls.score), f"hand ({cls.label.lower()})"))
        return out

    def close(self) -> None:
        self._graphs.close()


class SelfiePersonDetector(Detector):
    """All people as one segmentation region; score = mean foreground probability inside it."""

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self._graphs = mps.GraphPool(
            lambda _: mps.solutions().selfie_segmentation.SelfieSegmentation(model_selection=0)
        )

    def detect_all(self, image: np.ndarray, confidence: float) -> list[Detection]:
        with self._graphs.graph() as graph:
            prob = graph.process(np.ascontiguousarray(image)).segmentation_mask
        if prob is None:
            return []
        on = prob > 0.5
        rect = tight_bounds(on)
        if rect is None:
            return []
        x0, y0, x1, y1 = rect
        local = on[y0:y1, x0:x1]
        score = float(prob[y0:y1, x0:x1][local].mean())
        return [
            Detection(
                (float(x0), float(y0), float(x1), float(y1)), score, "person", mask=local, mask_box=(x0, y0, x1, y1)
            )
        ]

    def close(self) -> None:
        self._graphs.close()
