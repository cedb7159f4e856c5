"""The Image Mask operation: detect on a batch, build masks, previews and the API's JSON.

Called by the ComfyUI node, the command line and the service alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from . import buffers
from .backends.base import Detector
from .detection import ImageDetections
from .images import check_image_batch, encode_mask, rgb_tensor, to_uint8_rgb
from .masks import build_mask, remember_support, support_windows, tracked
from .preview import draw_preview, thumbnail_buffer, thumbnails
from .settings import MaskSettings, Progress
from .tiling import detect_with_tiles
from .workers import each


def detect_arrays(
    detector: Detector,
    images: list[np.ndarray],
    settings: MaskSettings,
    progress: Progress | None = None,
) -> list[ImageDetections]:
    """Detections for RGB uint8 images, each with its image's size."""
    if settings.search_tiles:
        per_image = []
        for i, image in enumerate(images):
            per_image.append(detect_with_tiles(detector, image, settings.confidence, settings.max_detections))
            if progress is not None:
                progress(i + 1, len(images))
    else:
        per_image = detector.detect_batch(images, settings.confidence, settings.max_detections, progress)
    return [
        ImageDetections(img.shape[1], img.shape[0], tuple(dets), detector.name) for img, dets in zip(images, per_image)
    ]


def encoded_mask(found: ImageDetections, settings: MaskSettings, fmt: str = "PNG", quality: int = 95) -> bytes:
    """One image's mask, built from its detections and encoded: the API's tasks and the batch runner alike."""
    return encode_mask(build_mask(found, settings.mask_padding, settings.mask_blur), fmt, quality)


@dataclass(frozen=True)
class MaskResult:
    masks: torch.Tensor  # [B, H, W] float32
    detections: list[ImageDetections]
    preview: torch.Tensor | None  # [B, H, W, 3] float32, when asked for
    thumbnails: torch.Tensor | None = None  # [B, h, w, 3] uint8 on the CPU, when asked for

    def to_api(self) -> list[list[dict[str, int]]]:
        return [f.to_api() for f in self.detections]


def image_mask(
    detector: Detector,
    images: torch.Tensor,
    settings: MaskSettings,
    *,
    device: torch.device | str | None = None,
    progress: Progress | None = None,
    with_preview: bool = False,
    thumbnail_side: int = 0,
) -> MaskResult:
    """Masks for an IMAGE batch [B, H, W, C]; the input tensor is never modified.

    `with_preview` adds full-size previews; `thumbnail_side` > 0 adds uint8 previews no larger than
    that (cheap: drawn from the detector's uint8 images). Both cost time, so callers ask for what they show.
    """
    images = check_image_batch(images)
    device = device if device is not None else images.device
    n, h, w = images.shape[:3]
    masks = tracked(buffers.empty, (n, h, w), device)  # each image's slice is zeroed where its mask is built
    shown = thumbnail_buffer(n, h, w, thumbnail_side) if thumbnail_side > 0 else None
    preview = buffers.empty((n, h, w, 3), device) if with_preview else None

    def finish(i: int, array: np.ndarray, image_found: ImageDetections) -> None:
        one = slice(i, i + 1)
        build_mask(image_found, settings.mask_padding, settings.mask_blur, out=buffers.clear(masks[i]))
        if shown is not None:
            thumbnails([array], masks[one], [image_found], thumbnail_side, out=shown[one])
        if preview is not None:
            draw_preview(rgb_tensor(images[one]), masks[one], [image_found], out=preview[one])

    if detector.runs_batched():
        arrays = to_uint8_rgb(images)
        found = detect_arrays(detector, arrays, settings, progress)
        # each image's mask and thumbnail on the calling thread and the workers (disjoint output slices)
        each(lambda i: finish(i, arrays[i], found[i]), range(n))
    else:
        found = _in_parallel(detector, images, settings, progress, finish)
    # where the masks can be above 0: Mask Margin Crop reads only there
    remember_support(masks, [support_windows(f, settings.mask_padding, settings.mask_blur) for f in found])
    return MaskResult(masks, found, preview, torch.from_numpy(shown) if shown is not None else None)


def _in_parallel(
    detector: Detector,
    images: torch.Tensor,
    settings: MaskSettings,
    progress: Progress | None,
    finish: Callable[[int, np.ndarray, ImageDetections], None],
) -> list[ImageDetections]:
    """Each image converted, detected and finished (mask, thumbnail) by the calling thread or one of a
    few workers (`each`), whichever is free.

    MediaPipe's graphs run on one core each and the backends keep a graph per worker, so on two cores
    a batch takes about two thirds of the time of one graph going image by image, conversion and masks
    included. The calling thread works too rather than handing results on: on a busy CPU a waiting
    thread is woken late and the workers would idle behind it. `progress` raising (an interrupted run)
    stops the workers: the images under way finish, the rest never start.
    """

    def one(i: int) -> ImageDetections:
        array = to_uint8_rgb(images[i : i + 1])[0]
        (image_found,) = detect_arrays(detector, [array], settings)
        finish(i, array, image_found)
        return image_found

    return each(one, range(images.shape[0]), progress)
