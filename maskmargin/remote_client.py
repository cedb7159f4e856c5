"""Client of a remote Image Masking API: Runware's, or a self-hosted `python -m maskmargin serve`.

The service finds the objects; the mask around them is still built here, by `masks.build_mask`, so
remote and local runs share one implementation of padding and blur and give the same MASK for the
same detections. To get there the client asks for the bare shapes (maskPadding 0, maskBlur 0, PNG),
scales them back to the input's size when the service capped the image (Runware stores at most
2048 px on the long side), and cuts one shape per detection box out of that mask.

Requests run on a private asyncio loop in a background thread: the calling thread (ComfyUI runs
nodes inside its own event loop) only waits, checks for interruption, and cancels requests in
flight when the user stops the run. The API key is sent as a Bearer header to the API URL only and
is never put in a repr, a log line or an error message (server text is redacted before it is shown).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import email.utils
import hashlib
import io
import json
import logging
import math
import os
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from .backends.base import Detector, Progress
from .detection import Detection, ImageDetections
from .errors import AuthenticationError, InvalidParameter, RemoteError
from .images import decode_data_uri_or_base64, sniff_format
from .pipeline import MAX_DETECTIONS, MaskSettings
from .registry import ModelSpec, find_model

if TYPE_CHECKING:  # httpx (and the CLI tools it pulls in) is imported on first use: the pack imports fast
    import httpx

log = logging.getLogger("maskmargin.remote")

DEFAULT_API_URL = "https://api.runware.ai/v1"
OUTPUT_TYPES = ("base64Data", "dataURI", "URL")
MAX_RETRY_AFTER = 120.0  # a Retry-After beyond this is a service telling us to give up
POLL_SECONDS = 0.05  # how often the waiting thread checks for interruption
UPLOAD_CACHE_SIZE = 512


def _env_number(env: Mapping[str, str], name: str, default: float, kind: type, low: float) -> Any:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < low:
        raise InvalidParameter(f"{name} must be a number >= {low}, got {text!r}", parameter=name)
    return value


@dataclass(frozen=True)
class RemoteConfig:
    """Where the service is, how to authenticate, and how patient and parallel to be."""

    api_url: str = DEFAULT_API_URL
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 60.0  # seconds per request (connect, read, write, pool)
    concurrency: int = 4  # requests in flight at once
    retries: int = 4  # extra attempts after a 429, 5xx, dropped connection or timeout
    backoff: float = 0.5  # first retry delay in seconds, doubled each time (unless Retry-After says)
    max_backoff: float = 30.0
    upload: bool = False  # upload each image once (imageUpload) and send its UUID, instead of a data URI
    output_type: str = "base64Data"  # how masks come back; URL and dataURI work too

    def __post_init__(self) -> None:
        if not isinstance(self.api_url, str) or not self.api_url.startswith(("http://", "https://")):
            raise InvalidParameter("RUNWARE_API_URL must be an http(s) URL", parameter="RUNWARE_API_URL")
        if not self.timeout > 0:
            raise InvalidParameter("MASKMARGIN_TIMEOUT must be > 0 seconds", parameter="MASKMARGIN_TIMEOUT")
        if self.concurrency < 1 or self.retries < 0 or self.backoff < 0:
            raise InvalidParameter("concurrency must be >= 1, retries and backoff >= 0", parameter="concurrency")
        if self.output_type not in OUTPUT_TYPES:
            raise InvalidParameter(f"output_type must be one of {', '.join(OUTPUT_TYPES)}", parameter="outputType")

    def __repr__(self) -> str:  # the key never appears, only whether one is set
        key = "set" if self.api_key else "not set"
        return (f"RemoteConfig(api_url={self.api_url!r}, api_key={key}, timeout={self.timeout:g}, "
                f"concurrency={self.concurrency}, retries={self.retries}, upload={self.upload})")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> RemoteConfig:
        """RUNWARE_API_URL, RUNWARE_API_KEY, MASKMARGIN_TIMEOUT, MASKMARGIN_REMOTE_CONCURRENCY,
        MASKMARGIN_REMOTE_RETRIES and MASKMARGIN_REMOTE_UPLOAD; keyword overrides win when not None."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {
            "api_url": env.get("RUNWARE_API_URL", "").strip() or DEFAULT_API_URL,
            "api_key": env.get("RUNWARE_API_KEY", "").strip() or None,
            "timeout": _env_number(env, "MASKMARGIN_TIMEOUT", 60.0, float, 0.001),
            "concurrency": _env_number(env, "MASKMARGIN_REMOTE_CONCURRENCY", 4, int, 1),
            "retries": _env_number(env, "MASKMARGIN_REMOTE_RETRIES", 4, int, 0),
            "upload": env.get("MASKMARGIN_REMOTE_UPLOAD", "").strip().lower() in ("1", "true", "yes", "on"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


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


@dataclass(frozen=True)
class MaskJob:
    """One image to mask remotely."""

    pixels: np.ndarray  # RGB uint8 [H, W, 3]
    model: str  # name or AIR id the service knows
    settings: MaskSettings


class UploadCache:
    """imageUUIDs the service already holds, by (API URL, image hash): an image goes over the wire once."""

    def __init__(self, size: int = UPLOAD_CACHE_SIZE):
        self._items: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, api_url: str, digest: str) -> str | None:
        with self._lock:
            found = self._items.get((api_url, digest))
            if found is not None:
                self._items.move_to_end((api_url, digest))
            return found

    def put(self, api_url: str, digest: str, image_uuid: str) -> None:
        with self._lock:
            self._items[(api_url, digest)] = image_uuid
            self._items.move_to_end((api_url, digest))
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def forget(self, api_url: str, digest: str) -> None:
        with self._lock:
            self._items.pop((api_url, digest), None)


def _retry_after(value: str | None) -> float | None:
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


def _png_data_uri(pixels: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=1)  # lossless; level 1: fast, small enough
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def image_digest(pixels: np.ndarray) -> str:
    h = hashlib.sha256(str(pixels.shape).encode())
    h.update(np.ascontiguousarray(pixels).data)
    return h.hexdigest()


class RemoteClient:
    """Sends Image Masking API tasks with retries, bounded concurrency and cancellation.

    `stop_check` is called while waiting; when it raises (ComfyUI's interruption), requests in flight
    are cancelled and the same exception propagates. `retry_log` keeps (reason, delay) of each retry.
    """

    def __init__(self, config: RemoteConfig, *, stop_check: Callable[[], None] | None = None,
                 uploads: UploadCache | None = None):
        self.config = config
        self.stop_check = stop_check
        self.uploads = uploads if uploads is not None else UploadCache()
        self.retry_log: list[tuple[str, float]] = []
        self.requests = 0  # HTTP requests sent, retries included
        self._http: httpx.AsyncClient | None = None
        self._uploading: dict[str, asyncio.Future] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="maskmargin-remote", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<RemoteClient {self.config!r}>"

    def __enter__(self) -> RemoteClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return

        async def shutdown() -> None:
            if self._http is not None:
                await self._http.aclose()
            await self._loop.shutdown_default_executor()  # the to_thread workers (PNG encoding)

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    # -- public calls (blocking; run on the private loop) --

    def mask_images(self, images: Sequence[np.ndarray], model: str, settings: MaskSettings,
                    progress: Progress | None = None) -> list[RemoteMask]:
        """One RemoteMask per image, in order, sent concurrently (at most `concurrency` at once)."""
        return self.mask_jobs([MaskJob(img, model, settings) for img in images], progress)

    def mask_jobs(self, jobs: Sequence[MaskJob], progress: Progress | None = None,
                  return_errors: bool = False) -> list[RemoteMask | Exception]:
        """Like mask_images for mixed models and settings. With `return_errors`, a failed job's entry is
        its exception and the others go on; otherwise the first failure cancels the rest and raises."""
        return self._wait(lambda report: self._mask_all(list(jobs), report, return_errors), len(jobs), progress)

    def send(self, tasks: list[dict]) -> list[dict]:
        """POST a raw task array (with retries) and return its `data` list; errors raise."""
        return self._wait(lambda report: self._post(tasks), 0, None)

    # -- waiting, progress and cancellation on the caller's thread --

    def _wait(self, make: Callable[[Callable[[int], None]], Any], total: int, progress: Progress | None) -> Any:
        finished: queue.SimpleQueue[int] = queue.SimpleQueue()
        future = asyncio.run_coroutine_threadsafe(make(finished.put), self._loop)
        done = 0
        try:
            while True:
                concurrent.futures.wait([future], timeout=POLL_SECONDS)
                while not finished.empty():
                    done += finished.get()
                    if progress is not None:
                        progress(done, total)
                if future.done():
                    return future.result()
                if self.stop_check is not None:
                    self.stop_check()
        except BaseException:
            if not future.done():
                future.cancel()
                self._settle()
            raise

    def _settle(self) -> None:
        """Wait until every cancelled request has really stopped (its connection closed)."""

        async def settle() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(settle(), self._loop).result(timeout=10)
        except Exception:  # a cancellation that takes this long is not worth hiding the real error
            log.debug("remote requests still settling after cancellation")

    # -- the work, on the private loop --

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            import httpx

            limits = httpx.Limits(max_connections=self.config.concurrency + 2)
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(self.config.timeout), limits=limits)
        return self._http

    def _redact(self, text: str) -> str:
        key = self.config.api_key
        text = str(text)
        if key:
            text = text.replace(key, "[redacted]")
        return text[:300]

    async def _mask_all(self, jobs: list[MaskJob], report: Callable[[int], None],
                        return_errors: bool = False) -> list[RemoteMask | Exception]:
        gate = asyncio.Semaphore(self.config.concurrency)

        async def one(job: MaskJob) -> RemoteMask | Exception:
            async with gate:
                try:
                    found: RemoteMask | Exception = await self._mask_one(job)
                except Exception as exc:
                    if not return_errors:
                        raise
                    found = exc
            report(1)
            return found

        tasks = [asyncio.ensure_future(one(job)) for job in jobs]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:  # one failure (or a cancel) stops the rest: no orphan requests
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _mask_one(self, job: MaskJob) -> RemoteMask:
        pixels = job.pixels
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise InvalidParameter("remote masking needs RGB uint8 [H, W, 3] images", parameter="image")
        digest = await asyncio.to_thread(image_digest, pixels)
        reference = await self._reference(pixels, digest)
        try:
            result = await self._masking_task(job, reference)
        except RemoteError as exc:
            if reference.startswith("data:") or exc.parameter != "inputImage":
                raise
            # the service forgot an uploaded image (stored images expire): send the pixels again
            self.uploads.forget(self.config.api_url, digest)
            result = await self._masking_task(job, await asyncio.to_thread(_png_data_uri, pixels))
        found = await self._read_mask(result, pixels.shape[1], pixels.shape[0])
        if found.image_uuid:
            self.uploads.put(self.config.api_url, digest, found.image_uuid)
        return found

    async def _reference(self, pixels: np.ndarray, digest: str) -> str:
        known = self.uploads.get(self.config.api_url, digest)
        if known is not None:
            return known
        if not self.config.upload:
            return await asyncio.to_thread(_png_data_uri, pixels)
        # the same image twice in one batch (repeated frames) is uploaded once: later ones wait for it
        pending = self._uploading.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        pending = self._uploading[digest] = asyncio.ensure_future(self._upload(pixels, digest))
        try:
            return await asyncio.shield(pending)
        finally:
            if pending.done():
                self._uploading.pop(digest, None)

    async def _upload(self, pixels: np.ndarray, digest: str) -> str:
        uri = await asyncio.to_thread(_png_data_uri, pixels)
        task_uuid = str(uuid.uuid4())
        data = await self._post([{"taskType": "imageUpload", "taskUUID": task_uuid, "image": uri}])
        image_uuid = self._result_for(data, task_uuid, "imageUpload").get("imageUUID")
        if not isinstance(image_uuid, str) or not image_uuid:
            raise RemoteError("malformed answer from the remote service: imageUpload result has no imageUUID")
        self.uploads.put(self.config.api_url, digest, image_uuid)
        return image_uuid

    async def _masking_task(self, job: MaskJob, reference: str) -> dict:
        s = job.settings
        task_uuid = str(uuid.uuid4())
        task = {
            "taskType": "imageMasking", "taskUUID": task_uuid, "inputImage": reference, "model": job.model,
            "confidence": s.confidence, "maxDetections": s.max_detections,
            # bare shapes: padding and blur are applied here by masks.build_mask, as for local runs
            "maskPadding": 0, "maskBlur": 0,
            "outputFormat": "PNG", "outputType": self.config.output_type, "includeCost": True,
        }
        return self._result_for(await self._post([task]), task_uuid, "imageMasking")

    def _result_for(self, data: list, task_uuid: str, kind: str) -> dict:
        for item in data:
            if isinstance(item, dict) and item.get("taskUUID") == task_uuid:
                return item
        raise RemoteError(f"malformed answer from the remote service: no {kind} result for task {task_uuid}")

    async def _post(self, tasks: list[dict]) -> list:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        body = json.dumps(tasks).encode("utf-8")
        response = await self._request("POST", self.config.api_url, content=body, headers=headers)
        return self._answer(response)

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One HTTP exchange, retried with backoff on 429 (Retry-After honoured), 5xx, drops and timeouts."""
        import httpx

        attempt = 0
        while True:
            self.requests += 1
            retry_after = None
            try:
                response = await self._client().request(method, url, **kwargs)
            except httpx.TimeoutException:
                reason = f"no answer within {self.config.timeout:g} s (MASKMARGIN_TIMEOUT)"
            except httpx.TransportError as exc:
                reason = f"connection failed ({type(exc).__name__})"
            else:
                if response.status_code != 429 and response.status_code < 500:
                    return response
                reason = f"HTTP {response.status_code}"
                retry_after = _retry_after(response.headers.get("retry-after"))
            if attempt >= self.config.retries:
                raise RemoteError(f"the remote service at {self._redact(url)} failed after {attempt + 1} "
                                  f"attempt{'s' if attempt else ''}: {reason}", code="remoteUnavailable")
            delay = retry_after if retry_after is not None else min(self.config.max_backoff,
                                                                    self.config.backoff * 2**attempt)
            self.retry_log.append((reason, delay))
            log.info("remote masking: %s; retrying in %.2f s", reason, delay)
            await asyncio.sleep(delay)
            attempt += 1

    def _answer(self, response: httpx.Response) -> list:
        status = response.status_code
        try:
            payload = response.json()
        except ValueError:  # json.JSONDecodeError and UnicodeDecodeError alike
            payload = None
        errors = payload.get("errors") if isinstance(payload, dict) else None
        detail = self._first_error(errors)
        where = self._redact(self.config.api_url)
        if status == 401:
            hint = ("no API key is set: set RUNWARE_API_KEY (or save the key in ComfyUI)" if not self.config.api_key
                    else "the API key is wrong or revoked: check RUNWARE_API_KEY (or the key saved in ComfyUI)")
            raise AuthenticationError(f"{where} refused the request (HTTP 401): {hint}{detail.suffix}",
                                      parameter="apiKey")
        if status == 403:
            raise AuthenticationError(f"{where} does not allow this API key to mask images (HTTP 403){detail.suffix}",
                                      parameter="apiKey", code="forbidden")
        if status == 402:
            raise AuthenticationError(f"{where} says the account has no credit left (HTTP 402): top it up{detail.suffix}",
                                      parameter="apiKey", code="insufficientCredit")
        if status >= 400 or errors:
            if detail.message is None:
                raise RemoteError(f"{where} answered HTTP {status} without an error description")
            named = f" {detail.parameter}" if detail.parameter else ""
            raise RemoteError(f"the remote service rejected{named}: {detail.message}", parameter=detail.parameter,
                              code=detail.code or "remoteError")
        if payload is None:
            kind = response.headers.get("content-type", "no content type")
            raise RemoteError(f"malformed answer from {where}: HTTP {status} with a body that is not JSON "
                              f"({kind}): {self._redact(response.text[:120])!r}")
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list):
            raise RemoteError(f"malformed answer from {where}: expected an object with a \"data\" array")
        return data

    def _first_error(self, errors: Any) -> _ErrorDetail:
        if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
            return _ErrorDetail(None, None, None)
        e = errors[0]
        text = lambda v: self._redact(v) if isinstance(v, str) and v else None  # noqa: E731
        return _ErrorDetail(text(e.get("message")) or "(no message)", text(e.get("parameter")), text(e.get("code")))

    async def _read_mask(self, result: dict, width: int, height: int) -> RemoteMask:
        boxes = _boxes(result.get("detections"))
        if isinstance(result.get("maskImageBase64Data"), str):
            data = _b64(result["maskImageBase64Data"])
        elif isinstance(result.get("maskImageDataURI"), str):
            try:
                data = decode_data_uri_or_base64(result["maskImageDataURI"], parameter="maskImageDataURI")
            except InvalidParameter as exc:
                raise RemoteError(f"malformed answer from the remote service: {exc.message}") from exc
        elif isinstance(result.get("maskImageURL"), str):
            data = await self._download(result["maskImageURL"])
        else:
            raise RemoteError("malformed answer from the remote service: the result has no maskImageBase64Data, "
                              "maskImageDataURI or maskImageURL")
        mask, scale = await asyncio.to_thread(_mask_at_input_size, data, width, height)
        sx, sy = scale
        scaled = tuple(
            (min(max(x0 * sx, 0.0), width), min(max(y0 * sy, 0.0), height),
             min(max(x1 * sx, 0.0), width), min(max(y1 * sy, 0.0), height))
            for x0, y0, x1, y1 in boxes
        )
        image_uuid = result.get("inputImageUUID")
        cost = result.get("cost")
        return RemoteMask(width, height, mask, scaled, image_uuid if isinstance(image_uuid, str) else None,
                          float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None,
                          scale)

    async def _download(self, url: str) -> bytes:
        # mask URLs are unguessable links (like pre-signed URLs): the API key is not sent with them
        if not url.startswith(("http://", "https://")):
            raise RemoteError("malformed answer from the remote service: maskImageURL is not an http(s) URL")
        response = await self._request("GET", url, follow_redirects=True)
        if response.status_code >= 400:
            raise RemoteError(f"the mask image could not be downloaded (HTTP {response.status_code})")
        return response.content


@dataclass(frozen=True)
class _ErrorDetail:
    message: str | None
    parameter: str | None
    code: str | None

    @property
    def suffix(self) -> str:
        return f" (service said: {self.message})" if self.message else ""


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RemoteError("malformed answer from the remote service: maskImageBase64Data is not base64") from exc


def _boxes(value: Any) -> list[tuple[float, float, float, float]]:
    if not isinstance(value, list):
        raise RemoteError("malformed answer from the remote service: \"detections\" is not a list")
    out = []
    for item in value:
        try:
            box = tuple(float(item[k]) for k in ("x_min", "y_min", "x_max", "y_max"))
        except (TypeError, KeyError, ValueError) as exc:
            raise RemoteError("malformed answer from the remote service: a detection lacks x_min, y_min, "
                              "x_max or y_max numbers") from exc
        if not all(math.isfinite(v) for v in box):
            raise RemoteError("malformed answer from the remote service: a detection box is not finite")
        out.append(box)
    return out


def _mask_at_input_size(data: bytes, width: int, height: int) -> tuple[np.ndarray, tuple[float, float]]:
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
        raise RemoteError(f"malformed answer from the remote service: a {mw}x{mh} mask for a {width}x{height} "
                          "image is not a scaled copy of it")
    return np.asarray(img.resize((width, height), Image.BILINEAR), dtype=np.float32) / 255.0, (sx, sy)


def remote_detections(found: RemoteMask, label: str) -> ImageDetections:
    """Detections whose shapes are the parts of the service's mask inside each box.

    Each box is widened by one pixel (the API's integer boxes may round a shape's edge inward); a
    shape never reaches outside its own box, so cutting the union mask there gives back every
    detection's shape, and building the mask from these gives the local mask exactly (padding >= 0).
    """
    core = found.mask > 0.5
    h, w = core.shape
    detections = []
    for box in found.boxes:
        x0, y0 = max(int(math.floor(box[0])) - 1, 0), max(int(math.floor(box[1])) - 1, 0)
        x1, y1 = min(int(math.ceil(box[2])) + 1, w), min(int(math.ceil(box[3])) + 1, h)
        local = core[y0:y1, x0:x1]
        rows, cols = np.flatnonzero(local.any(axis=1)), np.flatnonzero(local.any(axis=0))
        if len(rows) == 0:  # no shape inside (e.g. a shrunk-away detection): the box stands for it
            detections.append(Detection(box, 1.0, label))
            continue
        tight = np.ascontiguousarray(local[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
        rect = (x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1)
        detections.append(Detection(box, 1.0, label, mask=tight, mask_box=rect))
    return ImageDetections(found.width, found.height, tuple(detections), label)


def remote_model(model: str) -> ModelSpec:
    """The registry entry of a model a remote service offers (one of the 15 with an AIR id)."""
    spec = find_model(model) if isinstance(model, str) else None
    if spec is None or spec.air is None:
        raise InvalidParameter(f"model {model!r} is not offered by remote services: use one of the 15 API models "
                               "(a name such as mediapipe_face_full or an AIR id runware:35@1..15)", parameter="model")
    return spec


class RemoteDetector(Detector):
    """A Detector whose work happens on a remote service; the pipeline uses it like a local one.

    `config` may be a callable so that a key saved after the detector was made (ComfyUI caches the
    loader's output) is picked up on the next run.
    """

    def __init__(self, spec: ModelSpec, config: RemoteConfig | Callable[[], RemoteConfig],
                 stop_check: Callable[[], None] | None = None):
        super().__init__(remote_model(spec.name))
        self._config = config
        self.stop_check = stop_check
        self.uploads = UploadCache()

    def config(self) -> RemoteConfig:
        return self._config() if callable(self._config) else self._config

    def detect_all(self, image: np.ndarray, confidence: float) -> list[Detection]:
        return self.detect_batch([image], confidence, MAX_DETECTIONS)[0]

    def detect(self, image: np.ndarray, confidence: float, max_detections: int) -> list[Detection]:
        return self.detect_batch([image], confidence, max_detections)[0]

    def detect_batch(self, images: Sequence[np.ndarray], confidence: float, max_detections: int,
                     progress: Progress | None = None) -> list[list[Detection]]:
        settings = MaskSettings(confidence, max_detections, 0, 0)
        with RemoteClient(self.config(), stop_check=self.stop_check, uploads=self.uploads) as client:
            found = client.mask_images(list(images), self.spec.air, settings, progress)
        return [list(remote_detections(f, self.name).detections) for f in found]

    def __repr__(self) -> str:
        return f"<RemoteDetector {self.spec.name} at {self.config().api_url}>"

