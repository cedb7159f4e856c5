"""Task context for local runs (command line): files, URLs, data URIs; masks written to a folder."""

from __future__ import annotations

import os
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..api_tasks import TaskContext
from ..backends.base import Detector
from ..detection import ImageDetections
from ..errors import InvalidParameter
from ..images import FORMATS, decode_data_uri_or_base64, decode_image_bytes, load_image_file
from ..loader import ModelDirs, load_detector
from ..settings import MaskSettings
from ..url_safety import URLPolicy, fetch, put

MAX_DOWNLOAD = 64 * 1024 * 1024
MAX_PATH = 4096  # longer text is never a path (and would raise ENAMETOOLONG)


def local_policy() -> URLPolicy:
    """A local run reads and writes URLs of the user's own choosing: private addresses included."""
    return URLPolicy(
        allow_private=True, max_bytes=MAX_DOWNLOAD, timeout=float(os.environ.get("MASKMARGIN_TIMEOUT", "60"))
    )


class LocalContext(TaskContext):
    """`base_dir`: the folder relative file paths in tasks are read from (the tasks file's folder)."""

    def __init__(
        self,
        output_dir: Path,
        dirs: ModelDirs | None = None,
        device: str | None = None,
        search_tiles: bool = False,
        base_dir: Path | None = None,
    ):
        super().__init__()
        self.output_dir = Path(output_dir)
        self.dirs = dirs
        self.device = device
        self.search_tiles = search_tiles  # `run --tiles`: every task also searches tiles
        self.base_dir = base_dir

    def detect(self, model: str, pixels: np.ndarray, settings: MaskSettings) -> tuple[ImageDetections, float | None]:
        return super().detect(model, pixels, replace(settings, search_tiles=self.search_tiles))

    def store_image(self, pixels: np.ndarray, data: bytes | None = None) -> str:
        """A new imageUUID, with nothing kept: a run's tasks are all written before it starts, so none
        of them can name a UUID the run hands out, and keeping every input would grow with the run."""
        return str(uuid.uuid4())

    def close(self) -> None:
        """Nothing to release for a local run; the remote context closes its client."""

    def fetch_image(self, reference: str) -> np.ndarray:
        if reference.startswith("data:"):
            return decode_image_bytes(decode_data_uri_or_base64(reference))
        if reference.startswith(("http://", "https://")):
            return decode_image_bytes(fetch(reference, local_policy(), parameter="inputImage"))
        path = self._path(reference)
        if path is not None:
            return load_image_file(path)
        if len(reference) >= 64:  # long text that is no file: base64 image data
            return decode_image_bytes(decode_data_uri_or_base64(reference))
        shown = (self.base_dir or Path.cwd()) / Path(reference).expanduser()
        raise InvalidParameter(
            f"inputImage: no such file: {shown.resolve()} (nor is it a URL, data URI, base64 image or uploaded UUID)",
            parameter="inputImage",
        )

    def _path(self, reference: str) -> Path | None:
        """The existing file a reference names, relative ones taken from `base_dir`; None if it names none."""
        if len(reference) >= MAX_PATH:
            return None
        path = Path(reference).expanduser()
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        try:
            return path if path.is_file() else None
        except OSError:  # e.g. a path component over the file system's name limit: base64 text, not a file
            return None

    def detector(self, model: str) -> Detector:
        return load_detector(model, self.dirs, self.device)

    def publish(self, data: bytes, image_uuid: str, fmt: str, ttl: int | None = None) -> str:  # files stay
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / f"{image_uuid}.{FORMATS[fmt].extension}"
        path.write_bytes(data)
        return path.resolve().as_uri()

    def put(self, url: str, data: bytes, fmt: str) -> None:
        put(url, data, FORMATS[fmt].mime, local_policy(), parameter="uploadEndpoint")
