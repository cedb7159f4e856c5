"""Fixtures for running the detailer examples through a real sampler: a random SD1.5 checkpoint (built once,
cached outside the repository) and the YOLO files the hand and person examples name.

Import the fixtures into a test module: ``from detailer_fixtures import checkpoints  # noqa: F401``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from comfy_harness import comfyui_dir_from_env, comfyui_python_from_env

HERE = Path(__file__).resolve().parent
BUILDER = HERE / "random_checkpoints.py"
SD15_NAMES = ("v1-5-pruned-emaonly.safetensors",)  # what the SD1.5 examples load
SDXL_NAME = "sd_xl_base_1.0.safetensors"  # what the SDXL example loads


def cache_dir() -> Path:
    """MASKMARGIN_CACHE (make test sets it), else ~/.cache/maskmargin: outside the repository."""
    return Path(os.environ.get("MASKMARGIN_CACHE") or Path.home() / ".cache" / "maskmargin").expanduser()


def random_checkpoint_path(kind: str = "sd15") -> Path:
    """The cached random checkpoint ("sd15" or "sdxl"), built when missing; its name carries a hash of the
    builder, so a changed builder rebuilds."""
    digest = hashlib.sha256(BUILDER.read_bytes()).hexdigest()[:12]
    path = cache_dir() / "checkpoints" / f"random_{kind}_{digest}.safetensors"
    if not path.is_file():
        env = dict(os.environ, COMFYUI_DIR=str(comfyui_dir_from_env()))
        done = subprocess.run(
            [comfyui_python_from_env(), str(BUILDER), kind, str(path)],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if done.returncode != 0:
            raise RuntimeError(f"building the random {kind} checkpoint failed:\n{done.stdout}\n{done.stderr[-4000:]}")
    return path


def random_sd15_path() -> Path:
    return random_checkpoint_path("sd15")


def link_into(comfy, source: Path, name: str) -> Path:
    folder = comfy.models_dir / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / name
    if not link.exists():
        link.symlink_to(source)
    return link


def video_file(path: Path, frames: list[np.ndarray], fps: int = 8) -> None:
    """A short MPEG-4 video of `frames` (what the video example's Load Video reads)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@pytest.fixture(scope="session")
def checkpoints(comfy) -> dict[str, Path]:
    """The random SD1.5 file linked into the server's models/checkpoints under the examples' names, and
    deterministic YOLO files (tests/yolo_models.py) as hand_yolov8n.pt and person_yolov8n-seg.pt."""
    from yolo_models import save_scoring_model

    sd15 = random_sd15_path()
    linked = {name: link_into(comfy, sd15, name) for name in SD15_NAMES}
    yolo = {"bbox/hand_yolov8n.pt": ("yolov8n.yaml", False), "segm/person_yolov8n-seg.pt": ("yolov8n-seg.yaml", True)}
    for rel, (cfg, constant) in yolo.items():
        target = comfy.models_dir / "ultralytics" / rel
        if not target.exists():
            save_scoring_model(cfg, str(target), constant_masks=constant)
        linked[rel] = target
    return linked


@pytest.fixture(scope="session")
def sdxl_checkpoint(comfy) -> Path:
    """The random SDXL-detected file (real SDXL depths, narrow levels, real CLIP-L/G; ~2.4 GB, built once)
    linked into the server's models/checkpoints as sd_xl_base_1.0.safetensors."""
    return link_into(comfy, random_checkpoint_path("sdxl"), SDXL_NAME)
