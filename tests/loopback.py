"""Loopback HTTP servers for tests: a scripted fake of the Image Masking API, and helpers.

`ScriptedAPI` answers each request with the next entry of a script. An entry is a callable
`(request) -> Reply | DROP`; `Reply` carries status, headers and body. `DROP` closes the connection
without an answer (a dropped connection). Every request is recorded (method, path, headers, body).
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from maskmargin.service.core import ServiceConfig
from maskmargin.service.server import MaskingServer

DROP = object()


@dataclass
class Request:
    method: str
    path: str
    headers: dict
    body: bytes
    connection: object = field(default=None, repr=False)  # the socket, to watch for a client hanging up

    def tasks(self) -> list:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes | dict | list = b""
    headers: dict = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, (dict, list)):
            return json.dumps(self.body).encode(), "application/json"
        return self.body, self.headers.get("Content-Type", "text/plain")


@dataclass
class Stream:
    """A reply whose body is written chunk by chunk (`pause` seconds between chunks): a trickling or an
    endless answer. `length` is the Content-Length to announce (None: read until the connection closes).
    `sent` counts the body bytes the client took before it hung up."""

    chunks: Iterable[bytes]
    status: int = 200
    headers: dict = field(default_factory=dict)
    length: int | None = None
    pause: float = 0.0
    sent: int = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: ScriptedAPI

    def log_message(self, *args) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(self.command, self.path, dict(self.headers), body, self.connection)
        reply = self.owner.next_reply(request)
        if reply is DROP:
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if isinstance(reply, Stream):
            self._stream(reply)
            return
        data, kind = reply.encoded()
        self.send_response(reply.status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        for k, v in reply.headers.items():
            if k != "Content-Type":
                self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:
            pass

    def _stream(self, reply: Stream) -> None:
        self.send_response(reply.status)
        for k, v in ({"Content-Type": "application/json"} | reply.headers).items():
            self.send_header(k, v)
        if reply.length is not None:
            self.send_header("Content-Length", str(reply.length))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for chunk in reply.chunks:
                self.wfile.write(chunk)
                self.wfile.flush()
                reply.sent += len(chunk)
                if reply.pause:
                    time.sleep(reply.pause)
        except OSError:  # the client hung up: what a capped or timed-out reader does
            pass

    do_GET = do_POST = do_PUT = _serve


class ScriptedAPI:
    """A loopback server answering from `script` (the last entry repeats when the script runs out)."""

    def __init__(self, script: list[Callable[[Request], object]] | None = None):
        self.script = list(script or [])
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        handler = type("H", (_Handler,), {"owner": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def next_reply(self, request: Request):
        with self.lock:
            self.requests.append(request)
            step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return step(request)

    def __enter__(self) -> ScriptedAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def input_size(task: dict) -> tuple[int, int]:
    """(width, height) of a task's data-URI input image."""
    data = base64.b64decode(task["inputImage"].partition(",")[2])
    return Image.open(io.BytesIO(data)).size


def box_mask(width: int, height: int, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    for x0, y0, x1, y1 in boxes:
        mask[y0:y1, x0:x1] = 255
    return mask


def masking_answer(
    boxes=((10, 20, 30, 50),),
    output: str = "base64Data",
    mask_size=None,
    url_base: str = "",
    cost: float | None = 0.0013,
) -> Callable[[Request], Reply]:
    """A step answering an imageMasking task with box-shaped detections (in the mask's pixels)."""

    def step(request: Request) -> Reply:
        task = request.tasks()[-1]
        w, h = mask_size or input_size(task)
        png = png_bytes(box_mask(w, h, list(boxes)))
        result = {
            "taskType": "imageMasking",
            "taskUUID": task["taskUUID"],
            "inputImageUUID": "0b0e4f6a-3d1c-4c47-9a43-7d0d5ad0b001",
            "detections": [dict(zip(("x_min", "y_min", "x_max", "y_max"), b)) for b in boxes],
            "maskImageUUID": "7f6d3e7a-1d2c-4b4e-8f0a-5c2b9b1d0c02",
        }
        if cost is not None:
            result["cost"] = cost
        if output == "base64Data":
            result["maskImageBase64Data"] = base64.b64encode(png).decode()
        elif output == "dataURI":
            result["maskImageDataURI"] = "data:image/png;base64," + base64.b64encode(png).decode()
        else:
            MASKS[url_base + "/mask.png"] = png
            result["maskImageURL"] = url_base + "/mask.png"
        return Reply(200, {"data": [result]})

    return step


MASKS: dict[str, bytes] = {}


def serve_mask(request: Request) -> Reply:
    for url, png in MASKS.items():
        if url.endswith(request.path):
            return Reply(200, png, {"Content-Type": "image/png"})
    return Reply(404, b"no")


def reply(status: int, body=b"", **headers) -> Callable[[Request], Reply]:
    return lambda request: Reply(status, body, {k.replace("_", "-"): v for k, v in headers.items()})


def wait_for_hangup(request: Request, seconds: float = 10) -> bool:
    """True once the client closes the request's connection (an empty read), False after `seconds`."""
    import select
    import socket
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        readable, _, _ = select.select([request.connection], [], [], 0.05)
        if readable:
            try:
                if request.connection.recv(1, socket.MSG_PEEK) == b"":
                    return True
            except OSError:
                return True
    return False


def drop(request: Request):
    return DROP


SERVICE_KEY = "svc-key-0a9b8c7d6e5f"  # the key of the `service` fixture's server


class Service:
    """The real service (aiohttp, REST and WebSocket) on a free port, its event loop in a thread.

    `store_dir` defaults to a fresh temporary folder (uploads are files): pass one to share it
    between two services (a restart).
    """

    def __init__(self, **config):
        import asyncio
        import tempfile

        self.key = config.get("api_key")
        if "store_dir" not in config:
            self._tmp = tempfile.TemporaryDirectory(prefix="maskmargin-store-")
            config["store_dir"] = Path(self._tmp.name)
        self.server = MaskingServer(ServiceConfig(port=0, **config))
        self.service = self.server.service
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.server.start())
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        started.wait(30)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1"

    def post(self, tasks, key: str | None | object = DROP, **kwargs) -> httpx.Response:
        """POST tasks with this service's key (or `key`; None sends no key)."""
        key = self.key if key is DROP else key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        body = tasks if isinstance(tasks, bytes) else json.dumps(tasks).encode()
        return httpx.post(self.url, content=body, headers=headers, timeout=60, **kwargs)

    def close(self) -> None:
        import asyncio

        async def stop() -> None:
            await self.server.stop()
            for task in asyncio.all_tasks():  # connections still lingering over a refused body
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()
