"""The remote service as a Detector: the pipeline uses it like a local one."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from ..backends.base import Detector
from ..bounds import tight_bounds
from ..detection import Detection, ImageDetections
from ..errors import InvalidParameter
from ..registry import ModelSpec, find_model
from ..settings import MAX_DETECTIONS, MaskSettings, Progress
from .answers import RemoteMask
from .client import RemoteClient, UploadCache
from .config import RemoteConfig


def remote_detections(found: RemoteMask, label: str) -> ImageDetections:
    """Detections whose shapes are the parts of the service's mask inside each box.

    Each box is widened by one pixel (the API's integer boxes may round a shape's edge inward); a
    shape never reaches outside its own box, so cutting the union mask there gives back every
    detection's shape, and building the mask from these gives the local mask exactly (padding >= 0).
    """
    core = found.mask > 0.5
    h, w = core.shape
    detections = []
    for box in found.boxes:
        x0, y0 = max(int(math.floor(box[0])) - 1, 0), max(int(math.floor(box[1])) - 1, 0)
        x1, y1 = min(int(math.ceil(box[2])) + 1, w), min(int(math.ceil(box[3])) + 1, h)
        local = core[y0:y1, x0:x1]
        rect = tight_bounds(local)
        if rect is None:  # no shape inside (e.g. a shrunk-away detection): the box stands for it
            detections.append(Detection(box, 1.0, label))
            continue
        tight = np.ascontiguousarray(local[rect[1] : rect[3], rect[0] : rect[2]])
        placed = (x0 + rect[0], y0 + rect[1], x0 + rect[2], y0 + rect[3])
        detections.append(Detection(box, 1.0, label, mask=tight, mask_box=placed))
    return ImageDetections(found.width, found.height, tuple(detections), label)


def remote_air(model: str) -> str:
    """The AIR id a remote service knows a model by."""
    return str(remote_model(model).air)


def remote_model(model: str) -> ModelSpec:
    """The registry entry of a model a remote service offers (one of the 15 with an AIR id)."""
    spec = find_model(model) if isinstance(model, str) else None
    if spec is None or spec.air is None:
        raise InvalidParameter(
            f"model {model!r} is not offered by remote services: use one of the 15 API models "
            "(a name such as mediapipe_face_full or an AIR id runware:35@1..15)",
            parameter="model",
        )
    return spec


class RemoteDetector(Detector):
    """A Detector whose work happens on a remote service; the pipeline uses it like a local one.

    `config` may be a callable so that a key saved after the detector was made (ComfyUI caches the
    loader's output) is picked up on the next run.
    """

    batches = True  # the batch's requests go out concurrently

    def __init__(
        self,
        spec: ModelSpec,
        config: RemoteConfig | Callable[[], RemoteConfig],
        stop_check: Callable[[], None] | None = None,
    ):
        super().__init__(remote_model(spec.name))
        self._config = config
        self.stop_check = stop_check
        self.uploads = UploadCache()

    def config(self) -> RemoteConfig:
        return self._config() if callable(self._config) else self._config

    def detect_all(self, image: np.ndarray, confidence: float) -> list[Detection]:
        return self.detect_batch([image], confidence, MAX_DETECTIONS)[0]

    def detect(self, image: np.ndarray, confidence: float, max_detections: int) -> list[Detection]:
        return self.detect_batch([image], confidence, max_detections)[0]

    def detect_batch(
        self, images: Sequence[np.ndarray], confidence: float, max_detections: int, progress: Progress | None = None
    ) -> list[list[Detection]]:
        settings = MaskSettings(confidence, max_detections, 0, 0)
        with RemoteClient(self.config(), stop_check=self.stop_check, uploads=self.uploads) as client:
            found = client.mask_images(list(images), remote_air(self.name), settings, progress)
        return [list(remote_detections(f, self.name).detections) for f in found]

    def __repr__(self) -> str:
        return f"<RemoteDetector {self.spec.name} at {self.config().api_url}>"
