"""Image conversions between ComfyUI-style tensors, numpy arrays, files and encoded bytes."""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InvalidParameter


@dataclass(frozen=True)
class ImageFormat:
    """One outputFormat of the API: how PIL writes it, its media type and its file extension."""

    pil: str
    mime: str
    extension: str


# the API's outputFormat values; every front reads these (file names, Content-Type, data URIs)
FORMATS: dict[str, ImageFormat] = {
    "JPG": ImageFormat("JPEG", "image/jpeg", "jpg"),
    "PNG": ImageFormat("PNG", "image/png", "png"),
    "WEBP": ImageFormat("WEBP", "image/webp", "webp"),
}


def check_image_batch(images: torch.Tensor) -> torch.Tensor:
    """Validate an IMAGE batch [B, H, W, C] (C = 1, 2, 3 or 4); a single [H, W, C] image becomes a batch."""
    if not isinstance(images, torch.Tensor):
        raise InvalidParameter(f"image must be a tensor, got {type(images).__name__}", parameter="image")
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or images.shape[-1] not in (1, 2, 3, 4):
        raise InvalidParameter(
            f"image must be [batch, height, width, channels] with 1-4 channels, got shape {tuple(images.shape)}",
            parameter="image",
        )
    if images.shape[0] == 0:
        raise InvalidParameter("the image batch is empty: connect at least one image", parameter="image")
    if images.shape[1] < 2 or images.shape[2] < 2:
        raise InvalidParameter(f"image is too small to search: {tuple(images.shape[1:3])}", parameter="image")
    return images


def rgb_tensor(images: torch.Tensor) -> torch.Tensor:
    """[B, H, W, 3] view/copy of a batch: grayscale is repeated, alpha is dropped. Never writes to the input."""
    c = images.shape[-1]
    if c in (1, 2):
        return images[..., :1].expand(*images.shape[:-1], 3)
    return images[..., :3]


def to_uint8_rgb(images: torch.Tensor) -> list[np.ndarray]:
    """One contiguous RGB uint8 [H, W, 3] numpy array per image of an IMAGE batch (values clamped to 0..1)."""
    import cv2  # OpenCV comes with mediapipe and ultralytics; imported late to keep the pack's import fast

    images = check_image_batch(images)
    out = []
    for im in rgb_tensor(images):
        pixels = np.ascontiguousarray(im.to("cpu", torch.float32).numpy())
        # numpy's min: one thread, as fast as torch's two on this memory-bound pass (Image Mask's
        # workers already keep the cores busy)
        if pixels.min() < 0.0:  # |255 x| below would turn negative values bright
            pixels = np.maximum(pixels, 0.0)
        # one pass that scales, rounds and saturates: 4x faster than tensor arithmetic
        out.append(cv2.convertScaleAbs(pixels, alpha=255.0))
    return out


# PIL's modes for one channel of more than 8 bits; PIL's own convert("RGB") clips them at 255
_WIDE_GRAY = {"I;16": 65535, "I;16B": 65535, "I;16L": 65535, "I;16N": 65535, "I": 65535}


def pil_to_rgb(img: Image.Image) -> np.ndarray:
    """RGB uint8 array, upright per EXIF (as ComfyUI's Load Image does); alpha is dropped, gray repeated.

    16-bit grayscale is scaled to 8 bits (65535 -> 255), not clipped as PIL's own conversion does.
    """
    img = ImageOps.exif_transpose(img)
    if img.mode in _WIDE_GRAY:
        wide = np.asarray(img).astype(np.float32)
        gray = np.clip(np.rint(wide * (255.0 / _WIDE_GRAY[img.mode])), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    return np.asarray(img if img.mode == "RGB" else img.convert("RGB"))


def sniff_format(data: bytes) -> str | None:
    """ "PNG", "JPG" or "WEBP" from the leading bytes, None for anything else.

    Checked before PIL sees untrusted bytes: once ultralytics is imported, its patched Image.open
    reacts to an unidentified file by trying to install a HEIF plugin, so garbage must not get there.
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def decode_image_bytes(data: bytes, parameter: str = "inputImage", max_pixels: int | None = None) -> np.ndarray:
    """RGB uint8 pixels of PNG/JPG/WEBP bytes; `max_pixels` refuses larger images before decoding them."""
    if sniff_format(data) is None:
        raise InvalidParameter(f"{parameter} is not a PNG, JPG or WEBP image", parameter=parameter)
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in ("PNG", "JPEG", "WEBP", "MPO"):
                raise InvalidParameter(
                    f"unsupported image format {img.format}; use PNG, JPG or WEBP", parameter=parameter
                )
            if max_pixels is not None and img.width * img.height > max_pixels:
                raise InvalidParameter(
                    f"{parameter} is {img.width}x{img.height}, more than this service's limit of {max_pixels} pixels",
                    parameter=parameter,
                )
            img.load()
            return pil_to_rgb(img)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidParameter(
            f"{parameter} is not a readable PNG, JPG or WEBP image ({exc})", parameter=parameter
        ) from exc


def decode_data_uri_or_base64(text: str, parameter: str = "inputImage") -> bytes:
    payload = text
    if text.startswith("data:"):
        head, sep, payload = text.partition(",")
        if not sep or ";base64" not in head:
            raise InvalidParameter(f"{parameter} data URI must be base64 encoded", parameter=parameter)
    try:
        return base64.b64decode(payload.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidParameter(f"{parameter} is not valid base64 ({exc})", parameter=parameter) from exc


def load_image_file(path: str | Path) -> np.ndarray:
    return decode_image_bytes(Path(path).read_bytes())


def encode_mask(mask: np.ndarray | torch.Tensor, fmt: str = "PNG", quality: int = 95) -> bytes:
    """Encode a [H, W] float mask (0..1) as an 8-bit grayscale image in PNG, JPG or WEBP (`quality`: JPG, WEBP)."""
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().float().cpu().numpy()
    u8 = np.clip(np.rint(mask * 255.0), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    options = {"quality": quality} if fmt in ("JPG", "WEBP") else {"optimize": False}
    Image.fromarray(u8, mode="L").save(buf, format=FORMATS[fmt].pil, **options)
    return buf.getvalue()


def to_data_uri(data: bytes, fmt: str) -> str:
    return f"data:{FORMATS[fmt].mime};base64,{base64.b64encode(data).decode('ascii')}"
