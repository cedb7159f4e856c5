"""What every detector backend provides."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from ..detection import Detection, select
from ..registry import ModelSpec
from ..settings import Progress


class Detector(ABC):
    """A loaded model. `detect` takes an RGB uint8 [H, W, 3] array and returns selected detections."""

    # True when `detect_batch` does a whole batch in one call (YOLO, remote, MediaPipe graphs in torch):
    # Image Mask then hands it the batch; otherwise images go to parallel workers, each calling `detect`.
    batches: ClassVar[bool] = False

    def runs_batched(self) -> bool:
        """Whether Image Mask hands this detector the whole batch now (a backend may decide by device)."""
        return self.batches

    def __init__(self, spec: ModelSpec):
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    @abstractmethod
    def detect_all(self, image: np.ndarray, confidence: float) -> list[Detection]:
        """Every detection scoring at least `confidence` (the backend may return lower ones too)."""

    def detect(self, image: np.ndarray, confidence: float, max_detections: int) -> list[Detection]:
        return select(self.detect_all(image, confidence), confidence, max_detections)

    def detect_batch(
        self,
        images: Sequence[np.ndarray],
        confidence: float,
        max_detections: int,
        progress: Progress | None = None,
    ) -> list[list[Detection]]:
        """One list of detections per image; backends with real batching override this."""
        out = []
        for i, image in enumerate(images):
            out.append(self.detect(image, confidence, max_detections))
            if progress is not None:
                progress(i + 1, len(images))
        return out

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release native resources (mediapipe graphs); the detector must not be used afterwards."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec.name}>"
