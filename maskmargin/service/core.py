"""The service's transport-free core: configuration, keys, and one call per request (REST body or WebSocket frame).

Task semantics (validation, masks, results) come from `api_tasks`, the same code the command line
runs; this adds what a shared service needs: keys, limits on image pixels, tasks per request,
nesting and concurrent work, bounded stores (uploads on disk), URL inputs, uploadEndpoint and
webhookURL through `url_safety`, async delivery with getResponse, and ping. The transports
(`server.py`: REST and WebSocket on aiohttp) only move bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..api_tasks import TaskContext, error_dict, error_entry, parse_masking_task, run_masking, run_tasks
from ..backends.base import Detector
from ..errors import InvalidParameter, MaskMarginError
from ..images import FORMATS, decode_data_uri_or_base64, decode_image_bytes
from ..loader import ModelDirs, load_detector
from ..registry import MODELS, find_model
from ..task_fields import AUTHENTICATION, GET_RESPONSE, PING, check_known, read_task
from ..url_safety import URLPolicy, checked_address, fetch, put, send
from .stores import BoundedStore, ImageStore, default_store_dir

log = logging.getLogger("maskmargin.server")

MiB = 1024 * 1024
DAY = 24 * 3600.0
AUTH_PREFIX_BYTES = 8192  # a leading authentication task must fit in this much of a keyless body
MAX_DEPTH = 32  # JSON nesting a request may have (tasks are 3 levels deep)
WORK_TASKS = ("imageMasking", "imageUpload")  # the task types that need a concurrency slot


@dataclass(frozen=True)
class ServiceConfig:
    host: str = "127.0.0.1"
    port: int = 8700
    api_key: str | None = field(default=None, repr=False)
    api_keys: tuple[str, ...] = field(default=(), repr=False)  # more accepted keys: one per user of a team
    url_policy: URLPolicy = URLPolicy()
    max_body_bytes: int = 48 * MiB  # a 4K PNG as base64 fits with room to spare; also the WebSocket frame limit
    max_pixels: int = 4096 * 4096  # per input image, checked before decoding
    max_tasks: int = 32  # per request
    max_concurrency: int = 4  # requests worked on at once; more wait for a slot
    queue_timeout: float = 30.0  # seconds a request waits for a slot before HTTP 503 + Retry-After
    request_timeout: float = 30.0  # seconds from a request's first byte until its whole body must be in
    idle_timeout: float = 75.0  # seconds an idle connection (no request under way) is kept open
    max_connections: int = 1024  # open connections at once; more are answered 503 and closed
    public_url: str | None = None  # base of mask URLs; default: http://<Host header>
    store_dir: Path | None = None  # uploaded images (default: the user's cache folder)
    image_store_bytes: int = 1024 * MiB  # files in store_dir, oldest dropped beyond this
    image_store_days: float = 30.0  # and dropped after this (ComfyUI's Runware nodes reuse UUIDs for 30 days)
    image_cache_bytes: int = 256 * MiB  # decoded pixels kept in memory
    mask_store_bytes: int = 256 * MiB  # masks kept for URL outputs (oldest dropped)
    result_store_bytes: int = 256 * MiB  # async results kept for getResponse
    result_keep_seconds: float = 3600.0
    dirs: ModelDirs | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        if any(
            not k or not k.strip() for k in (*((self.api_key,) if self.api_key is not None else ()), *self.api_keys)
        ):
            raise ValueError("an API key must not be empty (leave it out to serve without a key)")

    def __repr__(self) -> str:
        return (
            f"ServiceConfig(host={self.host!r}, port={self.port}, keys={len(self.keys())}, "
            f"max_concurrency={self.max_concurrency}, max_pixels={self.max_pixels})"
        )

    def keys(self) -> tuple[str, ...]:
        return tuple(k for k in (self.api_key, *self.api_keys) if k)


def _as_bytes(text: str) -> bytes:
    """A key's bytes for comparison: lone surrogates (from JSON escapes or header bytes) never raise."""
    return text.encode("utf-8", "surrogatepass")


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when lists/objects nest deeper than `limit` (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, (dict, list)))
    return False


class ServiceContext(TaskContext):
    """Task context of one request: shared stores, registry models only, safe URLs."""

    def __init__(self, service: MaskingService, base_url: str, notify: Callable[[dict], None] | None = None):
        super().__init__()
        self.notify = notify  # called with an async task's answer when it is done (a WebSocket pushes it)
        self.service = service
        self.images = service.images  # type: ignore[assignment]  # uploads outlive the request
        self.base_url = base_url

    def load_image(self, reference: str) -> tuple[np.ndarray, bytes | None]:
        limit = self.service.config.max_pixels
        if reference.startswith(("http://", "https://")):
            data = fetch(reference, self.service.config.url_policy, parameter="inputImage")
        elif reference.startswith("data:") or len(reference) >= 64:
            data = decode_data_uri_or_base64(reference)
        else:  # a service never reads its own files
            raise InvalidParameter(
                "inputImage must be an uploaded image's UUID, a data URI, base64 image data or an http(s) URL",
                parameter="inputImage",
            )
        return decode_image_bytes(data, max_pixels=limit), data

    def fetch_image(self, reference: str) -> np.ndarray:
        return self.load_image(reference)[0]

    def store_image(self, pixels: np.ndarray, data: bytes | None = None) -> str:
        image_uuid = str(uuid.uuid4())
        self.service.images.put(image_uuid, pixels, data)
        return image_uuid

    def image_url(self, image_uuid: str) -> str | None:
        path = self.service.images.file(image_uuid)
        return None if path is None else f"{self.base_url}/v1/images/{path.name}"

    def detector(self, model: str) -> Detector:
        spec = find_model(model) if isinstance(model, str) else None
        if spec is None or spec.air is None:  # names and AIR ids only: a request must not pick files on the server
            names = ", ".join(f"{m.name} ({m.air})" for m in MODELS if m.air)
            raise InvalidParameter(f"unknown model {model!r}; use one of: {names}", parameter="model")
        return load_detector(spec.name, self.service.config.dirs, self.service.config.device)

    def publish(self, data: bytes, image_uuid: str, fmt: str, ttl: int | None = None) -> str:
        name = f"{image_uuid}.{FORMATS[fmt].extension}"
        self.service.masks.put(name, data, ttl)
        return f"{self.base_url}/v1/images/{name}"

    def put(self, url: str, data: bytes, fmt: str) -> None:
        put(url, data, FORMATS[fmt].mime, self.service.config.url_policy, parameter="uploadEndpoint")


def _result_size(entry: Any) -> int:
    return sum(len(v) for item in entry.get("data", []) for v in item.values() if isinstance(v, str)) + 512


class MaskingService:
    """The transport-free core of the service: keys, then one call per request body or frame."""

    def __init__(self, config: ServiceConfig):
        self.config = config
        self.images = ImageStore(
            config.store_dir or default_store_dir(),
            config.image_store_bytes,
            config.image_store_days * DAY,
            config.image_cache_bytes,
        )
        self.masks = BoundedStore(config.mask_store_bytes)
        # async deliveries by taskUUID: {"owner", "taskType", "data" | "errors"} (no data yet: processing)
        self.results = BoundedStore(config.result_store_bytes, config.result_keep_seconds, _result_size)
        self.slots = threading.BoundedSemaphore(config.max_concurrency)
        self.background = ThreadPoolExecutor(config.max_concurrency, thread_name_prefix="maskmargin-async")
        self._pending = 0  # async tasks accepted and not started
        self._pending_lock = threading.Lock()

    def close(self) -> None:
        self.background.shutdown(wait=False, cancel_futures=True)

    # --- keys ---------------------------------------------------------------------------------------

    def key_required(self) -> bool:
        return bool(self.config.keys())

    @staticmethod
    def bearer(authorization: str | None) -> str | None:
        if authorization and authorization[:7].lower() == "bearer ":
            return authorization[7:].strip() or None
        return None

    def check_key(self, supplied: str | None, auth_task: dict | None = None) -> tuple[dict | None, str]:
        """(an error entry or None, the caller's owner id: the same key gives the same id)."""
        task = auth_task or {"taskType": "authentication"}
        expected = self.config.keys()
        if not expected:
            return None, "anyone"
        if not supplied:
            return (
                error_dict(
                    "missingApiKey",
                    "an API key is required: send 'Authorization: Bearer <key>' or a leading "
                    "authentication task with apiKey",
                    "apiKey",
                    task,
                ),
                "",
            )
        given = _as_bytes(supplied)
        # compare with every key (no early exit), in constant time each
        matches = [hmac.compare_digest(given, _as_bytes(key)) for key in expected]
        if not any(matches):
            return error_dict("invalidApiKey", "the API key is not valid", "apiKey", task), ""
        return None, hashlib.sha256(given).hexdigest()[:16]

    def read_auth_task(self, task: dict) -> dict | None:
        """An error entry for a malformed authentication task, None when its fields are fine."""
        try:  # the key itself is checked by check_key: a bad one is a 401, not a 400
            read_task({k: v for k, v in task.items() if k != "apiKey"}, AUTHENTICATION)
            check_known(task, AUTHENTICATION)
        except InvalidParameter as exc:
            return error_entry(exc, task)
        return None

    def prefix_auth_task(self, prefix: bytes) -> dict | None:
        """The leading authentication task of a body from its first bytes only, None when there is none."""
        try:
            text = prefix.decode("utf-8", "ignore").lstrip()
            if not text.startswith("["):
                return None
            first, _ = json.JSONDecoder().raw_decode(text[1:].lstrip())
        except (ValueError, RecursionError):
            return None
        if isinstance(first, dict) and first.get("taskType") == "authentication":
            return first
        return None

    def authentication_answer(self, auth_task: dict) -> dict:
        session = auth_task.get("connectionSessionUUID")
        try:
            session = str(uuid.UUID(session)) if isinstance(session, str) else None
        except ValueError:
            session = None
        answer: dict[str, Any] = {"taskType": "authentication", "connectionSessionUUID": session or str(uuid.uuid4())}
        if isinstance(auth_task.get("taskUUID"), str):
            answer["taskUUID"] = auth_task["taskUUID"]
        return answer

    # --- requests -----------------------------------------------------------------------------------

    def parse(self, body: bytes | str) -> tuple[list | None, tuple[int, dict, dict] | None]:
        """(tasks, None), or (None, the refusal) for a body that is not a bounded JSON array of tasks."""
        try:
            tasks = json.loads(body)
        except RecursionError:
            return None, _refusal(400, "invalidJSON", f"the request nests deeper than {MAX_DEPTH} levels")
        except (ValueError, UnicodeDecodeError):
            return None, _refusal(400, "invalidJSON", "the request body is not valid JSON")
        if too_deep(tasks):
            return None, _refusal(400, "invalidJSON", f"the request nests deeper than {MAX_DEPTH} levels")
        if not isinstance(tasks, list) or not tasks:
            return None, _refusal(400, "invalidParameter", "the request must be a non-empty JSON array of tasks")
        if len(tasks) > self.config.max_tasks:
            return None, _refusal(
                400, "invalidParameter", f"at most {self.config.max_tasks} tasks per request, got {len(tasks)}"
            )
        return tasks, None

    def handle(
        self,
        body: bytes | str,
        authorization: str | None,
        base_url: str,
        owner: str | None = None,
        notify: Callable[[dict], None] | None = None,
    ) -> tuple[int, dict, dict]:
        """(HTTP status, JSON answer, extra headers) for one request body (a REST POST or a WebSocket frame).

        `owner`: the caller's id when its key was already checked (a WebSocket session, a Bearer header).
        `notify`: also called with each async task's answer once it is done.
        """
        tasks, refusal = self.parse(body)
        if refusal is not None:
            return refusal
        assert tasks is not None
        first = tasks[0]
        auth_task = first if isinstance(first, dict) and first.get("taskType") == "authentication" else None
        data: list[dict] = []
        if auth_task is not None:
            bad = self.read_auth_task(auth_task)
            if bad is not None:
                return 400, {"errors": [bad]}, {}
            tasks = tasks[1:]
        if owner is None or auth_task is not None:
            supplied = self.bearer(authorization)
            if supplied is None and auth_task is not None and isinstance(auth_task.get("apiKey"), str):
                supplied = auth_task["apiKey"]
            denied, owner = self.check_key(supplied, auth_task)
            if denied is not None:
                return 401, {"errors": [denied]}, {}
        if auth_task is not None:
            data.append(self.authentication_answer(auth_task))
        if not tasks:
            return 200, {"data": data}, {}
        return self.run(tasks, ServiceContext(self, base_url, notify), owner, data)

    def run(self, tasks: list, context: ServiceContext, owner: str, data: list[dict]) -> tuple[int, dict, dict]:
        """Run authorized tasks; `data`: answers to put first (authentication)."""
        needs_slot = any(isinstance(t, dict) and t.get("taskType") in WORK_TASKS for t in tasks)
        if needs_slot and not self.slots.acquire(timeout=self.config.queue_timeout):
            return (
                503,
                {"errors": [error_dict("serviceBusy", "the service is busy; retry shortly")]},
                {"Retry-After": "1"},
            )
        try:
            handlers = {
                "imageMasking": lambda task, ctx: self._masking(task, context, owner),
                "getResponse": lambda task, ctx: self._get_response(task, owner),
                "ping": lambda task, ctx: self.pong(task),
            }
            results = run_tasks(tasks, context, handlers)
        except MaskMarginError as exc:
            return 400, {"errors": [error_entry(exc, None)]}, {}
        finally:
            if needs_slot:
                self.slots.release()
        results["data"] = data + results["data"]
        errors = results.get("errors", [])
        if not errors:
            return 200, results, {}
        only_internal = all(e.get("code") == "internalError" for e in errors)
        return (500 if only_internal else 400), results, {}

    @staticmethod
    def pong(task: dict) -> dict:
        check_known(task, PING)
        return {"taskType": "ping", "pong": True}

    # --- imageMasking: sync, async, webhook ---------------------------------------------------------

    def _masking(self, task: dict, context: ServiceContext, owner: str) -> dict:
        parsed = parse_masking_task(task)
        if parsed.webhook_url:  # refuse an unsafe webhook now, not after the work
            checked_address(parsed.webhook_url, self.config.url_policy, "webhookURL")
        if parsed.delivery_method == "sync":
            result = run_masking(parsed, context)
            if parsed.webhook_url:
                self.background.submit(self._post_webhook, parsed.webhook_url, {"data": [result]})
            return result
        if self.results.get(parsed.task_uuid) is not None:
            raise InvalidParameter(
                f"taskUUID {parsed.task_uuid} is already in use; send each task with a new one", parameter="taskUUID"
            )
        with self._pending_lock:  # queued async work holds its input: bounded, like every store
            if self._pending >= self.config.max_concurrency * self.config.max_tasks:
                raise MaskMarginError(
                    "too many async tasks waiting; retry shortly or use deliveryMethod sync",
                    parameter="deliveryMethod",
                    code="serviceBusy",
                )
            self._pending += 1
        self.results.put(parsed.task_uuid, {"owner": owner, "taskType": "imageMasking"})

        def work() -> None:
            with self._pending_lock:
                self._pending -= 1
            with self.slots:
                try:
                    answer: dict[str, list] = {"data": [run_masking(parsed, context) | {"status": "success"}]}
                except Exception as exc:
                    answer = {"errors": [error_entry(exc, task)]}
            self.results.put(parsed.task_uuid, {"owner": owner, "taskType": "imageMasking", **answer})
            if context.notify is not None:
                context.notify(answer)
            if parsed.webhook_url:
                self._post_webhook(parsed.webhook_url, answer)

        self.background.submit(work)
        return {"taskType": "imageMasking", "taskUUID": parsed.task_uuid, "status": "processing"}

    def _get_response(self, task: dict, owner: str) -> dict:
        task_uuid = read_task(task, GET_RESPONSE)["taskUUID"]
        entry = self.results.get(task_uuid)
        if entry is None or not hmac.compare_digest(entry["owner"], owner):
            raise MaskMarginError(
                f"no async task {task_uuid}: it was never sent with deliveryMethod async, or its result "
                f"was kept longer than {self.config.result_keep_seconds:.0f} s",
                parameter="taskUUID",
                code="taskNotFound",
            )
        if "errors" in entry:
            error = entry["errors"][0]
            raise MaskMarginError(error["message"], parameter=error["parameter"], code=error["code"])
        if "data" in entry:
            return entry["data"][0]
        return {"taskType": entry["taskType"], "taskUUID": task_uuid, "status": "processing"}

    def _post_webhook(self, url: str, answer: dict) -> None:
        try:
            send(url, json.dumps(answer).encode(), "application/json", self.config.url_policy, "webhookURL")
        except MaskMarginError as exc:  # the client asked for it; the service only notes that it failed
            log.warning("webhook failed: %s", exc.message)


def _refusal(status: int, code: str, message: str, parameter: str = "tasks") -> tuple[int, dict, dict]:
    return status, {"errors": [error_dict(code, message, parameter)]}, {}
