"""MaskMarginMasker: the batch command's per-batch function, a callable class for Ray Data's `map_batches`.

Ray is never imported here: the class takes and returns plain `dict[str, np.ndarray]` batches, so it runs
the same in `python -m maskmargin batch` (local threads) and in anyone's own Ray pipeline::

    import ray
    from maskmargin.batch import MaskMarginMasker

    ds = ray.data.read_binary_files("s3://bucket/photos/", include_paths=True)
    masks = ds.map_batches(
        MaskMarginMasker,
        fn_constructor_kwargs={"model": "mediapipe_face_full", "mask_padding": 8},
        concurrency=4,
        batch_size=16,
    )

Input columns: `path` (str), and `bytes` (encoded PNG/JPG/WEBP, as `read_binary_files` gives) or `image`
(RGB/RGBA/gray uint8 arrays, as `read_images` gives); with neither, each path (file or URL) is read here.
Output columns, one row per input row: `path`, `width`, `height`, `detections` (JSON text: the API's
`[{x_min, y_min, x_max, y_max}]`), `mask` (PNG bytes; empty on error) and `error` (empty when it worked).
An unreadable image is one row with its error, never a failed batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .detection import ImageDetections
from .errors import MaskMarginError
from .images import decode_image_bytes
from .loader import ModelDirs, load_detector
from .pipeline import detect_arrays, encoded_mask
from .settings import MaskSettings
from .url_safety import URLPolicy, fetch

MAX_INPUT_BYTES = 64 * 1024 * 1024
OUTPUT_COLUMNS = ("path", "width", "height", "detections", "mask", "error")


@dataclass(frozen=True)
class BatchSettings:
    """What a batch run's outputs depend on: recorded on every detections.jsonl line, compared on resume."""

    model: str
    mask: MaskSettings

    def to_json(self) -> dict[str, Any]:
        s = self.mask
        return {
            "confidence": s.confidence,
            "maxDetections": s.max_detections,
            "maskPadding": s.mask_padding,
            "maskBlur": s.mask_blur,
            "tiles": s.search_tiles,
        }


def read_source(path: str) -> bytes:
    """The bytes of a batch input: a file, or an http(s) URL (any address: the user's own list)."""
    if path.startswith(("http://", "https://")):
        return fetch(path, URLPolicy(allow_private=True, max_bytes=MAX_INPUT_BYTES), parameter="inputImage")
    return Path(path).read_bytes()


class MaskMarginMasker:
    """Detections and a PNG mask for every image of a batch; the model is loaded once, in `__init__`.

    Arguments are the Image Masking API's knobs (`confidence`, `max_detections`, `mask_padding`,
    `mask_blur`), `tiles` (also search tiles, as `run --tiles`), `models_dir` (a folder with
    ultralytics/bbox, ultralytics/segm, mediapipe) and `device` (a torch device; default cuda when there).
    The masks and detections are those `python -m maskmargin run` gives for the same image and settings.
    """

    def __init__(
        self,
        model: str,
        confidence: float = MaskSettings.confidence,
        max_detections: int = MaskSettings.max_detections,
        mask_padding: int = MaskSettings.mask_padding,
        mask_blur: int = MaskSettings.mask_blur,
        tiles: bool = False,
        models_dir: str | None = None,
        device: str | None = None,
    ):
        self.settings = MaskSettings(confidence, max_detections, mask_padding, mask_blur, tiles)
        self.detector = load_detector(model, ModelDirs.under(models_dir), device)
        self.model = model

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        paths = [str(p) for p in batch["path"]]
        pixels: list[np.ndarray | None] = []
        errors: list[str] = []
        for i, path in enumerate(paths):
            try:
                pixels.append(self._pixels(batch, i, path))
                errors.append("")
            except (MaskMarginError, OSError) as exc:
                pixels.append(None)
                errors.append(_message(exc))
        readable = [p for p in pixels if p is not None]
        found = iter(detect_arrays(self.detector, readable, self.settings) if readable else [])
        rows: dict[str, list[Any]] = {name: [] for name in OUTPUT_COLUMNS}
        for path, image, error in zip(paths, pixels, errors):
            image_found: ImageDetections | None = next(found) if image is not None else None
            rows["path"].append(path)
            rows["error"].append(error)
            if image_found is None:
                rows["width"].append(0)
                rows["height"].append(0)
                rows["detections"].append("[]")
                rows["mask"].append(b"")
                continue
            rows["width"].append(image_found.width)
            rows["height"].append(image_found.height)
            rows["detections"].append(json.dumps(image_found.to_api()))
            rows["mask"].append(encoded_mask(image_found, self.settings, "PNG"))
        return {
            "path": np.array(rows["path"], dtype=object),
            "width": np.array(rows["width"], dtype=np.int64),
            "height": np.array(rows["height"], dtype=np.int64),
            "detections": np.array(rows["detections"], dtype=object),
            "mask": _objects(rows["mask"]),
            "error": np.array(rows["error"], dtype=object),
        }

    @staticmethod
    def _pixels(batch: dict[str, np.ndarray], i: int, path: str) -> np.ndarray:
        if "bytes" in batch:
            return decode_image_bytes(bytes(batch["bytes"][i]))
        if "image" in batch:
            return _rgb(np.asarray(batch["image"][i]))
        return decode_image_bytes(read_source(path))


def _objects(items: list[bytes]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)  # np.array would make a fixed-width bytes array
    out[:] = items
    return out


def _rgb(image: np.ndarray) -> np.ndarray:
    """An RGB uint8 view of a decoded image (gray and RGBA as `decode_image_bytes` makes them)."""
    if image.dtype != np.uint8:
        raise MaskMarginError(f"image pixels must be uint8, got {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return image[:, :, :3]  # alpha dropped, as decode_image_bytes drops it
    raise MaskMarginError(f"image must be [H, W], [H, W, 3] or [H, W, 4], got shape {tuple(image.shape)}")


def _message(exc: Exception) -> str:
    if isinstance(exc, MaskMarginError):
        return exc.message
    return f"cannot read the image: {getattr(exc, 'strerror', None) or exc}"
