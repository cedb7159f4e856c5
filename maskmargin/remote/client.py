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
import concurrent.futures
import hashlib
import io
import json
import logging
import queue
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..errors import AuthenticationError, InvalidParameter, RemoteError
from ..images import decode_data_uri_or_base64
from ..settings import MaskSettings, Progress
from .answers import (
    MAX_ANSWER_BYTES,
    MAX_MASK_BYTES,
    MAX_RETRY_AFTER,
    ErrorDetail,
    RemoteMask,
    base64_field,
    check_boxes_inside,
    detection_boxes,
    mask_at_input_size,
    retry_after_seconds,
)
from .config import RemoteConfig

if TYPE_CHECKING:  # httpx (and the CLI tools it pulls in) is imported on first use: the pack imports fast
    import httpx

log = logging.getLogger("maskmargin.remote")

POLL_SECONDS = 0.05  # how often the waiting thread checks for interruption
UPLOAD_CACHE_SIZE = 512
SHOWN_BODY = 120  # characters of a non-JSON answer quoted in the error (after the key is redacted)


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, read whole within the deadline and the size cap."""

    status: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


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

    def __init__(
        self, config: RemoteConfig, *, stop_check: Callable[[], None] | None = None, uploads: UploadCache | None = None
    ):
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

    def mask_images(
        self, images: Sequence[np.ndarray], model: str, settings: MaskSettings, progress: Progress | None = None
    ) -> list[RemoteMask]:
        """One RemoteMask per image, in order, sent concurrently (at most `concurrency` at once)."""
        found = self.mask_jobs([MaskJob(img, model, settings) for img in images], progress)
        return [f for f in found if isinstance(f, RemoteMask)]  # without return_errors, failures raise

    def mask_jobs(
        self, jobs: Sequence[MaskJob], progress: Progress | None = None, return_errors: bool = False
    ) -> list[RemoteMask | Exception]:
        """Like mask_images for mixed models and settings. With `return_errors`, a failed job's entry is
        its exception and the others go on; otherwise the first failure cancels the rest and raises."""
        return self._wait(lambda report: self._mask_all(list(jobs), report, return_errors), len(jobs), progress)

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

    def _redact(self, text: str, limit: int = 300) -> str:
        """`text` without the API key, then cut to `limit` characters (cutting first could leave most of a
        key that straddles the cut)."""
        key = self.config.api_key
        text = str(text)
        if key:
            text = text.replace(key, "[redacted]")
        return text[:limit]

    async def _mask_all(
        self, jobs: list[MaskJob], report: Callable[[int], None], return_errors: bool = False
    ) -> list[RemoteMask | Exception]:
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
        found = await self._read_mask(result, pixels.shape[1], pixels.shape[0], job.settings.max_detections)
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
            "taskType": "imageMasking",
            "taskUUID": task_uuid,
            "inputImage": reference,
            "model": job.model,
            "confidence": s.confidence,
            "maxDetections": s.max_detections,
            # bare shapes: padding and blur are applied here by masks.build_mask, as for local runs
            "maskPadding": 0,
            "maskBlur": 0,
            "outputFormat": "PNG",
            "outputType": self.config.output_type,
            "includeCost": True,
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
        answer = await self._request("POST", self.config.api_url, MAX_ANSWER_BYTES, content=body, headers=headers)
        return self._answer(answer)

    async def _exchange(self, method: str, url: str, max_bytes: int, what: str, **kwargs: Any) -> Answer:
        """Send one request and read its whole answer, refusing bodies over `max_bytes` unread."""
        import httpx

        http = self._client()
        follow = kwargs.pop("follow_redirects", False)
        response = await http.send(http.build_request(method, url, **kwargs), stream=True, follow_redirects=follow)
        try:
            declared = response.headers.get("content-length", "")
            too_big = RemoteError(
                f"the remote service's {what} is over {max_bytes // (1024 * 1024)} MB: not read",
                code="remoteError",
            )
            if declared.isdigit() and int(declared) > max_bytes:
                raise too_big
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():  # decoded: a gzip bomb counts at its real size
                size += len(chunk)
                if size > max_bytes:
                    raise too_big
                chunks.append(chunk)
            return Answer(response.status_code, httpx.Headers(response.headers), b"".join(chunks))
        finally:
            await response.aclose()

    async def _request(self, method: str, url: str, max_bytes: int, what: str = "answer", **kwargs: Any) -> Answer:
        """One HTTP exchange, retried with backoff on 429 (Retry-After honoured), 5xx, drops and timeouts.

        MASKMARGIN_TIMEOUT bounds the whole exchange, from connecting to the answer's last byte: a
        service that trickles its answer is given up on like a silent one."""
        import httpx

        attempt = 0
        while True:
            self.requests += 1
            retry_after = None
            try:
                answer = await asyncio.wait_for(
                    self._exchange(method, url, max_bytes, what, **kwargs), timeout=self.config.timeout
                )
            except (httpx.TimeoutException, asyncio.TimeoutError):
                reason = f"no complete answer within {self.config.timeout:g} s (MASKMARGIN_TIMEOUT)"
            except httpx.TooManyRedirects as exc:
                raise RemoteError(f"the remote service's {what} at {self._redact(url)} redirects too often") from exc
            except httpx.TransportError as exc:
                reason = f"connection failed ({type(exc).__name__})"
            except httpx.RequestError as exc:  # e.g. a body that is not the encoding it claims
                raise RemoteError(
                    f"malformed {what} from the remote service at {self._redact(url)} ({type(exc).__name__})"
                ) from exc
            else:
                if answer.status != 429 and answer.status < 500:
                    return answer
                reason = f"HTTP {answer.status}"
                retry_after = retry_after_seconds(answer.headers.get("retry-after"))
                if retry_after is not None and retry_after > MAX_RETRY_AFTER:
                    raise RemoteError(
                        f"the remote service at {self._redact(url)} answered {reason} and asks to wait "
                        f"{retry_after:.0f} s before retrying (more than {MAX_RETRY_AFTER:.0f} s): try again later",
                        code="remoteUnavailable",
                    )
            if attempt >= self.config.retries:
                raise RemoteError(
                    f"the remote service at {self._redact(url)} failed after {attempt + 1} "
                    f"attempt{'s' if attempt else ''}: {reason}",
                    code="remoteUnavailable",
                )
            delay = (
                retry_after
                if retry_after is not None
                else min(self.config.max_backoff, self.config.backoff * 2**attempt)
            )
            self.retry_log.append((reason, delay))
            log.info("remote masking: %s; retrying in %.2f s", reason, delay)
            await asyncio.sleep(delay)
            attempt += 1

    def _answer(self, response: Answer) -> list:
        status = response.status
        try:
            payload = json.loads(response.body)
        except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, and nesting too deep
            payload = None
        errors = payload.get("errors") if isinstance(payload, dict) else None
        detail = self._first_error(errors)
        where = self._redact(self.config.api_url)
        if status == 401:
            hint = (
                "no API key is set: set RUNWARE_API_KEY (or save the key in ComfyUI)"
                if not self.config.api_key
                else "the API key is wrong or revoked: check RUNWARE_API_KEY (or the key saved in ComfyUI)"
            )
            raise AuthenticationError(
                f"{where} refused the request (HTTP 401): {hint}{detail.suffix}", parameter="apiKey"
            )
        if status == 403:
            raise AuthenticationError(
                f"{where} does not allow this API key to mask images (HTTP 403){detail.suffix}",
                parameter="apiKey",
                code="forbidden",
            )
        if status == 402:
            raise AuthenticationError(
                f"{where} says the account has no credit left (HTTP 402): top it up{detail.suffix}",
                parameter="apiKey",
                code="insufficientCredit",
            )
        if status >= 400 or errors:
            if detail.message is None:
                raise RemoteError(f"{where} answered HTTP {status} without an error description")
            named = f" {detail.parameter}" if detail.parameter else ""
            raise RemoteError(
                f"the remote service rejected{named}: {detail.message}",
                parameter=detail.parameter,
                code=detail.code or "remoteError",
            )
        if payload is None:
            kind = response.headers.get("content-type", "no content type")
            raise RemoteError(
                f"malformed answer from {where}: HTTP {status} with a body that is not JSON "
                f"({kind}): {self._redact(response.text(), SHOWN_BODY)!r}"
            )
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list):
            raise RemoteError(f'malformed answer from {where}: expected an object with a "data" array')
        return data

    def _first_error(self, errors: Any) -> ErrorDetail:
        if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
            return ErrorDetail(None, None, None)
        e = errors[0]
        text = lambda v: self._redact(v) if isinstance(v, str) and v else None  # noqa: E731
        return ErrorDetail(text(e.get("message")) or "(no message)", text(e.get("parameter")), text(e.get("code")))

    async def _read_mask(self, result: dict, width: int, height: int, max_detections: int) -> RemoteMask:
        boxes = detection_boxes(result.get("detections"), max_detections)
        if isinstance(result.get("maskImageBase64Data"), str):
            data = base64_field(result["maskImageBase64Data"])
        elif isinstance(result.get("maskImageDataURI"), str):
            try:
                data = decode_data_uri_or_base64(result["maskImageDataURI"], parameter="maskImageDataURI")
            except InvalidParameter as exc:
                raise RemoteError(f"malformed answer from the remote service: {exc.message}") from exc
        elif isinstance(result.get("maskImageURL"), str):
            data = await self._download(result["maskImageURL"])
        else:
            raise RemoteError(
                "malformed answer from the remote service: the result has no maskImageBase64Data, "
                "maskImageDataURI or maskImageURL"
            )
        mask, scale = await asyncio.to_thread(mask_at_input_size, data, width, height)
        sx, sy = scale
        check_boxes_inside(boxes, round(width / sx), round(height / sy))
        if not boxes and mask.max(initial=0.0) > 0.5:
            raise RemoteError(
                "malformed answer from the remote service: the mask shows shapes but no detection is listed"
            )
        scaled = tuple(
            (
                min(max(x0 * sx, 0.0), width),
                min(max(y0 * sy, 0.0), height),
                min(max(x1 * sx, 0.0), width),
                min(max(y1 * sy, 0.0), height),
            )
            for x0, y0, x1, y1 in boxes
        )
        image_uuid = result.get("inputImageUUID")
        cost = result.get("cost")
        return RemoteMask(
            width,
            height,
            mask,
            scaled,
            image_uuid if isinstance(image_uuid, str) else None,
            float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None,
            scale,
        )

    async def _download(self, url: str) -> bytes:
        # mask URLs are unguessable links (like pre-signed URLs): the API key is not sent with them
        if not url.startswith(("http://", "https://")):
            raise RemoteError("malformed answer from the remote service: maskImageURL is not an http(s) URL")
        response = await self._request("GET", url, MAX_MASK_BYTES, "mask image", follow_redirects=True)
        if response.status >= 400:
            raise RemoteError(f"the mask image could not be downloaded (HTTP {response.status})")
        return response.body
