"""Facial-feature masks from the MediaPipe face mesh with attention (478 points), one region per face.

Raw FaceMesh only finds the faces its own short-range detector finds, which misses most faces in group
photos. So faces come from the full-range detector (at the caller's confidence), then the mesh runs on
MediaPipe's own crop of each face (eyes level, 1.5x the box), all faces of a batch in one forward. Where
the mesh says no face is there (presence < 0.5: tiny, blurred, profile), the region is estimated from
BlazeFace's six keypoints instead, so no face the detector found is ever dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..detection import Detection, shape_detection
from ..landmarks import ellipse, outline, shapes_for
from ..registry import ModelSpec, find_model
from . import mediapipe_files as files
from . import mediapipe_graphs as graphs
from .base import Progress
from .mediapipe_faces import FaceDetector, GraphDetector, batched
from .mediapipe_ops import as_box, images_to_tensors


class MeshDetector(GraphDetector):
    def __init__(self, spec: ModelSpec, model_folders: tuple[Path, ...] = (), device: str | torch.device | None = None):
        super().__init__(spec)
        self.shapes = shapes_for(spec.option or "face")
        face_spec = find_model("mediapipe_face_full")
        assert face_spec is not None
        files.require_file(graphs.FACE_FULL.file, model_folders, spec.name)  # a missing file names this model
        self.faces = FaceDetector(face_spec, model_folders, device=device)
        self.device = self.faces.device
        self.mesh = graphs.FaceMesh(files.require_file(graphs.MESH_FILE, model_folders, spec.name), self.device)

    def _run(self, images: Sequence[np.ndarray], confidence: float, limit: int | None) -> list[list[Detection]]:
        tensors = images_to_tensors(images, self.device)
        per_image = self.faces.run(tensors, confidence)
        owners, rois, picked = [], [], []
        for i, found in enumerate(per_image):
            order = np.argsort(-found.scores, kind="stable")[:limit]  # the mesh only for faces that are kept
            picked.append(order)
            for j in order:
                owners.append(i)
                rois.append(graphs.face_roi(found.boxes[j], found.keypoints[j]))
        roi_t = torch.tensor(rois, dtype=torch.float64, device=self.device).reshape(-1, 5)
        points, presence = self.mesh.run(tensors, roi_t, owners)
        out: list[list[Detection]] = []
        k = 0
        for i, (image, found) in enumerate(zip(images, per_image, strict=True)):
            h, w = image.shape[:2]
            dets = []
            for j in picked[i]:
                face = Detection(as_box(found.boxes[j]), float(found.scores[j]), "face")
                if presence[k] >= graphs.PRESENCE_THRESHOLD:
                    polygons = [outline(shape, points[k]) for shape in self.shapes]
                    label = self.spec.option or "face"
                else:
                    polygons = keypoint_estimate(self.spec.option or "face", face, found.keypoints[j])
                    label = f"{self.spec.option} (estimated)"
                dets.append(shape_detection(polygons, face.score, label, w, h, part_of=face.box))
                k += 1
            out.append(dets)
        return out

    def landmarks(self, image: np.ndarray, confidence: float) -> list[np.ndarray]:
        """The 478 mesh landmarks [478, 2] in pixels of every face found (present or not)."""
        tensors = images_to_tensors([image], self.device)
        found = self.faces.run(tensors, confidence)[0]
        rois = [graphs.face_roi(b, k) for b, k in zip(found.boxes, found.keypoints, strict=True)]
        roi_t = torch.tensor(rois, dtype=torch.float64, device=self.device).reshape(-1, 5)
        return list(self.mesh.run(tensors, roi_t, [0] * len(rois))[0])

    def detect_all(self, image: np.ndarray, confidence: float) -> list[Detection]:
        return self._run([image], confidence, None)[0]

    def detect_batch(
        self, images: Sequence[np.ndarray], confidence: float, max_detections: int, progress: Progress | None = None
    ) -> list[list[Detection]]:
        return batched(
            images, progress, lambda chunk: self._run(chunk, confidence, max_detections), confidence, max_detections
        )


def keypoint_estimate(option: str, face: Detection, kps: np.ndarray) -> list[np.ndarray]:
    """Feature shapes estimated from BlazeFace keypoints (eyes, nose tip, mouth, ears), turned with the eye line."""
    x0, y0, x1, y1 = face.box
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    if len(kps) < 4:
        return [ellipse(centre, (x1 - x0) / 2, (y1 - y0) / 2, 0.0)]
    eye_a, eye_b, nose, mouth = kps[0], kps[1], kps[2], kps[3]
    d = eye_b - eye_a
    e = max(float(np.hypot(*d)), 1.0)
    angle = float(np.arctan2(d[1], d[0]))
    parts = {
        "face": [ellipse(centre, (x1 - x0) / 2, (y1 - y0) / 2, angle)],
        "eyes": [ellipse(eye_a, 0.32 * e, 0.2 * e, angle), ellipse(eye_b, 0.32 * e, 0.2 * e, angle)],
        "eyes_band": [ellipse((eye_a + eye_b) / 2, 0.85 * e, 0.22 * e, angle)],
        "lips": [ellipse(mouth, 0.45 * e, 0.22 * e, angle)],
        "nose": [ellipse(0.6 * nose + 0.4 * (eye_a + eye_b) / 2, 0.25 * e, 0.4 * e, angle)],
    }
    return [poly for part in option.split("+") for poly in parts[part]]
