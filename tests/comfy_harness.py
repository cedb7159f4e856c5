"""Run a real ComfyUI server with this pack installed, for integration tests.

Point ``COMFYUI_DIR`` at a ComfyUI checkout (0.8.0 or later) and, when ComfyUI's dependencies live in
another environment, ``COMFYUI_PYTHON`` at that environment's interpreter (default: the interpreter
running pytest). Tests get a started server through the session-scoped ``comfy`` fixture
(``tests/conftest.py``), which skips when ``COMFYUI_DIR`` is not set.

The server runs with ``--base-directory`` pointing at a fresh temporary folder::

    <base>/custom_nodes/MaskMargin -> this repository (symlink)
    <base>/models/ultralytics/bbox, <base>/models/ultralytics/segm
    <base>/models/mediapipe -> this repository's models/mediapipe (symlink; `make mediapipe-files` fills it)
    <base>/input, <base>/output, <base>/temp, <base>/user (its sqlite database too)
    <base>/comfyui.log                     stdout and stderr of the server

so nothing is written into the ComfyUI checkout (Python's bytecode cache is redirected with
``PYTHONPYCACHEPREFIX`` as well).

Other environment variables:

- ``COMFYUI_ARGS``: device arguments, default ``--cpu``; set it to an empty string to use a GPU.
- ``COMFYUI_START_TIMEOUT``: seconds to wait for the server, default 120.

This module imports only the standard library (and pytest), so collecting the engine tests never
needs ComfyUI, torch or PIL.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
PACK_NAME = "MaskMargin"
DEFAULT_START_TIMEOUT = 120.0

# ComfyUI 0.8.0, nodes.py: one line per custom node in the "Import times for custom nodes:" block,
# e.g. "   0.3 seconds (IMPORT FAILED): /tmp/x/custom_nodes/MaskMargin".
_IMPORT_TIME_LINE = re.compile(r"^\s*\d+(?:\.\d+)? seconds( \(IMPORT FAILED\))?: (.+?)\s*$")


class ComfyError(RuntimeError):
    """A ComfyUI request or run failed; the message ends with the tail of the server log."""


class ComfyUnavailable(Exception):
    """No usable ComfyUI checkout is configured (the ``comfy`` fixture turns this into a skip)."""


# --------------------------------------------------------------------------------------------------
# Configuration


def comfyui_dir_from_env() -> Path:
    """The checkout named by ``COMFYUI_DIR``; raises ComfyUnavailable when unset or not ComfyUI."""
    value = os.environ.get("COMFYUI_DIR", "").strip()
    if not value:
        raise ComfyUnavailable("COMFYUI_DIR not set")
    path = Path(value).expanduser().resolve()
    if not all((path / name).exists() for name in ("main.py", "nodes.py", "folder_paths.py", "comfy")):
        raise ComfyUnavailable(f"COMFYUI_DIR={value} is not a ComfyUI checkout")
    return path


def comfyui_python_from_env() -> str:
    """``COMFYUI_PYTHON`` if set (must be an executable), else the interpreter running the tests."""
    value = os.environ.get("COMFYUI_PYTHON", "").strip()
    if not value:
        return sys.executable
    path = shutil.which(value) or value
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise ComfyError(f"COMFYUI_PYTHON={value} is not an executable")
    return path


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: have the kernel SIGTERM the server if the test process dies without cleaning up."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------------------------------
# Log checks (pure functions: usable on any ComfyUI log text)


def log_tail(text: str, lines: int = 80) -> str:
    return "\n".join(text.splitlines()[-lines:])


def custom_node_import_results(log_text: str) -> dict[str, bool]:
    """Map custom node path -> imported successfully, from the "Import times" block of the log."""
    results: dict[str, bool] = {}
    for line in log_text.splitlines():
        match = _IMPORT_TIME_LINE.match(line)
        if match:
            results[match.group(2)] = match.group(1) is None
    return results


def _pack_failure_context(log_text: str, pack_name: str) -> str:
    """The traceback and warnings ComfyUI logged for the pack (what to show when it failed)."""
    lines = log_text.splitlines()
    pattern = re.compile(
        r"(Cannot import|Skip|Error while calling comfy_entrypoint in|comfy_entrypoint in) "
        r"\S*" + re.escape(os.sep + pack_name) + r"\b"
    )
    chunks = []
    for index, line in enumerate(lines):
        if not pattern.search(line):
            continue
        start = index
        for back in range(index, max(-1, index - 200), -1):
            if lines[back].startswith("Traceback (most recent call last)"):
                start = back
                break
        chunks.append("\n".join(lines[start : index + 1]))
    return "\n\n".join(chunks)


def assert_pack_loaded(log_text: str, pack_name: str = PACK_NAME) -> None:
    """Assert the server log shows the custom node ``pack_name`` imported without failure.

    ComfyUI logs one "Import times for custom nodes" line per custom node, with "(IMPORT FAILED)"
    when the import raised, the pack had no NODE_CLASS_MAPPINGS / comfy_entrypoint, or its
    comfy_entrypoint failed; "Cannot import <path> module for custom nodes" follows a traceback.
    """
    results = {
        path: ok
        for path, ok in custom_node_import_results(log_text).items()
        if os.path.basename(path.rstrip("/\\")) in (pack_name, pack_name + ".py")
    }
    context = _pack_failure_context(log_text, pack_name)
    if not results:
        raise AssertionError(
            f"custom node {pack_name!r} is not in ComfyUI's import times list "
            f"(not installed, or the server did not finish loading custom nodes)\n"
            f"{context or log_tail(log_text, 60)}"
        )
    failed = [path for path, ok in results.items() if not ok]
    if failed or context:
        raise AssertionError(
            f"custom node {pack_name!r} failed to load ({', '.join(failed) or 'see log'}):\n"
            f"{context or log_tail(log_text, 60)}"
        )


# --------------------------------------------------------------------------------------------------
# History parsing (pure functions)


def execution_error(history: dict) -> dict | None:
    """The ``execution_error`` / ``execution_interrupted`` message of a history entry, if any."""
    status = history.get("status") or {}
    for message in status.get("messages") or []:
        if isinstance(message, (list, tuple)) and len(message) == 2:
            event, data = message
            if event in ("execution_error", "execution_interrupted"):
                return {"event": event, **(data or {})}
    if status.get("status_str") == "error":
        return {"event": "execution_error", "exception_message": "status_str is 'error'"}
    return None


def format_execution_error(error: dict) -> str:
    if error.get("event") == "execution_interrupted":
        return f"execution interrupted at node {error.get('node_id')} ({error.get('node_type')})"
    traceback = "".join(error.get("traceback") or [])
    return (
        f"node {error.get('node_id')} ({error.get('node_type')}) raised "
        f"{error.get('exception_type')}: {error.get('exception_message')}\n{traceback}"
    ).rstrip()


def output_entries(history: dict) -> Iterator[tuple[str, str, dict]]:
    """(node_id, key, file entry) for each file a node reported (images, gifs, audio, 3d...)."""
    for node_id, outputs in (history.get("outputs") or {}).items():
        for key, items in (outputs or {}).items():
            if isinstance(items, list):
                for item in items:
                    if isinstance(item, dict) and "filename" in item:
                        yield node_id, key, item


# --------------------------------------------------------------------------------------------------
# The server


class ComfyServer:
    """A ComfyUI server subprocess with its own base directory; this pack installed by symlink."""

    def __init__(
        self,
        comfyui_dir: Path | str,
        python: str | None = None,
        base_dir: Path | str | None = None,
        pack_dir: Path | str = REPO_ROOT,
        pack_name: str = PACK_NAME,
        device_args: list[str] | None = None,
        extra_args: list[str] | None = None,
        extra_env: dict[str, str] | None = None,
    ):
        self.comfyui_dir = Path(comfyui_dir).resolve()
        self.python = python or sys.executable
        self._own_base = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="maskmargin-comfyui-")).resolve()
        self.pack_dir = Path(pack_dir).resolve()
        self.pack_name = pack_name
        if device_args is None:
            device_args = shlex.split(os.environ.get("COMFYUI_ARGS", "--cpu"))
        self.device_args = device_args
        self.extra_args = list(extra_args or [])
        self.extra_env = dict(extra_env or {})
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.log_path = self.base_dir / "comfyui.log"
        self._log_file = None

    # ---- folders -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def input_dir(self) -> Path:
        return self.base_dir / "input"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    @property
    def temp_dir(self) -> Path:
        return self.base_dir / "temp"

    @property
    def models_dir(self) -> Path:
        return self.base_dir / "models"

    @property
    def pack_link(self) -> Path:
        return self.base_dir / "custom_nodes" / self.pack_name

    def _prepare_base(self) -> None:
        for sub in (
            "custom_nodes",
            "models/ultralytics/bbox",
            "models/ultralytics/segm",
            "input",
            "output",
            "temp",
            "user",
        ):
            (self.base_dir / sub).mkdir(parents=True, exist_ok=True)
        if not self.pack_link.is_symlink():
            self.pack_link.symlink_to(self.pack_dir, target_is_directory=True)
        # MediaPipe's .tflite files where a user's install.py puts them (ComfyUI's models/mediapipe)
        mediapipe = self.pack_dir / "models" / "mediapipe"
        link = self.models_dir / "mediapipe"
        if mediapipe.is_dir() and not link.exists():
            link.symlink_to(mediapipe, target_is_directory=True)

    # ---- lifecycle -----------------------------------------------------------------------------

    def command(self) -> list[str]:
        database = self.base_dir / "user" / "comfyui.db"
        return [
            self.python,
            "main.py",
            *self.device_args,
            "--listen", "127.0.0.1",
            "--port", str(self.port),
            "--disable-auto-launch",
            "--disable-api-nodes",
            "--log-stdout",
            "--base-directory", str(self.base_dir),
            # ComfyUI 0.8.0 keeps its database in <checkout>/user even with --base-directory.
            "--database-url", f"sqlite:///{database}",
            *self.extra_args,
        ]  # fmt: skip

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        # Keep __pycache__ out of the ComfyUI checkout and this repository; reuse it across runs.
        env.setdefault("PYTHONPYCACHEPREFIX", os.path.join(tempfile.gettempdir(), "maskmargin-comfyui-pycache"))
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = DEFAULT_START_TIMEOUT, attempts: int = 3) -> ComfyServer:
        for attempt in range(attempts):
            self._prepare_base()
            self.port = free_port()
            self._log_file = open(self.log_path, "ab")
            self._log_file.write(f"$ {shlex.join(self.command())}\n".encode())
            self._log_file.flush()
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.comfyui_dir,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
            try:
                self._wait_ready(timeout)
                return self
            except ComfyError:
                port_taken = "address already in use" in self.log_text().lower()
                self.stop(remove_base=False)
                if not port_taken or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                raise ComfyError(self._with_log(f"ComfyUI exited with code {code} while starting"))
            try:
                self._request("GET", "/object_info", timeout=30)
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise ComfyError(self._with_log(f"ComfyUI did not answer /object_info within {timeout:.0f} s"))
            time.sleep(0.5)

    def stop(self, remove_base: bool | None = None) -> None:
        """Stop the server (SIGINT, then SIGTERM, then SIGKILL) and remove the pack symlink.

        The base folder (with the log) is removed only when this object created it and
        ``remove_base`` is not False.
        """
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            if os.name == "nt":
                steps = [(proc.terminate, 10), (proc.kill, 10)]
            else:  # SIGINT first: ComfyUI then cleans its temp folder and says "Stopped server"
                steps = [(lambda: proc.send_signal(signal.SIGINT), 10), (proc.terminate, 10), (proc.kill, 10)]
            for send, wait in steps:
                try:
                    send()
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
                except ProcessLookupError:
                    break
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self.pack_link.is_symlink():
            self.pack_link.unlink()
        if remove_base is None:
            remove_base = self._own_base
        if remove_base:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> ComfyServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- log -----------------------------------------------------------------------------------

    def log_text(self) -> str:
        if self._log_file is not None:
            self._log_file.flush()
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 80) -> str:
        return log_tail(self.log_text(), lines)

    def _with_log(self, message: str, lines: int = 80) -> str:
        return f"{message}\n--- ComfyUI log ({self.log_path}), last {lines} lines ---\n{self.log_tail(lines)}"

    def assert_pack_loaded(self) -> None:
        assert_pack_loaded(self.log_text(), self.pack_name)

    # ---- HTTP ----------------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: Any = None, timeout: float = 60) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def get(self, path: str, timeout: float = 60) -> Any:
        return self._request("GET", path, timeout=timeout)

    def post(self, path: str, body: Any = None, timeout: float = 60) -> Any:
        return self._request("POST", path, body if body is not None else {}, timeout=timeout)

    def object_info(self, node_class: str | None = None) -> dict:
        """``/object_info`` (all nodes) or ``/object_info/<node_class>`` (that node, or {})."""
        if node_class is None:
            return self.get("/object_info")
        return self.get("/object_info/" + urllib.parse.quote(node_class, safe=""))

    def queue_prompt(self, graph: dict, client_id: str | None = None) -> str:
        """Queue an API-format graph; returns its prompt_id. Raises ComfyError when rejected."""
        body = {"prompt": graph, "client_id": client_id or uuid.uuid4().hex}
        try:
            answer = self.post("/prompt", body)
        except urllib.error.HTTPError as err:
            detail = err.read().decode("utf-8", errors="replace")
            try:
                detail = json.dumps(json.loads(detail), indent=1)
            except ValueError:
                pass
            raise ComfyError(self._with_log(f"ComfyUI rejected the prompt (HTTP {err.code}):\n{detail}", 30)) from None
        return answer["prompt_id"]

    def history(self, prompt_id: str) -> dict | None:
        return self.get("/history/" + urllib.parse.quote(prompt_id, safe="")).get(prompt_id)

    def wait_for(self, prompt_id: str, timeout: float = 300) -> dict:
        """Wait for a queued prompt to finish; returns its history entry.

        Raises ComfyError (with the node's traceback and the log tail) when execution failed or was
        interrupted, when the server died, or after ``timeout`` seconds (the prompt is then
        interrupted and dropped from the queue so later tests do not wait on it).
        """
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise ComfyError(self._with_log(f"ComfyUI is not running (prompt {prompt_id})"))
            entry = self.history(prompt_id)
            if entry is not None:
                error = execution_error(entry)
                if error is not None:
                    raise ComfyError(self._with_log(f"prompt {prompt_id} failed: {format_execution_error(error)}", 40))
                return entry
            if time.monotonic() > deadline:
                try:
                    self.post("/queue", {"delete": [prompt_id]})
                    self.post("/interrupt", {"prompt_id": prompt_id})
                except (urllib.error.URLError, OSError):
                    pass
                raise ComfyError(self._with_log(f"prompt {prompt_id} did not finish within {timeout:.0f} s"))
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def run(self, graph: dict, timeout: float = 300) -> dict:
        """queue_prompt + wait_for."""
        return self.wait_for(self.queue_prompt(graph), timeout)

    def output_files(self, history: dict) -> list[Path]:
        """Paths of the files the run's nodes reported (SaveImage's ``images`` and the like)."""
        roots = {"output": self.output_dir, "temp": self.temp_dir, "input": self.input_dir}
        paths = []
        for _node, _key, item in output_entries(history):
            root = roots.get(item.get("type", "output"), self.output_dir)
            paths.append(root / (item.get("subfolder") or "") / item["filename"])
        return paths

    def saved_images(self, history: dict, node_id: str) -> list[Any]:
        """The images one node (SaveImage, PreviewImage) wrote in a run, as numpy arrays, in its order."""
        import numpy as np
        from PIL import Image

        entries = history["outputs"][node_id]["images"]
        roots = {"output": self.output_dir, "temp": self.temp_dir, "input": self.input_dir}
        return [
            np.asarray(
                Image.open(roots.get(e.get("type", "output"), self.output_dir) / e.get("subfolder", "") / e["filename"])
            )
            for e in entries
        ]

    # ---- inputs --------------------------------------------------------------------------------

    def put_input_image(self, name: str, image: Any) -> str:
        """Write an image into input/ for LoadImage; ``image`` is a path, a PIL image or an array
        (HxW or HxWxC, uint8 or float in 0..1). Returns ``name``."""
        target = self.input_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(image, (str, os.PathLike)):
            shutil.copyfile(image, target)
            return name
        from PIL import Image  # lazy: the harness itself needs only the standard library

        if not isinstance(image, Image.Image):
            import numpy as np

            array = np.asarray(image)
            if array.dtype != np.uint8:
                array = (np.clip(array, 0, 1) * 255 + 0.5).astype(np.uint8)
            image = Image.fromarray(array)
        image.save(target)
        return name


def start_from_env(base_dir: Path | str | None = None, **kwargs) -> ComfyServer:
    """Start a server for the checkout in COMFYUI_DIR (raises ComfyUnavailable when there is none)."""
    comfyui_dir = comfyui_dir_from_env()
    timeout = float(os.environ.get("COMFYUI_START_TIMEOUT", DEFAULT_START_TIMEOUT))
    server = ComfyServer(comfyui_dir, python=comfyui_python_from_env(), base_dir=base_dir, **kwargs)
    try:
        return server.start(timeout=timeout)
    except BaseException:
        server.stop(remove_base=False)
        raise
