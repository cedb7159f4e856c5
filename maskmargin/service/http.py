"""`python -m maskmargin serve`: the service core over HTTP (POST /v1, GET /v1/images/<uuid>.<ext>, GET /health).

`POST /v1` takes a JSON array of `authentication`, `imageUpload` and `imageMasking` tasks and answers
as the API does: `{"data": [...]}`, plus `"errors"` with HTTP 400 when a task failed, HTTP 401 when
the key is missing or wrong. This module is HTTP plumbing only: body limits, timeouts, connection caps.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..api_tasks import error_dict
from ..images import FORMATS
from .core import MaskingService, MiB, ServiceConfig

log = logging.getLogger("maskmargin.server")

CONTENT_TYPES = {f.extension: f.mime for f in FORMATS.values()}
IMAGE_PATH = re.compile(rf"^/v1/images/([0-9a-f-]{{36}})\.({'|'.join(CONTENT_TYPES)})$")


class ServiceHandler(BaseHTTPRequestHandler):
    """HTTP plumbing only; `service` is set on a per-server subclass."""

    service: MaskingService
    server_version = "MaskMargin"
    protocol_version = "HTTP/1.1"  # keep-alive: a client's connection pool reuses sockets
    # headers and body go out in two writes: without this, Nagle + delayed ACK add ~40 ms per answer
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # request lines only, never headers
        log.debug("%s %s", self.address_string(), format % args)

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict | None = None, close: bool = False
    ) -> None:
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

    def do_POST(self) -> None:
        if self.path.split("?")[0].rstrip("/") != "/v1":
            self._json(404, {"errors": [error_dict("notFound", "POST tasks to /v1")]}, close=True)
            return
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or length is None or not length.isdigit():
            self._json(
                411, {"errors": [error_dict("lengthRequired", "send the body with a Content-Length")]}, close=True
            )
            return
        limit = self.service.config.max_body_bytes
        if int(length) > limit:  # refuse before reading: the connection closes instead
            self._json(
                413,
                {
                    "errors": [
                        error_dict("payloadTooLarge", f"the request body is larger than {limit // MiB} MiB", "tasks")
                    ]
                },
                close=True,
            )
            return
        body = self.rfile.read(int(length))
        start = time.perf_counter()
        status, payload, headers = self.service.handle(body, self.headers.get("Authorization"), self._base_url())
        self._json(status, payload, headers)
        # an access line for operators: counts and timing only, never headers or task contents
        log.info(
            "POST /v1 %d from %s: %d results, %d errors, %.0f ms",
            status,
            self.client_address[0],
            len(payload.get("data", [])),
            len(payload.get("errors", [])),
            1000 * (time.perf_counter() - start),
        )

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/health":
            self._json(200, {"status": "ok"})
            return
        match = IMAGE_PATH.match(path)
        data = self.service.masks.get(f"{match.group(1)}.{match.group(2)}") if match else None
        if data is None:
            self._json(404, {"errors": [error_dict("notFound", "no such image (masks are kept for a limited time)")]})
            return
        assert match is not None  # data was found by it
        self._send(200, data, CONTENT_TYPES[match.group(2)], {"Cache-Control": "private, max-age=3600"})

    def _base_url(self) -> str:
        if self.service.config.public_url:
            return self.service.config.public_url.rstrip("/")
        own = f"{self.server.server_address[0]!s}:{self.server.server_address[1]!s}"  # type: ignore[index]
        host = self.headers.get("Host") or own
        if not re.fullmatch(r"[A-Za-z0-9.\-:\[\]]+", host):  # a Host header is client input
            host = own
        return f"http://{host}"


_BUSY_BODY = json.dumps({"errors": [error_dict("serviceBusy", "too many connections; retry shortly")]}).encode()
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(_BUSY_BODY)
) + _BUSY_BODY


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
    host, port = str(server.server_address[0]), server.server_address[1]
    if not config.keys() and config.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s without --api-key: anyone who can reach it can use it", config.host)
    print(
        f"MaskMargin Image Masking API on http://{host}:{port}/v1 "
        f"(key {'required' if config.keys() else 'not required'})",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
