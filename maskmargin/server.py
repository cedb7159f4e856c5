"""`python -m maskmargin serve`: the Image Masking API as a self-hosted HTTP service.

`POST /v1` takes a JSON array of `authentication`, `imageUpload` and `imageMasking` tasks and answers
exactly as the API does (DESIGN.md section 1): `{"data": [...]}`, plus `"errors"` with HTTP 400 when a
task failed, HTTP 401 when the key is missing or wrong. `GET /v1/images/<uuid>.<ext>` serves the masks
of `outputType: "URL"`. Task semantics (validation, masks, results) come from `api_tasks`, the same
code the command line runs; this module adds the transport and what a shared service needs: a key,
limits on body size, image pixels, tasks per request and concurrent work, timeouts, bounded stores,
and URL inputs and uploadEndpoint fetched through `url_safety` (no private addresses by default).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from .api_tasks import TaskContext, error_entry, run_tasks
from .backends.base import Detector
from .errors import InvalidParameter, MaskMarginError
from .images import MIME, decode_data_uri_or_base64, decode_image_bytes
from .loader import ModelDirs, load_detector
from .registry import find_model
from .url_safety import URLPolicy, fetch, put

log = logging.getLogger("maskmargin.server")

EXTENSIONS = {"PNG": "png", "JPG": "jpg", "WEBP": "webp"}
CONTENT_TYPES = {ext: MIME[fmt] for fmt, ext in EXTENSIONS.items()}
IMAGE_PATH = re.compile(r"^/v1/images/([0-9a-f-]{36})\.(png|jpg|webp)$")
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
        return (f"ServiceConfig(host={self.host!r}, port={self.port}, keys={len(self.keys())}, "
                f"max_concurrency={self.max_concurrency}, max_pixels={self.max_pixels})")

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
            raise InvalidParameter("inputImage must be an uploaded image's UUID, a data URI, base64 image data or "
                                   "an http(s) URL", parameter="inputImage")
        return decode_image_bytes(data, max_pixels=limit)

    def detector(self, model: str) -> Detector:
        spec = find_model(model) if isinstance(model, str) else None
        if spec is None:  # names and AIR ids only: a request must not pick files on the server
            raise InvalidParameter(f"unknown model {model!r}; use a model name or AIR id (runware:35@1..15)",
                                   parameter="model")
        return load_detector(spec.name, self.service.config.dirs, self.service.config.device)

    def publish(self, data: bytes, image_uuid: str, fmt: str) -> str:
        name = f"{image_uuid}.{EXTENSIONS[fmt]}"
        self.service.masks[name] = data
        return f"{self.base_url}/v1/images/{name}"

    def put(self, url: str, data: bytes, fmt: str) -> None:
        put(url, data, MIME[fmt], self.service.config.url_policy, parameter="uploadEndpoint")


def _error(code: str, message: str, parameter: str | None = None, task: Any = None) -> dict:
    task = task if isinstance(task, dict) else {}
    return {"code": code, "message": message, "parameter": parameter,
            "taskType": task.get("taskType"), "taskUUID": task.get("taskUUID")}


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
            return 400, {"errors": [_error("invalidJSON", "the request body is not valid JSON", "tasks")]}, {}
        if not isinstance(tasks, list) or not tasks:
            return 400, {"errors": [_error("invalidParameter", "the request must be a non-empty JSON array of "
                                           "tasks", "tasks")]}, {}
        if len(tasks) > self.config.max_tasks:
            return 400, {"errors": [_error("invalidParameter", f"at most {self.config.max_tasks} tasks per "
                                           f"request, got {len(tasks)}", "tasks")]}, {}
        first = tasks[0]
        auth_task = first if isinstance(first, dict) and first.get("taskType") == "authentication" else None
        data: list[dict] = []
        if auth_task is not None:
            unknown = sorted(set(auth_task) - AUTH_FIELDS)
            if unknown:
                return 400, {"errors": [_error("invalidParameter", f"unknown field {unknown[0]!r} for "
                                               "authentication", unknown[0], auth_task)]}, {}
            tasks = tasks[1:]
        denied = self._check_key(authorization, auth_task)
        if denied is not None:
            return 401, {"errors": [denied]}, {}
        if auth_task is not None:
            session = auth_task.get("connectionSessionUUID")
            answer = {"taskType": "authentication",
                      "connectionSessionUUID": session if isinstance(session, str) else str(uuid.uuid4())}
            if isinstance(auth_task.get("taskUUID"), str):
                answer["taskUUID"] = auth_task["taskUUID"]
            data.append(answer)
        if not tasks:
            return 200, {"data": data}, {}
        if not self.slots.acquire(timeout=self.config.queue_timeout):
            return 503, {"errors": [_error("serviceBusy", "the service is busy; retry shortly")]}, {"Retry-After": "1"}
        try:
            answer = run_tasks(tasks, ServiceContext(self, base_url))
        except MaskMarginError as exc:
            return 400, {"errors": [error_entry(exc, None)]}, {}
        finally:
            self.slots.release()
        answer["data"] = data + answer["data"]
        errors = answer.get("errors", [])
        if not errors:
            return 200, answer, {}
        only_internal = all(e.get("code") == "internalError" for e in errors)
        return (500 if only_internal else 400), answer, {}

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
            return _error("missingApiKey", "an API key is required: send 'Authorization: Bearer <key>' or a leading "
                          "authentication task with apiKey", "apiKey", auth_task or {"taskType": "authentication"})
        given = supplied.encode("utf-8")
        # compare with every key (no early exit), in constant time each
        matches = [hmac.compare_digest(given, key.encode("utf-8")) for key in expected]
        if not any(matches):
            return _error("invalidApiKey", "the API key is not valid", "apiKey",
                          auth_task or {"taskType": "authentication"})
        return None


class ServiceHandler(BaseHTTPRequestHandler):
    """HTTP plumbing only; `service` is set on a per-server subclass."""

    service: MaskingService
    server_version = "MaskMargin"
    protocol_version = "HTTP/1.1"  # keep-alive: a client's connection pool reuses sockets
    # headers and body go out in two writes: without this, Nagle + delayed ACK add ~40 ms per answer
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # request lines only, never headers
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None,
              close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: dict, headers: dict | None = None, close: bool = False) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"), "application/json", headers, close)

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.split("?")[0].rstrip("/") != "/v1":
            self._json(404, {"errors": [_error("notFound", "POST tasks to /v1")]}, close=True)
            return
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or length is None or not length.isdigit():
            self._json(411, {"errors": [_error("lengthRequired", "send the body with a Content-Length")]}, close=True)
            return
        limit = self.service.config.max_body_bytes
        if int(length) > limit:  # refuse before reading: the connection closes instead
            self._json(413, {"errors": [_error("payloadTooLarge", f"the request body is larger than "
                                               f"{limit // MiB} MiB", "tasks")]}, close=True)
            return
        body = self.rfile.read(int(length))
        start = time.perf_counter()
        status, payload, headers = self.service.handle(body, self.headers.get("Authorization"), self._base_url())
        self._json(status, payload, headers)
        # an access line for operators: counts and timing only, never headers or task contents
        log.info("POST /v1 %d from %s: %d results, %d errors, %.0f ms", status, self.client_address[0],
                 len(payload.get("data", [])), len(payload.get("errors", [])), 1000 * (time.perf_counter() - start))

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?")[0]
        if path == "/health":
            self._json(200, {"status": "ok"})
            return
        match = IMAGE_PATH.match(path)
        data = self.service.masks.get(f"{match.group(1)}.{match.group(2)}") if match else None
        if data is None:
            self._json(404, {"errors": [_error("notFound", "no such image (masks are kept for a limited time)")]})
            return
        self._send(200, data, CONTENT_TYPES[match.group(2)], {"Cache-Control": "private, max-age=3600"})

    def _base_url(self) -> str:
        if self.service.config.public_url:
            return self.service.config.public_url.rstrip("/")
        host = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        if not re.fullmatch(r"[A-Za-z0-9.\-:\[\]]+", host):  # a Host header is client input
            host = f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        return f"http://{host}"


_BUSY_BODY = json.dumps({"errors": [_error("serviceBusy", "too many connections; retry shortly")]}).encode()
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(_BUSY_BODY)) + _BUSY_BODY


class MaskingHTTPServer(ThreadingHTTPServer):
    """One thread per connection, at most `max_connections` of them: slow clients cannot pile up threads."""

    daemon_threads = True  # a stuck client never blocks shutdown
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, max_connections: int):
        self.connections = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.connections.acquire(blocking=False):
            try:
                request.sendall(BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # the thread never started: give its slot back
            self.connections.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()


def make_server(config: ServiceConfig) -> MaskingHTTPServer:
    """A bound server (port 0 picks a free one: see `server_address`); call `serve_forever()`."""
    service = MaskingService(config)
    handler = type("BoundServiceHandler", (ServiceHandler,), {"service": service, "timeout": config.socket_timeout})
    return MaskingHTTPServer((config.host, config.port), handler, config.max_connections)


def serve(config: ServiceConfig) -> None:
    server = make_server(config)
    host, port = server.server_address[:2]
    if not config.keys() and config.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s without --api-key: anyone who can reach it can use it", config.host)
    print(f"MaskMargin Image Masking API on http://{host}:{port}/v1 (key {'required' if config.keys() else 'not required'})",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
