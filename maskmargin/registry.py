"""The model registry: the 15 models of the Image Masking API plus offline extras.

One table, looked up by name, AIR id or (for YOLO) file path. Everything else (loaders, nodes,
CLI, service) reads model facts from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HF_ADETAILER = "https://huggingface.co/Bingsu/adetailer/resolve/main/"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    air: str | None  # Runware AIR id; None for extras and user files
    backend: str  # "yolo", "mediapipe_face", "mediapipe_mesh", "mediapipe_hands", "mediapipe_selfie"
    masks: str  # what it masks, for people
    group: str  # face, facial features, hands, people, extras
    shape: str  # "box", "segmentation" or "mesh"
    file_name: str | None = None  # YOLO weights file name
    subfolder: str | None = None  # "bbox" or "segm" under models/ultralytics
    download_url: str | None = None
    sha256: str | None = None  # None: not pinned; a download checks the hub's published hash instead
    option: str | None = None  # backend-specific variant (detector range, mesh feature set)
    extra: bool = False

    @property
    def needs_file(self) -> bool:
        return self.backend == "yolo"


def _yolo(name: str, air: str, masks: str, group: str, seg: bool) -> ModelSpec:
    return ModelSpec(
        name=name,
        air=air,
        backend="yolo",
        masks=masks,
        group=group,
        shape="segmentation" if seg else "box",
        file_name=f"{name}.pt",
        subfolder="segm" if seg else "bbox",
        download_url=f"{HF_ADETAILER}{name}.pt",
    )


def _mesh(name: str, air: str, masks: str, features: str) -> ModelSpec:
    return ModelSpec(name, air, "mediapipe_mesh", masks, "facial features", "mesh", option=features)


MODELS: tuple[ModelSpec, ...] = (
    _yolo("face_yolov8n", "runware:35@1", "faces, boxes", "face", seg=False),
    _yolo("face_yolov8s", "runware:35@2", "faces, boxes", "face", seg=False),
    _yolo("hand_yolov8n", "runware:35@3", "hands, boxes", "hands", seg=False),
    _yolo("person_yolov8n-seg", "runware:35@4", "people, segmentation", "people", seg=True),
    _yolo("person_yolov8s-seg", "runware:35@5", "people, segmentation", "people", seg=True),
    ModelSpec(
        "mediapipe_face_full",
        "runware:35@6",
        "mediapipe_face",
        "faces (full-range BlazeFace), boxes",
        "face",
        "box",
        option="full",
    ),
    ModelSpec(
        "mediapipe_face_short",
        "runware:35@7",
        "mediapipe_face",
        "faces (short-range BlazeFace), boxes",
        "face",
        "box",
        option="short",
    ),
    ModelSpec(
        "mediapipe_face_mesh", "runware:35@8", "mediapipe_mesh", "face shape (mesh hull)", "face", "mesh", option="face"
    ),
    _mesh("mediapipe_face_mesh_eyes_only", "runware:35@9", "both eyes, one band per face", "eyes_band"),
    _mesh("eyes_lips_mesh", "runware:35@10", "eyes + lips", "eyes+lips"),
    _mesh("nose_eyes_mesh", "runware:35@11", "nose + eyes", "nose+eyes"),
    _mesh("nose_lips_mesh", "runware:35@12", "nose + lips", "nose+lips"),
    _mesh("nose_mesh_mediapipe", "runware:35@13", "nose", "nose"),
    _mesh("lips_mesh_mediapipe", "runware:35@14", "lips", "lips"),
    _mesh("eyes_mesh_mediapipe", "runware:35@15", "eyes (each eye its own shape)", "eyes"),
    # Extras: offline models from MediaPipe's files (palm + hand landmarks, selfie); not part of the Image Masking API.
    ModelSpec(
        "extra_mediapipe_hands",
        None,
        "mediapipe_hands",
        "hands (palm + hand-landmark models), boxes",
        "extras",
        "box",
        extra=True,
    ),
    ModelSpec(
        "extra_mediapipe_person_selfie",
        None,
        "mediapipe_selfie",
        "people (selfie segmentation, all people as one region)",
        "extras",
        "segmentation",
        extra=True,
    ),
)

_BY_KEY = {m.name.lower(): m for m in MODELS} | {m.air.lower(): m for m in MODELS if m.air}


def api_models() -> list[ModelSpec]:
    """The 15 models of the Image Masking API, in AIR order."""
    return [m for m in MODELS if not m.extra]


def find_model(name_or_air: str) -> ModelSpec | None:
    """The registry entry for a model name or AIR id (case-insensitive), or None."""
    return _BY_KEY.get(name_or_air.strip().lower())


def spec_for_file(path: str | Path) -> ModelSpec:
    """A spec for a user's own YOLO `.pt` file; segmentation when it sits in a `segm` folder or says `-seg`."""
    p = Path(path)
    known = find_model(p.stem)
    if known is not None and known.backend == "yolo":
        return known
    seg = p.parent.name == "segm" or "-seg" in p.stem
    return ModelSpec(
        name=p.name,
        air=None,
        backend="yolo",
        masks="user model, segmentation" if seg else "user model, boxes",
        group="user",
        shape="segmentation" if seg else "box",
        file_name=p.name,
        subfolder="segm" if seg else "bbox",
    )
