"""Task context for local runs (command line): files, URLs, data URIs; masks written to a folder."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np

from .backends.base import Detector
from .detection import ImageDetections
from .errors import InvalidParameter, MaskMarginError
from .images import decode_data_uri_or_base64, decode_image_bytes, load_image_file
from .api_tasks import TaskContext
from .loader import ModelDirs, load_detector
from .pipeline import MaskSettings

EXTENSIONS = {"PNG": "png", "JPG": "jpg", "WEBP": "webp"}
MAX_DOWNLOAD = 64 * 1024 * 1024


def timeout() -> float:
    return float(os.environ.get("MASKMARGIN_TIMEOUT", "60"))


class LocalContext(TaskContext):
    def __init__(self, output_dir: Path, dirs: ModelDirs | None = None, device: str | None = None,
                 search_tiles: bool = False):
        super().__init__()
        self.output_dir = Path(output_dir)
        self.dirs = dirs
        self.device = device
        self.search_tiles = search_tiles  # `run --tiles`: every task also searches tiles

    def detect(self, model: str, pixels: np.ndarray, settings: MaskSettings) -> tuple[ImageDetections, float | None]:
        return super().detect(model, pixels, replace(settings, search_tiles=self.search_tiles))

    def fetch_image(self, reference: str) -> np.ndarray:
        if reference.startswith("data:"):
            return decode_image_bytes(decode_data_uri_or_base64(reference))
        if reference.startswith(("http://", "https://")):
            return decode_image_bytes(_download(reference))
        path = Path(reference).expanduser()
        if len(reference) < 4096 and path.is_file():
            return load_image_file(path)
        if len(reference) >= 64:  # long text that is no file: base64 image data
            return decode_image_bytes(decode_data_uri_or_base64(reference))
        raise InvalidParameter(
            f"inputImage {reference!r} is not an existing file, URL, data URI, base64 image or uploaded UUID",
            parameter="inputImage",
        )

    def detector(self, model: str) -> Detector:
        return load_detector(model, self.dirs, self.device)

    def publish(self, data: bytes, image_uuid: str, fmt: str) -> str:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / f"{image_uuid}.{EXTENSIONS[fmt]}"
        path.write_bytes(data)
        return path.resolve().as_uri()

    def put(self, url: str, data: bytes, fmt: str) -> None:
        try:
            response = httpx.put(url, content=data, headers={"Content-Type": f"image/{EXTENSIONS[fmt]}"},
                                 timeout=timeout())
        except httpx.HTTPError as exc:
            raise MaskMarginError(f"uploadEndpoint could not be reached ({type(exc).__name__})",
                                  parameter="uploadEndpoint", code="uploadFailed") from exc
        if response.status_code >= 400:
            raise MaskMarginError(f"uploadEndpoint answered HTTP {response.status_code}",
                                  parameter="uploadEndpoint", code="uploadFailed")


def _download(url: str) -> bytes:
    try:
        with httpx.stream("GET", url, timeout=timeout(), follow_redirects=True) as response:
            if response.status_code >= 400:
                raise InvalidParameter(f"inputImage URL answered HTTP {response.status_code}", parameter="inputImage")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_DOWNLOAD:
                    raise InvalidParameter("inputImage URL is larger than 64 MiB", parameter="inputImage")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise InvalidParameter(f"inputImage URL could not be fetched ({type(exc).__name__}: {exc})",
                               parameter="inputImage") from exc
