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
    """Seconds from a Retry-After header (delta seconds or an HTTP date), None if absent or unreadable."""
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
    return min(max(seconds, 0.0), MAX_RETRY_AFTER) if math.isfinite(seconds) else None


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


def detection_boxes(value: Any) -> list[tuple[float, float, float, float]]:
    if not isinstance(value, list):
        raise RemoteError('malformed answer from the remote service: "detections" is not a list')
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
        out.append(box)
    return out


def mask_at_input_size(data: bytes, width: int, height: int) -> tuple[np.ndarray, tuple[float, float]]:
    """The mask as float32 [height, width]; a smaller mask (service cap) is scaled back up."""
    try:
        if sniff_format(data) is None:
            raise ValueError("not a PNG, JPG or WEBP image")
        with Image.open(io.BytesIO(data)) as img:
            img = img.convert("L")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise RemoteError("malformed answer from the remote service: the mask is not a readable image") from exc
    mw, mh = img.size
    if (mw, mh) == (width, height):
        return np.asarray(img, dtype=np.float32) / 255.0, (1.0, 1.0)
    sx, sy = width / mw, height / mh
    # a capped copy keeps the aspect ratio to within rounding (one mask pixel)
    if mw > width or mh > height or abs(mh * sx - height) > sx + 1e-6 or abs(mw * sy - width) > sy + 1e-6:
        raise RemoteError(
            f"malformed answer from the remote service: a {mw}x{mh} mask for a {width}x{height} "
            "image is not a scaled copy of it"
        )
    return np.asarray(img.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0, (sx, sy)
