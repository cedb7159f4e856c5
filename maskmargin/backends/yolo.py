"""YOLO (ultralytics) detection and segmentation models, loaded only through the allow-list."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..detection import Detection, select
from ..errors import BackendBroken, ModelNotAvailable
from ..registry import ModelSpec
from ..safe_load import Checkpoint, load_yolo_checkpoint, ultralytics_broken
from ..settings import Progress
from .base import Detector

IMGSZ = 640
MAX_DET = 100
BATCH = 16  # images per forward pass: bounds memory on long videos, keeps progress moving
TASKS = ("detect", "segment", "pose")  # the ones whose results carry boxes

_build_lock = threading.Lock()


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class YoloDetector(Detector):
    """An ultralytics YOLO model; segmentation models give each detection its own mask."""

    batches = True  # one predict call for the whole batch

    def __init__(self, spec: ModelSpec, path: str | Path, device: str | torch.device | None = None):
        super().__init__(spec)
        self.path = Path(path)
        self.device = str(device) if device is not None else default_device()
        self._model = build_yolo(load_yolo_checkpoint(self.path))
        self.task: str = self._model.task
        if self.task not in TASKS:
            raise ModelNotAvailable(
                f"{self.path.name} is a YOLO {self.task} model; MaskMargin needs a detection or segmentation model",
                parameter="model",
            )
        self.names: dict[int, str] = dict(self._model.names)
        self._lock = threading.Lock()  # an ultralytics predictor is not safe to share between threads

    def detect_all(self, image: np.ndarray, confidence: float) -> list[Detection]:
        return self._predict([image], confidence, MAX_DET)[0]

    def detect(self, image: np.ndarray, confidence: float, max_detections: int) -> list[Detection]:
        return self.detect_batch([image], confidence, max_detections)[0]

    def detect_batch(
        self,
        images: Sequence[np.ndarray],
        confidence: float,
        max_detections: int,
        progress: Progress | None = None,
    ) -> list[list[Detection]]:
        out: list[list[Detection]] = []
        for start in range(0, len(images), BATCH):
            chunk = list(images[start : start + BATCH])
            # NMS keeps the highest scores first, so capping it at max_detections selects the same ones.
            found = self._predict(chunk, confidence, max(1, min(int(max_detections), MAX_DET)))
            out += [select(d, confidence, max_detections) for d in found]
            if progress is not None:
                progress(len(out), len(images))
        return out

    def _predict(self, images: list[np.ndarray], confidence: float, max_det: int) -> list[list[Detection]]:
        if not images:
            return []
        # ultralytics reads numpy images as BGR (OpenCV order).
        bgr = [_bgr(im) for im in images]
        with self._lock, torch.inference_mode():
            results = self._model.predict(
                bgr, imgsz=IMGSZ, conf=float(confidence), max_det=max_det, device=self.device, verbose=False
            )
            return [self._detections(r) for r in results]

    def _detections(self, result: Any) -> list[Detection]:
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return []
        xyxy = boxes.xyxy.float().cpu().numpy()
        scores = boxes.conf.float().cpu().numpy()
        classes = boxes.cls.int().cpu().numpy()
        height, width = result.orig_shape[:2]
        masks = result.masks.data if result.masks is not None else None
        out = []
        for k in range(len(xyxy)):
            box = (float(xyxy[k][0]), float(xyxy[k][1]), float(xyxy[k][2]), float(xyxy[k][3]))
            det = Detection(box, float(scores[k]), self.names.get(int(classes[k]), str(int(classes[k]))))
            if masks is not None:
                rect = det.pixel_box(width, height)
                local = box_mask(masks[k], rect, (height, width))
                det = Detection(det.box, det.score, det.label, local, rect)
            out.append(det)
        return out


def box_mask(mask: torch.Tensor, rect: tuple[int, int, int, int], orig_hw: tuple[int, int]) -> np.ndarray:
    """The part of a letterboxed inference-size mask under `rect` (original pixels), at `rect`'s size.

    ultralytics resizes the image by `gain` and centres it on the inference canvas with padding;
    each output pixel's centre is mapped onto the canvas and sampled bilinearly, threshold 0.5.
    """
    x0, y0, x1, y1 = rect
    if x1 <= x0 or y1 <= y0:
        return np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), dtype=bool)
    canvas_h, canvas_w = mask.shape[-2:]
    h, w = orig_hw
    gain = min(canvas_h / h, canvas_w / w)
    # The same rounding as ultralytics' letterbox: resized size, then padding split around it.
    new_w, new_h = max(round(w * gain), 1), max(round(h * gain), 1)
    left, top = round((canvas_w - new_w) / 2 - 0.1), round((canvas_h - new_h) / 2 - 0.1)
    dev = mask.device
    xs = left + (torch.arange(x0, x1, device=dev, dtype=torch.float32) + 0.5) * (new_w / w)
    ys = top + (torch.arange(y0, y1, device=dev, dtype=torch.float32) + 0.5) * (new_h / h)
    # grid_sample's normalised coordinates with align_corners=False: -1 and 1 are the canvas edges.
    gx = (xs * (2.0 / canvas_w) - 1.0)[None, :].expand(len(ys), len(xs))
    gy = (ys * (2.0 / canvas_h) - 1.0)[:, None].expand(len(ys), len(xs))
    grid = torch.stack((gx, gy), dim=-1)[None]
    sampled = torch.nn.functional.grid_sample(
        mask[None, None].float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return (sampled[0, 0] > 0.5).cpu().numpy()


def build_yolo(checkpoint: Checkpoint) -> Any:
    """An `ultralytics.YOLO` built from an already verified checkpoint; ultralytics never opens the file.

    `YOLO(path)` loads through `ultralytics.nn.tasks.torch_safe_load`; for the duration of the call
    that hook hands over our checkpoint instead (for this thread and this file only).
    """
    try:
        from ultralytics import YOLO
        from ultralytics.engine import model as engine_model
        from ultralytics.nn import tasks
    except Exception as e:
        raise ultralytics_broken(e) from e
    original = getattr(tasks, "torch_safe_load", None)
    loader = getattr(tasks, "load_checkpoint", None)
    if (
        original is None
        or loader is None
        or getattr(engine_model, "load_checkpoint", None) is not loader
        or "torch_safe_load" not in loader.__code__.co_names  # type: ignore[union-attr]  # None is ruled out above
    ):
        raise BackendBroken(
            "this ultralytics version loads model files in a way MaskMargin cannot route through its safe "
            "loader (ultralytics.nn.tasks.torch_safe_load is missing or unused); install ultralytics 8.3.47-8.4.x"
        )
    path = checkpoint.path
    owner = threading.get_ident()
    handed: list[bool] = []

    def hand_over(weight: Any, *args: Any, **kwargs: Any) -> tuple[dict, str]:
        if threading.get_ident() != owner or Path(str(weight)) != path or handed:
            return original(weight, *args, **kwargs)  # someone else's load: leave it alone
        handed.append(True)
        return checkpoint.data, str(path)

    with _build_lock:
        tasks.torch_safe_load = hand_over
        try:
            model = YOLO(str(path))
        except BackendBroken:
            raise
        except Exception as e:
            raise BackendBroken(f"ultralytics could not build a model from {path.name}: {type(e).__name__}: {e}") from e
        finally:
            tasks.torch_safe_load = original
    if not handed:
        raise BackendBroken(f"ultralytics did not take the verified checkpoint for {path.name}; not using it")
    _silence_telemetry(model)
    return model


def _silence_telemetry(model: Any) -> None:
    """Drop ultralytics' usage-analytics callback: detection in a user's graph must not phone home."""

    def strip(predictor: Any) -> None:
        for hooks in predictor.callbacks.values():
            hooks[:] = [h for h in hooks if not getattr(h, "__module__", "").startswith("ultralytics.utils.events")]

    model.add_callback("on_predict_start", strip)


def _bgr(image: np.ndarray) -> np.ndarray:
    """The BGR uint8 image ultralytics expects (OpenCV's order), from gray, RGB or RGBA."""
    import cv2  # installed with ultralytics; its channel swap is several times faster than numpy's reversed copy

    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    code = cv2.COLOR_RGBA2BGR if image.shape[-1] == 4 else cv2.COLOR_RGB2BGR
    return cv2.cvtColor(np.ascontiguousarray(image), code)
