"""BlazeFace face detection (full and short range): MediaPipe's .tflite models run in torch, batched."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..detection import Detection
from ..registry import ModelSpec
from . import mediapipe_files as files
from . import mediapipe_graphs as graphs
from .base import Detector, Progress
from .mediapipe_ops import as_box, images_to_tensors

CHUNK = 16  # images per forward: bounds memory on big batches and lets progress (and interruption) come in


class GraphDetector(Detector):
    """A backend of MediaPipe graphs: one forward per stage for a whole batch where that pays (torch: on a
    GPU, or on the CPU without LiteRT). LiteRT runs one image at a time on one core, so there the images
    go to Image Mask's parallel workers instead, a graph call on each core."""

    batches = True
    device: torch.device

    def runs_batched(self) -> bool:
        return graphs.forward_batched(self.device)


class FaceDetector(GraphDetector):
    """Faces as boxes; `faces_batch()` also gives BlazeFace's six keypoints (eyes, nose, mouth, ears)."""

    def __init__(
        self,
        spec: ModelSpec,
        model_folders: tuple[Path, ...] = (),
        variant: str | None = None,
        device: str | torch.device | None = None,
    ):
        super().__init__(spec)
        self.variant = variant or spec.option or "full"
        self.config = graphs.FACE_FULL if self.variant == "full" else graphs.FACE_SHORT
        self.device = torch.device(device) if device is not None else graphs.default_device()
        self.model_path = files.require_file(self.config.file, model_folders, spec.name)
        self.graph = graphs.SsdDetector(self.config, self.model_path, self.device)

    def run(self, tensors: Sequence[torch.Tensor], confidence: float) -> list[graphs.Detections]:
        return self.graph.run(tensors, float(confidence))

    def faces_batch(self, images: Sequence[np.ndarray], confidence: float) -> list[graphs.Detections]:
        """Per image: every face scoring at least `confidence`, boxes and keypoints in pixels."""
        out: list[graphs.Detections] = []
        for start in range(0, len(images), CHUNK):
            out += self.run(images_to_tensors(images[start : start + CHUNK], self.device), confidence)
        return out

    def faces(self, image: np.ndarray, confidence: float) -> list[tuple[Detection, np.ndarray]]:
        """(detection, keypoints [6, 2] in pixels) for every face at or above `confidence`."""
        found = self.faces_batch([image], confidence)[0]
        return [(d, k) for d, k in zip(as_detections(found), found.keypoints, strict=True)]

    def detect_all(self, image: np.ndarray, confidence: float) -> list[Detection]:
        return as_detections(self.faces_batch([image], confidence)[0])

    def detect_batch(
        self, images: Sequence[np.ndarray], confidence: float, max_detections: int, progress: Progress | None = None
    ) -> list[list[Detection]]:
        return batched(
            images,
            progress,
            lambda chunk: [as_detections(d) for d in self.run(images_to_tensors(chunk, self.device), confidence)],
            confidence,
            max_detections,
        )


def as_detections(found: graphs.Detections, label: str = "face") -> list[Detection]:
    return [Detection(as_box(box), float(score), label) for box, score in zip(found.boxes, found.scores, strict=True)]


def batched(
    images: Sequence[np.ndarray], progress: Progress | None, run, confidence: float, max_detections: int
) -> list[list[Detection]]:
    """`run` on chunks of the batch; selected detections per image; progress after each chunk's images."""
    from ..detection import select

    out: list[list[Detection]] = []
    for start in range(0, len(images), CHUNK):
        for found in run(images[start : start + CHUNK]):
            out.append(select(found, confidence, max_detections))
            if progress is not None:
                progress(len(out), len(images))
    return out
