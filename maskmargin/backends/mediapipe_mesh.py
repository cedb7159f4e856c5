"""Facial-feature masks from the MediaPipe face mesh, one region per face.

Raw FaceMesh only finds the faces its own short-range detector finds, which misses most faces in
group photos. So faces come from the full-range detector first; the mesh then runs on a square crop
around each face. When the mesh still fails on a face (tiny, blurred, profile), the region is
estimated from BlazeFace's six keypoints instead, so no face the detector found is ever dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..detection import Detection, shape_detection
from ..landmarks import ellipse, outline, shapes_for
from ..registry import ModelSpec, find_model
from . import mediapipe_support as mps
from .base import Detector
from .mediapipe_faces import FaceDetector

CROP_SIZE = 256  # pixels fed to the mesh; upsamples small faces
CROP_SCALES = (1.7, 2.5)  # crop side as a multiple of the face box's larger side, tried in order


def _face_full() -> ModelSpec:
    spec = find_model("mediapipe_face_full")
    assert spec is not None  # a registry entry
    return spec


class MeshDetector(Detector):
    def __init__(self, spec: ModelSpec, model_folders: tuple[Path, ...] = ()):
        super().__init__(spec)
        self.shapes = shapes_for(spec.option or "face")
        self.faces = FaceDetector(_face_full(), model_folders)
        solutions = mps.use_solutions()
        task_file = None if solutions else mps.model_file(("face_landmarker.task",), model_folders)
        self._meshes = mps.shared_pool(("mesh", task_file), lambda _: _make_mesh(task_file))
        self._mesh = _mesh_solutions if solutions else _mesh_tasks
        with self._meshes.graph():  # a broken install fails here, when the model is loaded
            pass

    def detect_all(self, image: np.ndarray, confidence: float) -> list[Detection]:
        h, w = image.shape[:2]
        out = []
        for face, keypoints in self.faces.faces(image, confidence):
            points = self._landmarks(image, face, keypoints)
            if points is not None:
                polygons = [outline(shape, points) for shape in self.shapes]
                label = self.spec.option or "face"
            else:
                polygons = keypoint_estimate(self.spec.option or "face", face, keypoints)
                label = f"{self.spec.option} (estimated)"
            out.append(shape_detection(polygons, face.score, label, w, h, part_of=face.box))
        return out

    def _landmarks(self, image: np.ndarray, face: Detection, keypoints: np.ndarray) -> np.ndarray | None:
        """All mesh landmarks in image pixels for this face, or None when the mesh finds none.

        The crop is turned so that the eyes (BlazeFace keypoints 0 and 1) lie level, as MediaPipe's
        own pipeline does: the mesh model is trained on upright faces and drifts on tilted ones.
        """
        x0, y0, x1, y1 = face.box
        centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        angle = 0.0
        if len(keypoints) >= 2:
            d = keypoints[1] - keypoints[0]
            angle = float(np.arctan2(d[1], d[0]))
        for scale in CROP_SCALES:
            side = max(x1 - x0, y1 - y0) * scale
            crop, to_image = _turned_crop(image, centre, side, angle)
            with self._meshes.graph() as graph:
                norm = self._mesh(graph, crop)
            if norm is None:
                continue
            points = (norm * CROP_SIZE) @ to_image[:, :2].T + to_image[:, 2]
            nose = points[1]
            if x0 <= nose[0] <= x1 and y0 <= nose[1] <= y1:  # the mesh found this face, not a neighbour
                return points
        return None

    def close(self) -> None:
        self.faces.close()
        self._meshes.close()


def _turned_crop(image: np.ndarray, centre: np.ndarray, side: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """A CROP_SIZE square of the image around `centre`, `side` pixels wide, turned by `angle` (radians).

    Returns the crop (black past the image borders) and the 2x3 affine map from crop pixels to image
    pixels.
    """
    s = side / CROP_SIZE
    cos, sin = np.cos(angle) * s, np.sin(angle) * s
    half = CROP_SIZE / 2
    to_image = np.array([[cos, -sin, centre[0] - (cos - sin) * half], [sin, cos, centre[1] - (sin + cos) * half]])
    # One bilinear resampling by OpenCV (7x faster than PIL's transform, which also copied the whole image
    # per face). It maps crop pixels to image pixels with pixel centres at whole numbers, `to_image` with
    # centres at +0.5: the same map, shifted.
    import cv2

    centred = to_image.copy()
    centred[:, 2] += to_image[:, :2] @ np.array([0.5, 0.5]) - 0.5
    out = cv2.warpAffine(  # type: ignore[call-overload]  # OpenCV's stubs miss the int border value
        np.ascontiguousarray(image),
        centred,
        (CROP_SIZE, CROP_SIZE),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return out, to_image


def _make_mesh(task_file: Path | None) -> Any:
    """A face-mesh graph: mp.solutions' FaceMesh, or with `task_file` the Tasks API's FaceLandmarker."""
    if task_file is None:
        return mps.solutions().face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.2
        )
    mps.import_mediapipe()
    from mediapipe.tasks.python import BaseOptions, vision

    return vision.FaceLandmarker.create_from_options(
        vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(task_file)),
            running_mode=vision.RunningMode.IMAGE,
            num_faces=1,
            min_face_detection_confidence=0.2,
        )
    )


def _mesh_solutions(graph: Any, crop: np.ndarray) -> np.ndarray | None:
    """Normalised landmarks [N, 2] of the face in a crop, or None."""
    found = graph.process(crop).multi_face_landmarks
    if not found:
        return None
    return np.array([[p.x, p.y] for p in found[0].landmark], dtype=np.float64)


def _mesh_tasks(landmarker: Any, crop: np.ndarray) -> np.ndarray | None:
    mp = mps.import_mediapipe()
    result = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(crop)))
    if not result.face_landmarks:
        return None
    return np.array([[p.x, p.y] for p in result.face_landmarks[0]], dtype=np.float64)


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
