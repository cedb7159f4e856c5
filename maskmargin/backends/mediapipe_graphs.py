"""MediaPipe's graphs rebuilt around the .tflite models run in torch: face detection (short and full
range), the face mesh with attention (478 points), palm detection + hand landmarks, selfie segmentation.

Every stage takes a whole batch: one forward for all images (detectors, selfie) or all crops (meshes,
hands). Settings are those of the mediapipe 0.10.21 graphs, except the detectors' score threshold, which
is the caller's `confidence` ("keep detections scoring at least this") instead of a fixed 0.5 / 0.6.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..resample import resize
from ..tflite import litert
from ..tflite.interpreter import TFLiteModule, load
from . import mediapipe_ops as ops

_modules: dict[tuple[str, str], TFLiteModule] = {}
_lock = threading.Lock()


def module(path: Path, device: torch.device) -> TFLiteModule:
    """The model at `path` on `device`, loaded once and shared (face_full and the mesh models share it)."""
    key = (str(path.resolve()), str(device))
    with _lock:
        found = _modules.get(key)
        if found is None:
            found = _modules[key] = load(path).to(device)
        return found


def default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def forward_batched(device: torch.device) -> bool:
    """Whether the graphs run a batch as one torch forward on `device` (else LiteRT, image by image)."""
    return device.type != "cpu" or litert.runtime() == "torch"


@dataclass
class Detections:
    """One image's detections in image pixels: boxes [N, 4] (x0, y0, x1, y1), keypoints [N, K, 2], scores [N]."""

    boxes: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class DetectorConfig:
    file: str
    anchors: ops.AnchorOptions
    num_keypoints: int
    graph_threshold: float  # mediapipe's own cut (used by the parity tests)
    unit_range: bool = False  # input in 0..1 (BlazePalm) instead of -1..1 (BlazeFace)


FACE_SHORT = DetectorConfig("face_detection_short_range.tflite", ops.AnchorOptions(128, (8, 16, 16, 16), True), 6, 0.5)
FACE_FULL = DetectorConfig("face_detection_full_range_sparse.tflite", ops.AnchorOptions(192, (4,), False), 6, 0.6)
PALM = DetectorConfig("palm_detection_full.tflite", ops.AnchorOptions(192, (8, 16, 16, 16), True), 7, 0.5, True)


class SsdDetector:
    """BlazeFace / BlazePalm: letterboxed to the model's square input in -1..1, decoded, weighted NMS."""

    def __init__(self, config: DetectorConfig, path: Path, device: torch.device):
        self.config = config
        self.device = device
        self.model = module(path, device)

    @torch.inference_mode()
    def run(self, images: Sequence[torch.Tensor], confidence: float) -> list[Detections]:
        size = self.config.anchors.input_size
        rois = [ops.letterbox_roi(int(im.shape[3]), int(im.shape[2])) for im in images]
        roi_t = torch.tensor(rois, device=self.device)
        crops = ops.sample_rois(images, roi_t, range(len(images)), (size, size), signed=not self.config.unit_range)
        raw_boxes, raw_scores = self.model.fast(crops)[:2]
        scores = ops.scores_of(raw_scores)
        keep = scores >= confidence
        centres = ops.anchors(self.config.anchors, self.device)
        out = []
        k = self.config.num_keypoints
        for i in range(len(images)):
            b = ops.decode(raw_boxes[i][keep[i]], centres[keep[i]], size, k).cpu().numpy()
            s = scores[i][keep[i]].cpu().numpy()
            b, s = ops.weighted_nms(b, s, 0.3)
            b = ops.project_letterbox(b, rois[i])
            out.append(Detections(b[:, :4], b[:, 4:].reshape(-1, k, 2), s))
        return out


# The attention mesh's six landmark outputs and where each lands in the 478-point topology.
_LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409,
         78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415,
         76, 77, 90, 180, 85, 16, 315, 404, 320, 307, 306, 184, 74, 73, 72, 11, 302, 303, 304, 408,
         62, 96, 89, 179, 86, 15, 316, 403, 319, 325, 292, 183, 42, 41, 38, 12, 268, 271, 272, 407)  # fmt: skip
_LEFT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173,
             130, 25, 110, 24, 23, 22, 26, 112, 243, 247, 30, 29, 27, 28, 56, 190,
             226, 31, 228, 229, 230, 231, 232, 233, 244, 113, 225, 224, 223, 222, 221, 189,
             35, 124, 46, 53, 52, 65, 143, 111, 117, 118, 119, 120, 121, 128, 245,
             156, 70, 63, 105, 66, 107, 55, 193)  # fmt: skip
_RIGHT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398,
              359, 255, 339, 254, 253, 252, 256, 341, 463, 467, 260, 259, 257, 258, 286, 414,
              446, 261, 448, 449, 450, 451, 452, 453, 464, 342, 445, 444, 443, 442, 441, 413,
              265, 353, 276, 283, 282, 295, 372, 340, 346, 347, 348, 349, 350, 357, 465,
              383, 300, 293, 334, 296, 336, 285, 417)  # fmt: skip
_REFINE = {
    "output_lips": _LIPS,
    "output_left_eye": _LEFT_EYE,
    "output_right_eye": _RIGHT_EYE,
    "output_left_iris": tuple(range(468, 473)),
    "output_right_iris": tuple(range(473, 478)),
}
MESH_FILE = "face_landmark_with_attention.tflite"
MESH_SIZE = 192
FACE_ROI_SCALE = 1.5
PRESENCE_THRESHOLD = 0.5


def face_roi(box: np.ndarray, keypoints: np.ndarray) -> tuple[float, float, float, float, float]:
    """The mesh's square crop for one face: eyes level (keypoints 0 and 1), 1.5x the box's long side."""
    return ops.detection_roi(box, keypoints[0], keypoints[1], 0.0, FACE_ROI_SCALE)


class FaceMesh:
    """478 refined landmarks (mesh, lips, eyes, irises) per face crop, in image pixels."""

    def __init__(self, path: Path, device: torch.device):
        self.device = device
        self.model = module(path, device)
        names = self.model.output_names
        self._mesh = names.index("output_mesh_identity")
        self._flag = names.index("conv_faceflag")
        self._parts = [(names.index(n), torch.tensor(idx)) for n, idx in _REFINE.items()]

    @torch.inference_mode()
    def run(
        self, images: Sequence[torch.Tensor], rois: torch.Tensor, owners: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(landmarks [N, 478, 2] pixels, presence [N]) for ROIs [N, 5] of images[owners[i]]."""
        if len(owners) == 0:
            return np.zeros((0, 478, 2)), np.zeros(0)
        crops = ops.sample_rois(images, rois, owners, (MESH_SIZE, MESH_SIZE), border="border")
        outs = self.model.fast(crops)
        n = crops.shape[0]
        points = torch.zeros(n, 478, 2, device=crops.device)
        points[:, :468] = outs[self._mesh].reshape(n, 468, 3)[..., :2]
        for index, where in self._parts:
            points[:, where.to(crops.device)] = outs[index].reshape(n, -1, 2)
        pixels = ops.project_points(points / MESH_SIZE, rois.to(points.dtype))
        presence = torch.sigmoid(outs[self._flag].reshape(n))
        return pixels.double().cpu().numpy(), presence.cpu().numpy()


HAND_FILE = "hand_landmark_full.tflite"
HAND_SIZE = 224


def hand_roi(box: np.ndarray, keypoints: np.ndarray) -> tuple[float, float, float, float, float]:
    """Palm -> hand crop (MediaPipe: wrist to middle-finger base points up, 2.6x, shifted 0.5 up)."""
    return ops.detection_roi(box, keypoints[0], keypoints[2], math.pi / 2, 2.6, shift_y=-0.5)


class HandLandmarks:
    """21 hand landmarks per palm crop, a presence score and handedness (the score of "Left")."""

    def __init__(self, path: Path, device: torch.device):
        self.device = device
        self.model = module(path, device)
        shapes = [self.model.shape(i) for i in self.model.output_index]
        singles = [i for i, s in enumerate(shapes) if s[-1] == 1]
        self._marks = next(i for i, s in enumerate(shapes) if s[-1] == 63)
        self._presence, self._handed = singles[0], singles[1]

    @torch.inference_mode()
    def run(self, images: Sequence[torch.Tensor], rois: torch.Tensor, owners: Sequence[int]):
        if len(owners) == 0:
            return np.zeros((0, 21, 2)), np.zeros(0), np.zeros(0)
        crops = ops.sample_rois(images, rois, owners, (HAND_SIZE, HAND_SIZE))
        outs = self.model.fast(crops)
        n = crops.shape[0]
        points = outs[self._marks].reshape(n, 21, 3)[..., :2] / HAND_SIZE
        pixels = ops.project_points(points, rois.to(points.dtype))
        return (
            pixels.double().cpu().numpy(),
            outs[self._presence].reshape(n).cpu().numpy(),
            outs[self._handed].reshape(n).cpu().numpy(),
        )


SELFIE_FILE = "selfie_segmentation.tflite"


class Selfie:
    """Foreground probability [H, W] per image (256x256 model, resized back bilinearly)."""

    def __init__(self, path: Path, device: torch.device):
        self.device = device
        self.model = module(path, device)

    @torch.inference_mode()
    def run(self, images: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        _, size, _, _ = self.model.input_shape
        rois = torch.tensor(
            [(im.shape[3] / 2, im.shape[2] / 2, float(im.shape[3]), float(im.shape[2]), 0.0) for im in images],
            device=self.device,
        )
        crops = ops.sample_rois(images, rois, range(len(images)), (size, size))
        prob = self.model.fast(crops)[0]  # [B, 256, 256, 1]
        # back to each image's size as a smooth map (bilinear; OpenCV on the CPU: no thread pool to wait on)
        return [resize(prob[i, ..., 0], int(im.shape[2]), int(im.shape[3]), smooth=True) for i, im in enumerate(images)]
