"""Preview images: the mask tinted over the photo and every detection's box drawn.

Two sizes, one drawing routine: the full-size float preview (a node output, made only when
something uses it) and uint8 thumbnails for a node's own display, drawn from the uint8 images the
detector already has and shown as JPEG, so a large batch pays for neither full-size copies nor PNG.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .bounds import tight_bounds
from .buffers import copy_of
from .detection import ImageDetections
from .workers import each

TINT = torch.tensor([1.0, 0.25, 0.1])  # orange-red: visible on skin and on dark backgrounds
BOX = torch.tensor([0.1, 1.0, 0.3])


def draw_preview(
    rgb: torch.Tensor, masks: torch.Tensor, found: list[ImageDetections], out: torch.Tensor | None = None
) -> torch.Tensor:
    """A new [B, H, W, 3] tensor (or `out`, filled): `rgb` with masks tinted at 45% and boxes outlined.
    Inputs are not modified."""
    if out is None:
        out = copy_of(rgb.to(torch.float32))
    elif out.device.type == "cpu" and rgb.device.type == "cpu" and rgb.dtype == out.dtype == torch.float32:
        np.copyto(out.numpy(), rgb.numpy())  # numpy's copy: one thread, no thread pool to wait on
    else:
        out.copy_(rgb)
    _draw(out, masks, found)
    return out


def thumbnails(
    arrays: list[np.ndarray],
    masks: torch.Tensor,
    found: list[ImageDetections],
    max_side: int = 512,
    out: np.ndarray | None = None,
) -> torch.Tensor:
    """[B, h, w, 3] uint8 previews no larger than `max_side`, from RGB uint8 images of the batch.

    Drawn in uint8 from start to end: a display only needs 8 bits, and JPEG takes them as they are.
    `out` (from `thumbnail_buffer`) receives them when given.
    """
    import cv2  # comes with mediapipe and ultralytics; its area resize is several times faster than PIL's

    h, w = arrays[0].shape[:2]
    small = out if out is not None else thumbnail_buffer(len(arrays), h, w, max_side)
    th, tw = small.shape[1:3]
    for b, a in enumerate(arrays):
        if (th, tw) != (h, w):
            cv2.resize(a, (tw, th), dst=small[b], interpolation=cv2.INTER_AREA)
        else:
            small[b] = a
    shown = torch.from_numpy(small)
    # the mask sampled at each thumbnail pixel's centre: masks are smooth, and this skips the empty frame
    rows = ((torch.arange(th) + 0.5) * (h / th)).long().clamp_(max=h - 1)
    cols = ((torch.arange(tw) + 0.5) * (w / tw)).long().clamp_(max=w - 1)
    _draw(shown, masks, found, (tw / w, th / h), (rows.to(masks.device), cols.to(masks.device)))
    return shown


def thumbnail_buffer(n: int, height: int, width: int, max_side: int) -> np.ndarray:
    """An uninitialised uint8 [n, h, w, 3] for `thumbnails` of n images of height x width."""
    scale = min(1.0, max_side / max(height, width))
    return np.empty((n, max(1, round(height * scale)), max(1, round(width * scale)), 3), dtype=np.uint8)


def encode_jpeg(images: torch.Tensor, quality: int = 90) -> list[bytes]:
    """JPEG files of uint8 [B, h, w, 3] RGB images: a twentieth of the time of a PNG for a photo.

    Encoded on the calling thread and a few workers (`each`): OpenCV lets go of the GIL while it encodes."""
    import cv2

    def one(im: np.ndarray) -> bytes:
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(im, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("OpenCV could not encode a preview as JPEG")
        return data.tobytes()

    return each(one, list(images.numpy()))


def _draw(
    out: torch.Tensor,
    masks: torch.Tensor,
    found: list[ImageDetections],
    scale: tuple[float, float] = (1.0, 1.0),
    sample: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> None:
    """Tint and outline in place on `out` [B, h, w, 3] (float 0..1 or uint8 0..255); boxes are in the
    source's pixels, times `scale`.

    `masks` are at the source's size; `sample` gives, per output row and column, the source row and
    column to read them at (None: same size).
    """
    peak = 255.0 if out.dtype == torch.uint8 else 1.0
    colour = (BOX * peak).round().to(out.device, out.dtype) if peak > 1 else BOX.to(out.device, out.dtype)
    h, w = out.shape[1:3]
    t = max(1, round(min(h, w) / 256))  # line width grows with the image
    on_cpu = out.device.type == "cpu" and masks.device.type == "cpu" and out.dtype in (torch.uint8, torch.float32)
    for b, image_found in enumerate(found):
        if on_cpu:  # numpy: one thread per call, no thread pool to wait on
            picks = None if sample is None else (sample[0].numpy(), sample[1].numpy())
            _tint_np(out[b].numpy(), masks[b].numpy(), picks, peak)
            _outline(out[b].numpy(), image_found, scale, colour.numpy(), t)
        else:
            _tint_torch(out[b], masks[b], sample, peak)
            _outline(out[b], image_found, scale, colour, t)


def _tint_torch(
    out: torch.Tensor, mask: torch.Tensor, sample: tuple[torch.Tensor, torch.Tensor] | None, peak: float
) -> None:
    """The mask tinted over one [h, w, 3] image at 45%, in torch on any device."""
    if sample is not None:
        mask = mask.index_select(0, sample[0]).index_select(1, sample[1])
    mask = mask.to(out.device, torch.float32)
    rect = tight_bounds(mask)
    if rect is not None:  # tint only inside the mask's bounding rectangle
        ys, xs = slice(rect[1], rect[3]), slice(rect[0], rect[2])
        window = out[ys, xs]
        tint = TINT.to(out.device) * peak
        mixed = window.to(torch.float32).lerp_(tint.expand_as(window), 0.45 * mask[ys, xs].unsqueeze(-1))
        mixed.clamp_(0, peak)
        window.copy_(mixed.round_() if peak > 1 else mixed)


def _tint_np(out: np.ndarray, mask: np.ndarray, sample: tuple[np.ndarray, np.ndarray] | None, peak: float) -> None:
    """`_tint_torch` in OpenCV, for CPU tensors: the same float32 arithmetic, 12x faster on a uint8
    thumbnail than numpy's (whose broadcasting over three channels takes a slow path)."""
    import cv2  # comes with mediapipe and ultralytics

    if sample is not None:  # one contiguous copy: its bounds and the blend read it at full speed
        mask = np.ascontiguousarray(mask[_as_slice(sample[0])][:, _as_slice(sample[1])])
    rect = tight_bounds(mask)
    if rect is not None:
        ys, xs = slice(rect[1], rect[3]), slice(rect[0], rect[2])
        window = out[ys, xs]
        weight = cv2.merge([np.multiply(mask[ys, xs], np.float32(0.45), dtype=np.float32)] * 3)
        mixed = window.astype(np.float32)
        # tint - image, per channel; a tuple is OpenCV's Scalar, which its type stubs leave out
        step = cv2.subtract((*(float(v) for v in TINT * peak), 0.0), mixed)  # type: ignore[call-overload]
        cv2.multiply(step, weight, dst=step)
        cv2.add(mixed, step, dst=mixed)
        if out.dtype == np.uint8:
            window[...] = cv2.convertScaleAbs(mixed)  # rounds and saturates: mixed is never negative
        else:
            np.clip(mixed, 0, peak, out=window)


def _as_slice(picks: np.ndarray) -> slice | np.ndarray:
    """Evenly spaced indices as a slice (a strided view instead of a gather), others as they are."""
    if len(picks) > 1:
        step = int(picks[1] - picks[0])
        if step > 0 and np.array_equal(picks, np.arange(picks[0], picks[0] + step * len(picks), step)):
            return slice(int(picks[0]), int(picks[-1]) + 1, step)
    return picks


def _outline(out: Any, image_found: ImageDetections, scale: tuple[float, float], colour: Any, t: int) -> None:
    """Every detection's box drawn `t` pixels wide on one [h, w, 3] image: a numpy array with a numpy
    colour, or a tensor with a tensor colour (plain slicing, the same on both)."""
    h, w = out.shape[:2]
    for det in image_found.detections:
        x0, y0, x1, y1 = det.pixel_box(image_found.width, image_found.height)
        x0, x1 = int(x0 * scale[0]), min(w, int(np.ceil(x1 * scale[0])))
        y0, y1 = int(y0 * scale[1]), min(h, int(np.ceil(y1 * scale[1])))
        if x1 <= x0 or y1 <= y0:
            continue
        out[y0 : min(y0 + t, y1), x0:x1] = colour
        out[max(y1 - t, y0) : y1, x0:x1] = colour
        out[y0:y1, x0 : min(x0 + t, x1)] = colour
        out[y0:y1, max(x1 - t, x0) : x1] = colour


def draw_numbers(images: torch.Tensor, texts: list[str], positions: list[tuple[int, int]] | None = None) -> None:
    """Write texts[i] on uint8 images[i] [N, h, w, 3] in place (top-left corner, or at positions[i] = (x, y)),
    white on a dark box: the crop numbers a user maps Region Prompts' lines to."""
    import cv2

    h = images.shape[1]
    scale = max(0.4, h / 400)
    thick = max(1, round(scale * 2))
    array = images.numpy()
    for i, text in enumerate(texts):
        if not text:
            continue
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        x, y = positions[i] if positions is not None else (4, 4)
        y = max(0, min(y, h - th - base - 4))
        canvas = np.ascontiguousarray(array[i]) if not array[i].flags.c_contiguous else array[i]
        cv2.rectangle(canvas, (x, y), (x + tw + 6, y + th + base + 4), (20, 20, 20), -1)
        cv2.putText(
            canvas, text, (x + 3, y + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA
        )
        if canvas is not array[i]:
            array[i] = canvas
