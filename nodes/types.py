"""What the node modules share: ComfyUI socket types, the DETECTOR value, model options and user errors."""

from __future__ import annotations

from dataclasses import dataclass

from comfy_api.latest import io

from ..maskmargin.backends.base import Detector
from ..maskmargin.errors import MaskMarginError
from ..maskmargin.loader import ModelDirs, find_file
from ..maskmargin.registry import MODELS
from . import comfy_env

DetectorType = io.Custom("MASKMARGIN_DETECTOR")
DetectionsType = io.Custom("MASKMARGIN_DETECTIONS")


@dataclass(frozen=True)
class LoadedDetector:
    """The DETECTOR value: the engine detector plus what it was loaded from."""

    detector: Detector
    model: str


def model_options() -> list[str]:
    """The 15 API models, every other .pt in models/ultralytics/{bbox,segm}, then the extras."""
    dirs = comfy_env.model_dirs()
    known = {m.file_name for m in MODELS if m.file_name}
    api = [m.name for m in MODELS if not m.extra]
    user = [f"{p.parent.name}/{p.name}" for p in dirs.user_yolo_files() if p.name not in known]
    extras = [m.name for m in MODELS if m.extra]
    return api + sorted(set(user)) + extras


def user_file(option: str, dirs: ModelDirs) -> str:
    """A "bbox/name.pt" or "segm/name.pt" option as the path of that file; other options unchanged."""
    user = dirs.user_option(option)
    found = find_file(*user) if user else None
    return str(found) if found else option


def user_error(exc: MaskMarginError) -> RuntimeError:
    """The exception a node raises for a user's mistake: ComfyUI shows its message, without a traceback."""
    return RuntimeError(f"MaskMargin: {exc.message}")
