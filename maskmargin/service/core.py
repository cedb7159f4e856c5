"""The service's transport-free core: configuration, bounded stores, and one call per request body.

Task semantics (validation, masks, results) come from `api_tasks`, the same code the command line
runs; this adds what a shared service needs: keys, limits on image pixels, tasks per request and
concurrent work, bounded stores, and URL inputs and uploadEndpoint fetched through `url_safety`.
"""

from __future__ import annotations

import hmac
import json
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..api_tasks import TaskContext, error_dict, error_entry, run_tasks
from ..backends.base import Detector
from ..errors import InvalidParameter, MaskMarginError
from ..images import FORMATS, decode_data_uri_or_base64, decode_image_bytes
from ..loader import ModelDirs, load_detector
from ..registry import find_model
from ..url_safety import URLPolicy, fetch, put

AUTH_FIELDS = {"taskType", "apiKey", "taskUUID", "connectionSessionUUID"}
MiB = 1024 * 1024


@dataclass(frozen=True)
class ServiceConfig:
    host: str = "127.0.0.1"
    port: int = 8700
    api_key: str | None = field(default=None, repr=False)
    api_keys: tuple[str, ...] = field(default=(), repr=False)  # more accepted keys: one per user of a team
    url_policy: URLPolicy = URLPolicy()
    max_body_bytes: int = 48 * MiB  # a 4K PNG as base64 fits with room to spare
    max_pixels: int = 4096 * 4096  # per input image, checked before decoding
    max_tasks: int = 32  # per request
    max_concurrency: int = 4  # requests worked on at once; more wait for a slot
    queue_timeout: float = 30.0  # seconds a request waits for a slot before HTTP 503 + Retry-After
    socket_timeout: float = 30.0  # seconds of silence while reading a request before the connection drops
    max_connections: int = 64  # open connections at once; more are answered 503 and closed (slow clients)
    public_url: str | None = None  # base of mask URLs; default: http://<Host header>
    image_store_bytes: int = 1024 * MiB  # uploaded/input images kept for reuse by UUID (oldest dropped)
    mask_store_bytes: int = 256 * MiB  # masks kept for URL outputs (oldest dropped)
    dirs: ModelDirs | None = None
    device: str | None = None

    def __repr__(self) -> str:
        return (
            f"ServiceConfig(host={self.host!r}, port={self.port}, keys={len(self.keys())}, "
            f"max_concurrency={self.max_concurrency}, max_pixels={self.max_pixels})"
        )

    def keys(self) -> tuple[str, ...]:
        return tuple(k for k in (self.api_key, *self.api_keys) if k)


class BoundedStore:
    """A thread-safe mapping that forgets its oldest entries beyond a total size in bytes."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def _size(value: Any) -> int:
        return value.nbytes if isinstance(value, np.ndarray) else len(value)

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key]

    def __setitem__(self, key: str, value: Any) -> None:
        with self._lock:
            if key in self._items:
                self._bytes -= self._size(self._items.pop(key))
            self._items[key] = value
            self._bytes += self._size(value)
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._bytes -= self._size(old)

    def __len__(self) -> int:
        return len(self._items)


class ServiceContext(TaskContext):
    """Task context of one request: shared image store, registry models only, safe URLs."""

    def __init__(self, service: MaskingService, base_url: str):
        super().__init__()
        self.service = service
        self.images = service.images  # type: ignore[assignment]  # uploads outlive the request
        self.base_url = base_url

    def fetch_image(self, reference: str) -> np.ndarray:
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
        return decode_image_bytes(data, max_pixels=limit)

    def detector(self, model: str) -> Detector:
        spec = find_model(model) if isinstance(model, str) else None
        if spec is None:  # names and AIR ids only: a request must not pick files on the server
            raise InvalidParameter(
                f"unknown model {model!r}; use a model name or AIR id (runware:35@1..15)", parameter="model"
            )
        return load_detector(spec.name, self.service.config.dirs, self.service.config.device)

    def publish(self, data: bytes, image_uuid: str, fmt: str) -> str:
        name = f"{image_uuid}.{FORMATS[fmt].extension}"
        self.service.masks[name] = data
        return f"{self.base_url}/v1/images/{name}"

    def put(self, url: str, data: bytes, fmt: str) -> None:
        put(url, data, FORMATS[fmt].mime, self.service.config.url_policy, parameter="uploadEndpoint")


class MaskingService:
    """The transport-free core of the service: one call per request body."""

    def __init__(self, config: ServiceConfig):
        self.config = config
        self.images = BoundedStore(config.image_store_bytes)
        self.masks = BoundedStore(config.mask_store_bytes)
        self.slots = threading.BoundedSemaphore(config.max_concurrency)

    def handle(self, body: bytes, authorization: str | None, base_url: str) -> tuple[int, dict, dict]:
        """(HTTP status, JSON answer, extra headers) for one POST /v1 body."""
        try:
            tasks = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return 400, {"errors": [error_dict("invalidJSON", "the request body is not valid JSON", "tasks")]}, {}
        if not isinstance(tasks, list) or not tasks:
            return (
                400,
                {
                    "errors": [
                        error_dict("invalidParameter", "the request must be a non-empty JSON array of tasks", "tasks")
                    ]
                },
                {},
            )
        if len(tasks) > self.config.max_tasks:
            return (
                400,
                {
                    "errors": [
                        error_dict(
                            "invalidParameter",
                            f"at most {self.config.max_tasks} tasks per request, got {len(tasks)}",
                            "tasks",
                        )
                    ]
                },
                {},
            )
        first = tasks[0]
        auth_task = first if isinstance(first, dict) and first.get("taskType") == "authentication" else None
        data: list[dict] = []
        if auth_task is not None:
            unknown = sorted(set(auth_task) - AUTH_FIELDS)
            if unknown:
                return (
                    400,
                    {
                        "errors": [
                            error_dict(
                                "invalidParameter",
                                f"unknown field {unknown[0]!r} for authentication",
                                unknown[0],
                                auth_task,
                            )
                        ]
                    },
                    {},
                )
            tasks = tasks[1:]
        denied = self._check_key(authorization, auth_task)
        if denied is not None:
            return 401, {"errors": [denied]}, {}
        if auth_task is not None:
            session = auth_task.get("connectionSessionUUID")
            answer: dict[str, Any] = {
                "taskType": "authentication",
                "connectionSessionUUID": session if isinstance(session, str) else str(uuid.uuid4()),
            }
            if isinstance(auth_task.get("taskUUID"), str):
                answer["taskUUID"] = auth_task["taskUUID"]
            data.append(answer)
        if not tasks:
            return 200, {"data": data}, {}
        if not self.slots.acquire(timeout=self.config.queue_timeout):
            return (
                503,
                {"errors": [error_dict("serviceBusy", "the service is busy; retry shortly")]},
                {"Retry-After": "1"},
            )
        try:
            results = run_tasks(tasks, ServiceContext(self, base_url))
        except MaskMarginError as exc:
            return 400, {"errors": [error_entry(exc, None)]}, {}
        finally:
            self.slots.release()
        results["data"] = data + results["data"]  # the authentication answer first
        errors = results.get("errors", [])
        if not errors:
            return 200, results, {}
        only_internal = all(e.get("code") == "internalError" for e in errors)
        return (500 if only_internal else 400), results, {}

    def _check_key(self, authorization: str | None, auth_task: dict | None) -> dict | None:
        expected = self.config.keys()
        if not expected:
            return None
        supplied = None
        if authorization and authorization[:7].lower() == "bearer ":
            supplied = authorization[7:].strip()
        elif auth_task is not None and isinstance(auth_task.get("apiKey"), str):
            supplied = auth_task["apiKey"]
        if not supplied:
            return error_dict(
                "missingApiKey",
                "an API key is required: send 'Authorization: Bearer <key>' or a leading "
                "authentication task with apiKey",
                "apiKey",
                auth_task or {"taskType": "authentication"},
            )
        given = supplied.encode("utf-8")
        # compare with every key (no early exit), in constant time each
        matches = [hmac.compare_digest(given, key.encode("utf-8")) for key in expected]
        if not any(matches):
            return error_dict(
                "invalidApiKey", "the API key is not valid", "apiKey", auth_task or {"taskType": "authentication"}
            )
        return None
