"""Explicit, verified download of a registry YOLO file (never automatic).

The hub publishes each LFS file's SHA-256 (`X-Linked-Etag` on a HEAD request); the download is
checked against it (and against a pinned hash, if the registry has one), then against the
allow-list loader, before it appears under its real name.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx

from .errors import MaskMarginError, ModelNotAvailable
from .registry import ModelSpec
from .safe_load import load_yolo_checkpoint

BASE_ENV = "MASKMARGIN_DOWNLOAD_BASE"
CHUNK = 1 << 20

# Called with (bytes done, total bytes or None when the server does not say).
DownloadProgress = Callable[[int, "int | None"], None]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def download_url(spec: ModelSpec) -> str:
    """Where `spec`'s file is fetched from: `MASKMARGIN_DOWNLOAD_BASE` + file name, else the registry URL."""
    if not spec.download_url or not spec.file_name:
        raise ModelNotAvailable(f"{spec.name} has no download address", parameter="model")
    base = os.environ.get(BASE_ENV, "").strip()
    if base:
        return base.rstrip("/") + "/" + spec.file_name
    return spec.download_url


def download_model(
    spec: ModelSpec,
    folder: str | Path,
    *,
    progress: DownloadProgress | None = None,
    client: httpx.Client | None = None,
) -> Path:
    """Download `spec`'s weights into `folder`, verified; returns the file's path.

    Raises ModelNotAvailable when offline, when the hash cannot be verified or does not match
    (nothing is left behind), and UnsafeModelFile when the file fails the allow-list (deleted).
    """
    if not spec.file_name or spec.backend != "yolo":
        raise ModelNotAvailable(f"{spec.name} has no weights file to download", parameter="model")
    folder = Path(folder)
    url = download_url(spec)
    target = folder / spec.file_name
    own_client = client is None
    if client is None:
        client = httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0))
    try:
        expected = _expected_sha256(client, spec, url, folder)
        if target.is_file() and _sha256_file(target) == expected:
            return target
        folder.mkdir(parents=True, exist_ok=True)
        part = _fetch(client, spec, url, folder, expected, progress)
    finally:
        if own_client:
            client.close()
    try:
        load_yolo_checkpoint(part)
    except MaskMarginError as e:
        part.unlink(missing_ok=True)
        raise type(e)(
            f"{spec.file_name} was downloaded from {url} but deleted again: {e.message}", parameter="model"
        ) from e
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, target)
    return target


def _expected_sha256(client: httpx.Client, spec: ModelSpec, url: str, folder: Path) -> str:
    try:
        head = client.head(url, follow_redirects=True)
    except httpx.HTTPError as e:
        raise _unreachable(spec, url, folder, e) from e
    if head.status_code >= 400:
        raise ModelNotAvailable(
            f"{url} answered HTTP {head.status_code}; download {spec.file_name} yourself and put it in {folder}",
            parameter="model",
        )
    published = _published_sha256([*head.history, head])
    pinned = spec.sha256.lower() if spec.sha256 else None
    if published and pinned and published != pinned:
        raise ModelNotAvailable(
            f"{url} publishes SHA-256 {published} for {spec.file_name}, but MaskMargin expects {pinned}; "
            "not downloading it",
            parameter="model",
        )
    expected = published or pinned
    if not expected:
        raise ModelNotAvailable(
            f"{url} does not publish a SHA-256 for {spec.file_name}, so the download cannot be verified; "
            f"download it yourself and put it in {folder}",
            parameter="model",
        )
    return expected


def _published_sha256(responses: list[httpx.Response]) -> str | None:
    """The hub's hash: X-Linked-Etag (on the redirect, for Hugging Face), else an ETag that is a sha256."""
    for header in ("x-linked-etag", "etag"):
        for response in responses:
            value = response.headers.get(header, "").strip()
            value = value.removeprefix("W/").strip('"').lower()
            if _SHA256.match(value):
                return value
    return None


def _fetch(
    client: httpx.Client, spec: ModelSpec, url: str, folder: Path, expected: str, progress: DownloadProgress | None
) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{spec.file_name}.", suffix=".part", dir=folder)
    part = Path(name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, client.stream("GET", url, follow_redirects=True) as response:
            if response.status_code >= 400:
                raise ModelNotAvailable(
                    f"{url} answered HTTP {response.status_code}; download {spec.file_name} yourself and put it "
                    f"in {folder}",
                    parameter="model",
                )
            length = response.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            for chunk in response.iter_bytes(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except httpx.HTTPError as e:
        part.unlink(missing_ok=True)
        raise _unreachable(spec, url, folder, e) from e
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    actual = digest.hexdigest()
    if actual != expected:
        part.unlink(missing_ok=True)
        raise ModelNotAvailable(
            f"download of {spec.file_name} from {url} is corrupt: expected SHA-256 {expected}, got {actual}; "
            "nothing was saved",
            parameter="model",
        )
    return part


def _unreachable(spec: ModelSpec, url: str, folder: Path, error: Exception) -> ModelNotAvailable:
    return ModelNotAvailable(
        f"cannot download {spec.file_name}: {url} is unreachable (offline? {type(error).__name__}: {error}). "
        f"Download it on a connected machine and put it in {folder}",
        parameter="model",
    )


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()
