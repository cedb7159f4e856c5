"""`python -m maskmargin serve`: the service core over REST and WebSocket, on aiohttp.

Routes: `POST /v1` (a JSON array of tasks in, `{"data": [...]}` / `{"errors": [...]}` out), `GET /v1`
upgraded to a WebSocket (Runware's framing: an authentication frame first, then arrays of tasks,
results as frames keyed by taskUUID, pings answered at once), `GET`/`HEAD /v1/images/<uuid>.<ext>`
(mask URLs and uploaded images) and `GET /health`.

aiohttp owns the HTTP framing (one Content-Length, ASCII digits, header sizes); this module adds what a
shared service needs around it, each refusal an HTTP answer in the API's error shape:
- the key is checked before the body is read (Bearer header) or from a bounded prefix of it (a leading
  authentication task), so keyless clients cannot make the service hold their bodies;
- a whole-request deadline (from a request's first byte until its body is in) and an idle deadline per
  connection, so slow senders are cut while everyone else keeps being served;
- a cap on open connections, the body limit before reading, and the work itself on threads, off the loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import WSMsgType, web, web_protocol, web_server

from ..api_tasks import error_dict
from ..images import FORMATS
from .core import AUTH_PREFIX_BYTES, MaskingService, MiB, ServiceConfig

log = logging.getLogger("maskmargin.server")

CONTENT_TYPES = {f.extension: f.mime for f in FORMATS.values()}
IMAGE_PATH = re.compile(rf"^/v1/images/([0-9a-f-]{{36}})\.({'|'.join(CONTENT_TYPES)})$")
ASCII_DIGITS = re.compile(r"[0-9]{1,15}")
LIGHT_TASKS = ("ping", "getResponse", "authentication")  # answered on the event loop, at once
LIGHT_FRAME_BYTES = 64 * 1024
SWEEP_SECONDS = 0.25
MAX_UNAUTHENTICATED = 16  # WebSocket connections at once that have not sent their key yet
TIMEOUT: Any = "\x00timeout"  # receive()'s answer when no frame came in time (no frame is this text)


def error_body(code: str, message: str, parameter: str | None = None) -> bytes:
    return json.dumps({"errors": [error_dict(code, message, parameter)]}).encode()


def raw_answer(status: int, reason: str, body: bytes, extra: str = "") -> bytes:
    """A whole HTTP/1.1 answer written straight to a socket (no request object exists yet)."""
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"{extra}Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


BUSY = raw_answer(
    503,
    "Service Unavailable",
    error_body("serviceBusy", "too many connections; retry shortly"),
    "Retry-After: 1\r\n",
)


def json_response(status: int, payload: dict, headers: dict | None = None, close: bool = False) -> web.Response:
    response = web.Response(
        status=status, body=json.dumps(payload).encode(), content_type="application/json", headers=headers
    )
    if close:  # said in a header too: the client knows not to reuse the connection
        response.force_close()
        response.headers["Connection"] = "close"
    return response


def refusal(status: int, code: str, message: str, parameter: str | None = None, **headers: str) -> web.Response:
    return json_response(status, {"errors": [error_dict(code, message, parameter)]}, headers or None, close=True)


class ServiceProtocol(web_protocol.RequestHandler):
    """aiohttp's connection handler plus the service's connection cap, deadlines and error shape."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        owner: ServiceServer = self._manager  # type: ignore[assignment]
        self.started_at: float | None = None  # first byte of the request under way (None: idle)
        self.busy = False  # a handler is working on a request (it keeps its own deadline)
        self.cut = False
        super().connection_made(transport)
        if len(owner.connections) > owner.config.max_connections:
            self.cut = True
            transport.write(BUSY)  # type: ignore[attr-defined]
            transport.close()

    def data_received(self, data: bytes) -> None:
        if self.started_at is None and not self.busy:
            self.started_at = time.monotonic()
        super().data_received(data)

    def overdue(self, now: float, limit: float) -> bool:
        return not self.busy and not self.cut and self.started_at is not None and now - self.started_at > limit

    def cut_slow(self) -> None:
        """Answer 408 to a request whose headers did not arrive in time, and close."""
        self.cut = True
        transport = self.transport
        if transport is not None:
            transport.write(
                raw_answer(408, "Request Timeout", error_body("requestTimeout", "the request took too long to arrive"))
            )
            transport.close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's refusals (malformed or duplicate headers, bad framing) in the API's error shape."""
        if status >= 500:
            log.error("error handling a request from %s", request.remote, exc_info=exc)
            code, text = "internalError", "the service failed on this request"
        else:
            detail = (message or getattr(exc, "message", "") or str(status)).splitlines()[0].rstrip(": ")
            code, text = "badRequest", f"malformed HTTP request: {detail}"
        return refusal(status, code, text)


class ServiceServer(web_server.Server):
    """The low-level aiohttp server whose connections are `ServiceProtocol`s."""

    def __init__(self, handler: Any, config: ServiceConfig, **kwargs: Any):
        super().__init__(handler, **kwargs)
        self.config = config

    def __call__(self) -> ServiceProtocol:
        return ServiceProtocol(self, loop=self._loop, **self._kwargs)


class MaskingServer:
    """The service on a socket: `await start()`, then `port`; `await stop()`."""

    def __init__(self, config: ServiceConfig, service: MaskingService | None = None):
        self.config = config
        self.service = service or MaskingService(config)
        # threads that run tasks: those past max_concurrency wait for a slot (then 503)
        self.pool = ThreadPoolExecutor(max(32, 4 * config.max_concurrency), thread_name_prefix="maskmargin")
        self.port = config.port
        self._runner: web.ServerRunner | None = None
        self._sweeper: asyncio.Task | None = None
        self.unauthenticated = 0

    async def start(self) -> None:
        cfg = self.config
        self.server = ServiceServer(
            self._dispatch,
            cfg,
            keepalive_timeout=max(cfg.idle_timeout, cfg.request_timeout + 1),
            # read (and drop) the rest of a refused body, so its sender gets the answer (no broken pipe);
            # shorter than the deadline, so the sweeper never answers a lingering connection twice
            lingering_time=min(10.0, cfg.request_timeout / 2),
            access_log=None,
        )
        self._runner = web.ServerRunner(self.server, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.host, cfg.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._sweeper = asyncio.create_task(self._sweep())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.service.close()

    async def _sweep(self) -> None:
        """Cut connections whose request headers are overdue (handlers keep their own body deadline)."""
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            now = time.monotonic()
            for protocol in self.server.connections:
                if isinstance(protocol, ServiceProtocol) and protocol.overdue(now, self.config.request_timeout):
                    protocol.cut_slow()

    # --- routing ------------------------------------------------------------------------------------

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        protocol = request.protocol
        if isinstance(protocol, ServiceProtocol):
            protocol.busy = True
        try:
            path, method = request.path, request.method
            if path.rstrip("/") == "/v1":
                if method == "POST":
                    return await self._post(request)
                if method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket":
                    return await self._websocket(request)
                return refusal(405, "methodNotAllowed", "POST tasks to /v1, or open a WebSocket on it")
            if path == "/health" and method in ("GET", "HEAD"):
                return json_response(200, {"status": "ok"})
            match = IMAGE_PATH.match(path)
            if match and method in ("GET", "HEAD"):
                return self._image(match.group(1), match.group(2))
            return refusal(404, "notFound", "no such route: POST tasks to /v1")
        finally:
            if isinstance(protocol, ServiceProtocol):
                protocol.busy = False
                protocol.started_at = None

    def _image(self, image_uuid: str, ext: str) -> web.StreamResponse:
        headers = {"Cache-Control": "private, max-age=3600"}
        data = self.service.masks.get(f"{image_uuid}.{ext}")
        if data is not None:
            return web.Response(body=data, content_type=CONTENT_TYPES[ext], headers=headers)
        path = self.service.images.file(image_uuid)
        if path is not None and path.name == f"{image_uuid}.{ext}":
            return web.FileResponse(path, headers=headers | {"Content-Type": CONTENT_TYPES[ext]})
        return json_response(
            404, {"errors": [error_dict("notFound", "no such image (images are kept for a limited time)")]}
        )

    def _base_url(self, request: web.BaseRequest) -> str:
        if self.config.public_url:
            return self.config.public_url.rstrip("/")
        own = f"{self.config.host}:{self.port}"
        host = request.headers.get("Host") or own
        if not re.fullmatch(r"[A-Za-z0-9.\-:\[\]]+", host):  # a Host header is client input
            host = own
        return f"http://{host}"

    def _deadline(self, request: web.BaseRequest) -> float:
        protocol = request.protocol
        started = getattr(protocol, "started_at", None) or time.monotonic()
        return started + self.config.request_timeout

    # --- REST ---------------------------------------------------------------------------------------

    async def _post(self, request: web.BaseRequest) -> web.StreamResponse:
        start = time.perf_counter()
        lengths = request.headers.getall("Content-Length", [])
        if len(lengths) > 1:
            return refusal(400, "badRequest", "more than one Content-Length header")
        if request.headers.get("Transfer-Encoding") or not lengths or not ASCII_DIGITS.fullmatch(lengths[0]):
            return refusal(411, "lengthRequired", "send the body with one Content-Length of ASCII digits")
        length, limit = int(lengths[0]), self.config.max_body_bytes
        if length > limit:
            return refusal(413, "payloadTooLarge", f"the request body is larger than {limit // MiB} MiB", "tasks")
        authorization = request.headers.get("Authorization")
        service = self.service
        owner = None
        if not service.key_required() or service.bearer(authorization) is not None:
            denied, owner = service.check_key(service.bearer(authorization))
            if denied is not None:  # before a byte of the body is read
                return json_response(401, {"errors": [denied]}, close=True)
        if request.headers.get("Expect", "").lower() == "100-continue":  # curl's way for bodies over 1 KiB
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        remaining = max(0.0, self._deadline(request) - time.monotonic())
        try:
            if owner is None:  # the key must be in a leading authentication task: read only its bytes
                head = await asyncio.wait_for(request.content.readexactly(min(length, AUTH_PREFIX_BYTES)), remaining)
                auth_task = service.prefix_auth_task(head)
                supplied = auth_task.get("apiKey") if auth_task is not None else None
                denied, owner = service.check_key(supplied if isinstance(supplied, str) else None, auth_task)
                if denied is not None:
                    return json_response(401, {"errors": [denied]}, close=True)
                remaining = max(0.0, self._deadline(request) - time.monotonic())
                body = head + await asyncio.wait_for(request.content.readexactly(length - len(head)), remaining)
            else:
                body = await asyncio.wait_for(request.content.readexactly(length), remaining)
        except asyncio.TimeoutError:
            return refusal(
                408, "requestTimeout", f"the request body did not arrive within {self.config.request_timeout:g} s"
            )
        except asyncio.IncompleteReadError:
            return refusal(400, "badRequest", "the body ended before its Content-Length")
        base_url = self._base_url(request)
        if _light(body):
            status, payload, headers = service.handle(body, authorization, base_url, owner)
        else:
            loop = asyncio.get_running_loop()
            status, payload, headers = await loop.run_in_executor(
                self.pool, service.handle, body, authorization, base_url, owner
            )
        # an access line for operators: counts and timing only, never headers or task contents
        log.info(
            "POST /v1 %d from %s: %d results, %d errors, %.0f ms",
            status,
            request.remote,
            len(payload.get("data", [])),
            len(payload.get("errors", [])),
            1000 * (time.perf_counter() - start),
        )
        return json_response(status, payload, headers)

    # --- WebSocket ----------------------------------------------------------------------------------

    async def _websocket(self, request: web.BaseRequest) -> web.StreamResponse:
        service = self.service
        bearer = service.bearer(request.headers.get("Authorization"))
        if bearer is not None:  # a key on the upgrade request is checked before anything is read
            denied, _ = service.check_key(bearer)
            if denied is not None:
                return json_response(401, {"errors": [denied]}, close=True)
        elif self.unauthenticated >= MAX_UNAUTHENTICATED:  # each may send one frame up to the limit
            return refusal(503, "serviceBusy", "too many connections waiting to authenticate", **{"Retry-After": "1"})
        # no permessage-deflate: compressing base64 images costs more CPU than it saves on any network
        ws = web.WebSocketResponse(max_msg_size=self.config.max_body_bytes, autoping=True, compress=False)
        await ws.prepare(request)
        session = _Session(self, ws, self._base_url(request), request.headers.get("Authorization"))
        self.unauthenticated += 1
        counted = True
        try:
            first = await session.receive(self.config.request_timeout)
            self.unauthenticated -= 1
            counted = False
            if await session.authenticate(first):
                await session.run()
        finally:
            if counted:
                self.unauthenticated -= 1
            await session.finish()
        return ws


class _Session:
    """One WebSocket connection: authentication first, then frames of tasks worked on concurrently."""

    def __init__(self, server: MaskingServer, ws: web.WebSocketResponse, base_url: str, authorization: str | None):
        self.server = server
        self.service = server.service
        self.ws = ws
        self.base_url = base_url
        self.authorization = authorization
        self.owner: str | None = None
        self.lock = asyncio.Lock()
        self.loop = asyncio.get_running_loop()
        self.work: set[asyncio.Task] = set()

    async def send(self, payload: dict) -> None:
        if self.ws.closed:
            return
        async with self.lock:
            try:
                await self.ws.send_str(json.dumps(payload))
            except (ConnectionError, RuntimeError):
                pass

    async def receive(self, timeout: float) -> str | None:
        """The next text frame; TIMEOUT after `timeout` seconds; None once the socket closes or errs."""
        try:
            msg = await self.ws.receive(timeout=timeout)
        except asyncio.TimeoutError:
            return TIMEOUT
        if msg.type == WSMsgType.TEXT:
            return msg.data
        if msg.type == WSMsgType.BINARY:
            return msg.data.decode("utf-8", "replace")
        return None  # closed, closing or a protocol error (a frame over the limit is closed with 1009)

    async def authenticate(self, first: str | None) -> bool:
        """Answer the first frame; False (the error sent) when it is missing or its key is missing or wrong."""
        service = self.service
        if first is None:
            return False
        if first is TIMEOUT:
            await self.send({"errors": [error_dict("missingApiKey", "no authentication frame arrived", "apiKey")]})
            return False
        # only a bounded prefix is parsed before the key is known
        auth_task = service.prefix_auth_task(first[:AUTH_PREFIX_BYTES].encode("utf-8", "surrogatepass"))
        bearer = service.bearer(self.authorization)
        supplied = bearer
        if auth_task is not None and isinstance(auth_task.get("apiKey"), str):
            supplied = auth_task["apiKey"]
        if auth_task is None and bearer is None and service.key_required():
            denied: dict | None = error_dict(
                "missingApiKey",
                'the first frame must be [{"taskType": "authentication", "apiKey": "<key>"}]',
                "apiKey",
                {"taskType": "authentication"},
            )
        else:
            denied, self.owner = service.check_key(supplied, auth_task)
        if denied is None and auth_task is not None:
            denied = service.read_auth_task(auth_task)
        if denied is not None:
            await self.send({"errors": [denied]})
            return False
        assert self.owner is not None
        if auth_task is not None and len(first) <= AUTH_PREFIX_BYTES and _count(first) == 1:
            await self.send({"data": [service.authentication_answer(auth_task)]})
        else:  # more tasks in the first frame: worked on like any frame (the authentication answered first)
            await self.frame(first)
        return True

    async def run(self) -> None:
        config = self.server.config
        while not self.ws.closed:
            text = await self.receive(config.idle_timeout)
            if text is TIMEOUT:
                if self.work:
                    continue  # quiet while its tasks run
                return
            if text is None:
                return
            if len(self.work) >= config.max_tasks:
                await self.send({"errors": [error_dict("serviceBusy", "too many frames in flight; wait for answers")]})
                continue
            if _light(text):  # pings, getResponse: answered now, whatever masking is running
                await self.answer(self.service.handle(text, self.authorization, self.base_url, self.owner, self.push))
                continue
            task = asyncio.create_task(self.frame(text))
            self.work.add(task)
            task.add_done_callback(self.work.discard)

    async def frame(self, text: str) -> None:
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(
            self.server.pool, self.service.handle, text, self.authorization, self.base_url, self.owner, self.push
        )
        await self.answer(answer)

    def push(self, payload: dict) -> None:
        """An async task's answer, pushed as soon as it is done (from its worker thread)."""
        loop = self.loop

        def schedule() -> None:
            task = asyncio.ensure_future(self.answer((200, payload, {})))
            self.work.add(task)
            task.add_done_callback(self.work.discard)

        try:
            loop.call_soon_threadsafe(schedule)
        except RuntimeError:  # the service stopped meanwhile: the result stays for getResponse
            pass

    async def answer(self, answer: tuple[int, dict, dict]) -> None:
        """Each result and each error as a frame of its own, keyed by taskUUID (the authentication first)."""
        payload = answer[1]
        for item in payload.get("data", []):
            await self.send({"data": [item]})
        for error in payload.get("errors", []):
            await self.send({"errors": [error]})

    async def finish(self) -> None:
        for task in list(self.work):
            task.cancel()
        if not self.ws.closed:
            await self.ws.close()


def _count(text: str) -> int:
    try:
        tasks = json.loads(text)
    except (ValueError, RecursionError):
        return 0
    return len(tasks) if isinstance(tasks, list) else 0


def _light(body: bytes | str) -> bool:
    """A small request of pings, getResponse and authentication tasks only (answered on the event loop)."""
    if len(body) > LIGHT_FRAME_BYTES:
        return False
    try:
        tasks = json.loads(body)
    except (ValueError, RecursionError):
        return True  # the refusal is cheap too
    if not isinstance(tasks, list):
        return True
    return all(isinstance(t, dict) and t.get("taskType") in LIGHT_TASKS for t in tasks)


def serve(config: ServiceConfig) -> None:
    """Run the service until interrupted; prints the URL line once it listens."""

    async def main() -> None:
        server = MaskingServer(config)
        await server.start()
        if not config.keys() and config.host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("serving on %s without --api-key: anyone who can reach it can use it", config.host)
        print(
            f"MaskMargin Image Masking API on http://{config.host}:{server.port}/v1 "
            f"(key {'required' if config.keys() else 'not required'}), WebSocket ws://{config.host}:{server.port}/v1",
            flush=True,
        )
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
