"""Find and load detectors by name, AIR id or file path; loaded detectors are cached and reused."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .backends.base import Detector
from .errors import InvalidParameter, ModelNotAvailable
from .registry import MODELS, ModelSpec, find_model, spec_for_file


def default_models_root() -> Path:
    """`MASKMARGIN_MODELS_DIR` or ./models: the CLI's and service's stand-in for ComfyUI's models folder."""
    return Path(os.environ.get("MASKMARGIN_MODELS_DIR", "models")).expanduser()


def find_file(name: str, folders: Iterable[Path]) -> Path | None:
    """The file of that name in the first folder that has it, None when none does."""
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    return None


@dataclass(frozen=True)
class ModelDirs:
    """Where model files are looked for (ComfyUI passes its own folders)."""

    bbox: tuple[Path, ...] = field(default_factory=lambda: (default_models_root() / "ultralytics" / "bbox",))
    segm: tuple[Path, ...] = field(default_factory=lambda: (default_models_root() / "ultralytics" / "segm",))
    mediapipe: tuple[Path, ...] = field(default_factory=lambda: (default_models_root() / "mediapipe",))

    @classmethod
    def under(cls, root: str | Path | None) -> ModelDirs:
        """The folders under one models root (`--models-dir`): ultralytics/bbox, ultralytics/segm, mediapipe."""
        if not root:
            return cls()
        root = Path(root)
        return cls((root / "ultralytics" / "bbox",), (root / "ultralytics" / "segm",), (root / "mediapipe",))

    def yolo_dirs(self, spec: ModelSpec) -> tuple[Path, ...]:
        return self.segm if spec.subfolder == "segm" else self.bbox

    def yolo_file(self, spec: ModelSpec) -> Path | None:
        """A YOLO model's weights file where it is looked for, None when it is missing."""
        return find_file(spec.file_name, self.yolo_dirs(spec)) if spec.file_name else None

    def user_option(self, option: str) -> tuple[str, tuple[Path, ...]] | None:
        """(file name, its folders) for a picker option "bbox/<file>.pt" or "segm/<file>.pt", else None."""
        kind, sep, file_name = option.partition("/")
        folders = {"bbox": self.bbox, "segm": self.segm}.get(kind)
        return (file_name, folders) if sep and folders is not None else None

    def user_yolo_files(self) -> list[Path]:
        """Every `.pt` in the bbox and segm folders (Impact-Subpack users already fill them)."""
        found = []
        for folder in (*self.bbox, *self.segm):
            if folder.is_dir():
                found += sorted(p for p in folder.iterdir() if p.suffix == ".pt" and p.is_file())
        return found


def resolve(model: str, dirs: ModelDirs | None = None) -> tuple[ModelSpec, Path | None]:
    """(spec, weights file or None) for a model name, AIR id or `.pt` path; errors say what to do."""
    dirs = dirs or ModelDirs()
    if not isinstance(model, str) or not model.strip():
        raise InvalidParameter("model must be a model name, AIR id or .pt file path", parameter="model")
    spec = find_model(model)
    if spec is None and model.strip().lower().endswith(".pt"):
        path = Path(model).expanduser()
        if not path.is_file():
            found = find_file(model, (*dirs.bbox, *dirs.segm))
            if found is None:
                raise ModelNotAvailable(f"model file not found: {model}", parameter="model")
            path = found
        return spec_for_file(path), path
    if spec is None:
        names = ", ".join(m.name for m in MODELS)
        raise InvalidParameter(
            f"unknown model {model!r}; use one of: {names} (or an AIR id runware:35@1..15)", parameter="model"
        )
    if not spec.needs_file:
        return spec, None
    candidate = dirs.yolo_file(spec)
    if candidate is not None:
        return spec, candidate
    raise ModelNotAvailable(missing_file_message(spec, dirs), parameter="model")


def missing_file_message(spec: ModelSpec, dirs: ModelDirs) -> str:
    where = dirs.yolo_dirs(spec)[0]
    return (
        f"{spec.name} needs the weights file {spec.file_name}, which is not in {where}. "
        f"Download it from {spec.download_url} and put it in that folder, "
        f"or run: python -m maskmargin download {spec.name} --models-dir <your models folder>"
    )


_cache: dict[tuple, Detector] = {}
_cache_lock = threading.Lock()


def load_detector(model: str, dirs: ModelDirs | None = None, device: str | None = None) -> Detector:
    """A ready detector, loaded once per (model, file version, device) and reused."""
    spec, path = resolve(model, dirs)
    stamp = (path.resolve(), path.stat().st_mtime_ns, path.stat().st_size) if path else None
    key = (spec.name, stamp, device, _mediapipe_dirs_key(dirs))
    with _cache_lock:
        found = _cache.get(key)
        if found is None:
            found = _build(spec, path, dirs or ModelDirs(), device)
            _cache[key] = found
        return found


def _mediapipe_dirs_key(dirs: ModelDirs | None) -> tuple:
    return tuple(dirs.mediapipe) if dirs else ()


def clear_cache() -> None:
    with _cache_lock:
        for det in _cache.values():
            det.close()
        _cache.clear()


def _build(spec: ModelSpec, path: Path | None, dirs: ModelDirs, device: str | None) -> Detector:
    if spec.backend == "yolo":
        from .backends.yolo import YoloDetector

        assert path is not None  # resolve() found the file
        return YoloDetector(spec, path, device=device)
    if spec.backend == "mediapipe_face":
        from .backends.mediapipe_faces import FaceDetector

        return FaceDetector(spec, dirs.mediapipe, device=device)
    if spec.backend == "mediapipe_mesh":
        from .backends.mediapipe_mesh import MeshDetector

        return MeshDetector(spec, dirs.mediapipe, device=device)
    if spec.backend in ("mediapipe_hands", "mediapipe_selfie"):
        from .backends import mediapipe_extras

        return mediapipe_extras.build(spec, dirs.mediapipe, device)
    raise ModelNotAvailable(f"no backend for {spec.name}")
