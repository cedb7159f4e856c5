"""Shared pytest fixtures.

pytest runs with ``--import-mode=importlib``, which does not put ``tests/`` on ``sys.path``; add it
here so test modules can ``from comfy_harness import ...``.
"""

import sys
from pathlib import Path

import pytest

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from comfy_harness import ComfyUnavailable, comfyui_dir_from_env, start_from_env  # noqa: E402
from loopback import SERVICE_KEY, Service  # noqa: E402


@pytest.fixture(scope="module")
def service():
    """A real `serve` on 127.0.0.1 (loopback.Service) that requires SERVICE_KEY."""
    s = Service(api_key=SERVICE_KEY)
    yield s
    s.close()


@pytest.fixture(scope="session")
def comfy(tmp_path_factory):
    """A running ComfyUI server (comfy_harness.ComfyServer) with this pack in custom_nodes.

    Skips when COMFYUI_DIR is not set or is not a ComfyUI checkout; errors (with the server log
    tail) when the server does not start. The base folder, with comfyui.log, is left in pytest's
    temporary folder (pytest keeps the last three runs).
    """
    try:
        comfyui_dir_from_env()
    except ComfyUnavailable as reason:
        pytest.skip(str(reason))
    server = start_from_env(base_dir=tmp_path_factory.mktemp("comfyui"))
    try:
        yield server
    finally:
        server.stop(remove_base=False)
