"""Reading a remote service's answers: error details, boxes, mask images and Retry-After, never trusted blindly."""

from __future__ import annotations

import base64
import binascii
import email.utils
import io
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import RemoteError
from ..images import sniff_format

MAX_RETRY_AFTER = 120.0  # a Retry-After beyond this is a service telling us to give up
MAX_ANSWER_BYTES = 64 * 1024 * 1024  # a JSON answer: a 4096 x 4096 noise mask as base64 PNG fits
MAX_MASK_BYTES = 48 * 1024 * 1024  # a mask image downloaded from maskImageURL
MAX_MASK_PIXELS = 8192 * 8192  # a mask must be a (possibly capped) copy of its input: never larger than this


@dataclass(frozen=True)
class RemoteMask:
    """One image's answer, in the input's pixels: the shape mask and the detection boxes."""

    width: int
    height: int
    mask: np.ndarray = field(repr=False)  # float32 [height, width], 0..1
    boxes: tuple[tuple[float, float, float, float], ...]
    image_uuid: str | None
    cost: float | None
    scale: tuple[float, float] = (1.0, 1.0)  # input pixels per mask pixel (x, y); > 1 when the service capped


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date), None if absent or unreadable.

    Not capped: the caller gives up when the wait is over MAX_RETRY_AFTER."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


@dataclass(frozen=True)
class ErrorDetail:
    message: str | None
    parameter: str | None
    code: str | None

    @property
    def suffix(self) -> str:
        return f" (service said: {self.message})" if self.message else ""


def base64_field(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RemoteError("malformed answer from the remote service: maskImageBase64Data is not base64") from exc


def detection_boxes(value: Any, max_detections: int) -> list[tuple[float, float, float, float]]:
    """The boxes of an answer's "detections": at most `max_detections` (what was asked), each x_min <= x_max
    and y_min <= y_max; anything else is a malformed answer, never passed on."""
    if not isinstance(value, list):
        raise RemoteError('malformed answer from the remote service: "detections" is not a list')
    if len(value) > max_detections:
        raise RemoteError(
            f"malformed answer from the remote service: {len(value)} detections for maxDetections {max_detections}"
        )
    out = []
    for item in value:
        try:
            box = (float(item["x_min"]), float(item["y_min"]), float(item["x_max"]), float(item["y_max"]))
        except (TypeError, KeyError, ValueError) as exc:
            raise RemoteError(
                "malformed answer from the remote service: a detection lacks x_min, y_min, x_max or y_max numbers"
            ) from exc
        if not all(math.isfinite(v) for v in box):
            raise RemoteError("malformed answer from the remote service: a detection box is not finite")
        if box[2] < box[0] or box[3] < box[1]:
            raise RemoteError(
                f"malformed answer from the remote service: an inverted detection box {_shown_box(box)} "
                "(x_max < x_min or y_max < y_min)"
            )
        out.append(box)
    return out


def _shown_box(box: tuple[float, float, float, float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in box) + ")"


def check_boxes_inside(boxes: list[tuple[float, float, float, float]], width: int, height: int) -> None:
    """Boxes (mask pixels) must lie on the mask image, to within a pixel of rounding."""
    for box in boxes:
        x0, y0, x1, y1 = box
        if x0 < -1 or y0 < -1 or x1 > width + 1 or y1 > height + 1:
            raise RemoteError(
                f"malformed answer from the remote service: detection box {_shown_box(box)} lies outside "
                f"its {width}x{height} mask"
            )


def mask_at_input_size(data: bytes, width: int, height: int) -> tuple[np.ndarray, tuple[float, float]]:
    """The mask as float32 [height, width]; a smaller mask (service cap) is scaled back up."""
    try:
        if sniff_format(data) is None:
            raise ValueError("not a PNG, JPG or WEBP image")
        with Image.open(io.BytesIO(data)) as img:
            mw, mh = img.size  # from the header: a mask larger than its input is refused before decoding
            if mw > width or mh > height or mw * mh > MAX_MASK_PIXELS:
                raise RemoteError(
                    f"malformed answer from the remote service: a {mw}x{mh} mask for a {width}x{height} "
                    "image is larger than the image (not decoded)"
                )
            img = img.convert("L")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise RemoteError(
            f"malformed answer from the remote service: the mask is not a readable image ({exc})"
        ) from exc
    if (mw, mh) == (width, height):
        return np.asarray(img, dtype=np.float32) / 255.0, (1.0, 1.0)
    sx, sy = width / mw, height / mh
    # a capped copy keeps the aspect ratio to within rounding (one mask pixel)
    if abs(mh * sx - height) > sx + 1e-6 or abs(mw * sy - width) > sy + 1e-6:
        raise RemoteError(
            f"malformed answer from the remote service: a {mw}x{mh} mask for a {width}x{height} "
            "image is not a scaled copy of it"
        )
    return np.asarray(img.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0, (sx, sy)
