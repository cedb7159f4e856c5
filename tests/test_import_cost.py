"""Importing the pack is fast and offline: heavy libraries load on first use, never at import.

ComfyUI imports every custom node at start-up, so a slow or network-touching import delays (or, offline,
breaks) the user's whole ComfyUI. Each check runs in a fresh interpreter: the libraries ComfyUI has
already loaded by then (torch, numpy, PIL, ComfyUI itself) are imported first and not counted; then
the socket layer is made to raise and our modules are imported and timed.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from comfy_harness import ComfyUnavailable, comfyui_dir_from_env, comfyui_python_from_env

ROOT = Path(__file__).resolve().parents[1]
LIMIT_SECONDS = 1.0  # the bound for importing the pack
HEAVY = ("mediapipe", "ultralytics", "cv2", "httpx", "skimage", "scipy")

# Every engine module the nodes import at pack import (nodes/*.py), plus the package itself.
ENGINE_MODULES = [
    "maskmargin",
    "maskmargin.crop",
    "maskmargin.detection",
    "maskmargin.errors",
    "maskmargin.images",
    "maskmargin.preview",
    "maskmargin.stitch",
    "maskmargin.backends.base",
    "maskmargin.loader",
    "maskmargin.pipeline",
    "maskmargin.registry",
    "maskmargin.settings",
    "maskmargin.remote.settings",
    "maskmargin.remote.config",
    "maskmargin.remote.detector",
]

SOCKET_GUARD = textwrap.dedent("""
    import socket

    NETWORK = []

    def _refuse(name):
        def refuse(*args, **kwargs):
            NETWORK.append(name + repr(args[1:2] if name.startswith("socket.") else args[:1]))
            raise OSError("network access during import: " + name)
        return refuse

    socket.socket.connect = _refuse("socket.connect")
    socket.socket.connect_ex = _refuse("socket.connect_ex")
    socket.socket.sendto = _refuse("socket.sendto")
    socket.getaddrinfo = _refuse("getaddrinfo")
    socket.gethostbyname = _refuse("gethostbyname")
    socket.create_connection = _refuse("create_connection")
""")

REPORT = textwrap.dedent("""
    import json
    print("RESULT " + json.dumps({
        "seconds": elapsed,
        "heavy": sorted({m.split(".")[0] for m in set(sys.modules) - BEFORE} & set(HEAVY)),
        "network": NETWORK,
        "extra": extra,
    }))
""")


def run_probe(python: str, script: str, cwd: Path, env: dict | None = None) -> dict:
    done = subprocess.run(
        [python, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, f"probe failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-4000:]}"
    return json.loads(lines[-1][len("RESULT ") :])


def pack_import_lines(comfyui: Path, loaded: str) -> list[str]:
    """A probe's lines up to importing the pack root as ComfyUI does, after `loaded` (what ComfyUI has
    imported by then); the timer starts just before the pack's import."""
    return [
        "import asyncio, importlib.util, sys, time",
        f"sys.path.insert(0, {str(comfyui)!r})",
        f"HEAVY = {HEAVY!r}",
        "import utils.extra_config",
        "from comfy.cli_args import args",
        "args.cpu = True",
        "import torch, numpy, PIL.Image",
        loaded,
        "from comfy_api.latest import io",
        SOCKET_GUARD,
        "BEFORE = set(sys.modules)",
        "start = time.perf_counter()",
        f"spec = importlib.util.spec_from_file_location('MaskMargin', {str(ROOT / '__init__.py')!r},"
        f" submodule_search_locations=[{str(ROOT)!r}])",
        "module = importlib.util.module_from_spec(spec)",
        "sys.modules['MaskMargin'] = module",
        "spec.loader.exec_module(module)",
    ]


def test_engine_imports_fast_without_heavy_libraries_or_network():
    script = "\n".join(
        [
            "import sys, time",
            f"sys.path.insert(0, {str(ROOT)!r})",
            f"HEAVY = {HEAVY!r}",
            "import numpy, torch, PIL.Image  # already loaded by ComfyUI when it imports the pack",
            SOCKET_GUARD,
            "BEFORE = set(sys.modules)",
            "start = time.perf_counter()",
            *[f"import {name}" for name in ENGINE_MODULES],
            "elapsed = time.perf_counter() - start",
            "extra = {}",
            REPORT,
        ]
    )
    found = run_probe(sys.executable, script, ROOT)
    assert found["network"] == [], f"importing the engine touched the network: {found['network']}"
    assert found["heavy"] == [], f"imported at import time instead of on first use: {found['heavy']}"
    assert found["seconds"] < LIMIT_SECONDS, f"engine import took {found['seconds']:.3f} s"


@pytest.mark.comfyui
def test_pack_imports_into_comfyui_fast_without_heavy_libraries_or_network():
    """The pack root as ComfyUI loads it (a package named after its folder), nodes listed and described."""
    try:
        comfyui = comfyui_dir_from_env()
    except ComfyUnavailable as reason:
        pytest.skip(str(reason))
    script = "\n".join(
        [
            # What ComfyUI's main.py has imported before it loads custom nodes (utils first, as main.py does).
            *pack_import_lines(
                comfyui, "import comfy.model_management, comfy.utils, folder_paths, server, nodes, execution"
            ),
            "elapsed = time.perf_counter() - start",
            "start = time.perf_counter()",
            "extension = asyncio.run(module.comfy_entrypoint())",
            "node_list = asyncio.run(extension.get_node_list())",
            "schemas = [cls.GET_SCHEMA() for cls in node_list]",
            "extra = {'nodes': [s.node_id for s in schemas], 'web': module.WEB_DIRECTORY,",
            "         'list_seconds': time.perf_counter() - start}",
            REPORT,
        ]
    )
    found = run_probe(comfyui_python_from_env(), script, comfyui)
    assert found["extra"]["nodes"] == [
        "MaskMarginDetectorLoader",
        "MaskMarginImageMask",
        "MaskMarginTrackVideo",
        "MaskMarginSelectRegions",
        "MaskMarginCrop",
        "MaskMarginStitch",
        "MaskMarginRegionPrompts",
        "MaskMarginToSEGS",
        "MaskMarginFromSEGS",
    ]
    assert found["network"] == [], f"importing the pack touched the network: {found['network']}"
    assert found["heavy"] == [], f"imported at pack import instead of on first use: {found['heavy']}"
    assert found["seconds"] < LIMIT_SECONDS, f"pack import took {found['seconds']:.3f} s"


@pytest.mark.comfyui
def test_the_pack_never_imports_comfyuis_server_and_registers_no_routes_without_one():
    """In a process that has ComfyUI's node API but runs no server, loading the pack leaves `server` unloaded."""
    try:
        comfyui = comfyui_dir_from_env()
    except ComfyUnavailable as reason:
        pytest.skip(str(reason))
    script = "\n".join(
        [
            *pack_import_lines(comfyui, "import comfy.model_management, comfy.utils, folder_paths"),
            "extension = asyncio.run(module.comfy_entrypoint())",
            "node_list = asyncio.run(extension.get_node_list())",
            "elapsed = time.perf_counter() - start",
            "from MaskMargin.nodes import comfy_env",
            "extra = {'before': 'server' in BEFORE, 'server': 'server' in sys.modules,",
            "         'routes': comfy_env.server_routes() is None, 'nodes': len(node_list)}",
            REPORT,
        ]
    )
    found = run_probe(comfyui_python_from_env(), script, comfyui)
    assert found["extra"] == {"before": False, "server": False, "routes": True, "nodes": 9}
    assert found["network"] == [] and found["heavy"] == []
    assert found["seconds"] < LIMIT_SECONDS, f"pack import took {found['seconds']:.3f} s"
