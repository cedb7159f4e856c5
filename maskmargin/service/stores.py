"""The service's bounded stores: masks and async results in memory, uploaded images on disk.

Every store forgets by size (oldest first) and by age, so no client can grow the service without bound.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MaskMarginError
from ..images import FORMATS, decode_image_bytes, sniff_format

UUID_NAME = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
EXTENSIONS = {f.extension: name for name, f in FORMATS.items()}  # jpg -> JPG


def default_store_dir() -> Path:
    """The uploaded images' folder when --store-dir is not given: the user's cache folder."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "maskmargin" / "service-images"


def _size(value: Any) -> int:
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (bytes, bytearray, str)):
        return len(value)
    return 1024  # small bookkeeping entries


class BoundedStore:
    """A thread-safe mapping that forgets entries past their age and its oldest beyond a total size."""

    def __init__(self, max_bytes: int, max_age: float | None = None, size: Callable[[Any], int] = _size):
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._size = size
        self._items: OrderedDict[str, tuple[Any, float | None, int]] = OrderedDict()  # value, expiry, size
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return default
            if item[1] is not None and item[1] < time.monotonic():
                self._drop(key)
                return default
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: str, value: Any, ttl: float | None = None) -> None:
        ttl = ttl if ttl is not None else self.max_age
        expiry = None if ttl is None else time.monotonic() + ttl
        size = self._size(value)
        with self._lock:
            if key in self._items:
                self._drop(key)
            self._items[key] = (value, expiry, size)
            self._bytes += size
            while self._bytes > self.max_bytes and len(self._items) > 1:
                self._drop(next(iter(self._items)))

    def __setitem__(self, key: str, value: Any) -> None:
        self.put(key, value)

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def _drop(self, key: str) -> None:
        _, _, size = self._items.pop(key)
        self._bytes -= size

    def __len__(self) -> int:
        return len(self._items)


class ImageStore:
    """Uploaded and input images by UUID: the encoded file on disk (it outlives a restart), pixels cached.

    The folder holds `<uuid>.<ext>` files only; it is bounded by `max_bytes` (oldest files go first) and
    `max_age` seconds (older files are deleted when seen, and swept on start and as files are added).
    """

    def __init__(self, folder: Path, max_bytes: int, max_age: float, cache_bytes: int):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.cache = BoundedStore(cache_bytes, max_age)  # pixels expire with their files
        self._lock = threading.Lock()
        self._files: OrderedDict[str, tuple[Path, int]] = OrderedDict()  # uuid -> (path, size), oldest first
        self._bytes = 0
        self._scan()

    def _scan(self) -> None:
        found = []
        for path in self.folder.iterdir():
            stem, _, ext = path.name.partition(".")
            if not (UUID_NAME.match(stem) and ext in EXTENSIONS and path.is_file()):
                continue
            stat = path.stat()
            found.append((stat.st_mtime, stem, path, stat.st_size))
        for _, stem, path, size in sorted(found):
            self._files[stem] = (path, size)
            self._bytes += size
        with self._lock:
            self._evict()

    def _evict(self) -> None:
        """Drop files past max_age, then the oldest while over max_bytes (the caller holds the lock)."""
        cutoff = time.time() - self.max_age
        while self._files:
            key, (path, size) = next(iter(self._files.items()))
            try:
                old = path.stat().st_mtime < cutoff
            except OSError:
                old = True  # gone already
            if not old and self._bytes <= self.max_bytes:
                break
            self._remove(key)

    def _remove(self, key: str) -> None:
        path, size = self._files.pop(key)
        self._bytes -= size
        self.cache.put(key, None)
        try:
            path.unlink()
        except OSError:
            pass

    def put(self, key: str, pixels: np.ndarray, data: bytes | None) -> None:
        self.cache.put(key, pixels)
        if data is None or not UUID_NAME.match(key):
            return
        fmt = sniff_format(data)
        if fmt is None:
            return
        path = self.folder / f"{key}.{FORMATS[fmt].extension}"
        partial = path.with_suffix(".partial")
        partial.write_bytes(data)
        os.replace(partial, path)
        with self._lock:
            self._files[key] = (path, len(data))
            self._bytes += len(data)
            self._evict()

    def file(self, key: str) -> Path | None:
        """The stored file of an image, None when unknown or expired."""
        if not UUID_NAME.match(key):
            return None
        with self._lock:
            entry = self._files.get(key)
            if entry is None:
                return None
            try:
                if entry[0].stat().st_mtime < time.time() - self.max_age:
                    self._remove(key)
                    return None
            except OSError:
                self._remove(key)
                return None
            return entry[0]

    def get(self, key: str, default: Any = None) -> Any:
        pixels = self.cache.get(key)
        if pixels is not None:
            return pixels
        path = self.file(key)
        if path is None:
            return default
        try:
            pixels = decode_image_bytes(path.read_bytes())
        except (OSError, MaskMarginError):
            return default
        self.cache.put(key, pixels)
        return pixels

    def __setitem__(self, key: str, pixels: np.ndarray) -> None:
        self.put(key, pixels, None)

    def __len__(self) -> int:
        return len(self._files)
