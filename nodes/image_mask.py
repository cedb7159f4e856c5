"""Detector Loader and Image Mask nodes."""

from __future__ import annotations

import json
from dataclasses import dataclass

from comfy_api.latest import io, ui

from ..maskmargin.backends.base import Detector
from ..maskmargin.errors import MaskMarginError
from ..maskmargin.loader import load_detector
from ..maskmargin.pipeline import MAX_DETECTIONS, MAX_PADDING, MaskSettings, image_mask
from ..maskmargin.registry import MODELS
from . import comfy_env, remote

DetectorType = io.Custom("MASKMARGIN_DETECTOR")
PREVIEW_OUTPUT = 3  # index of Image Mask's full-size preview output
THUMBNAIL_SIDE = 512  # the node's own previews: enough to judge a mask, cheap to encode
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


def _user_file(model: str, dirs) -> str:
    """A "bbox/name.pt" or "segm/name.pt" option as the path of that file; other options unchanged."""
    kind, _, file_name = model.partition("/")
    for folder in {"bbox": dirs.bbox, "segm": dirs.segm}.get(kind, ()):
        if (folder / file_name).is_file():
            return str(folder / file_name)
    return model


def user_error(exc: MaskMarginError) -> RuntimeError:
    return RuntimeError(f"MaskMargin: {exc.message}")


class DetectorLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        options = model_options()
        return io.Schema(
            node_id="MaskMarginDetectorLoader",
            display_name="Detector Loader",
            category="MaskMargin",
            description="Loads a face, facial-feature, hand or person detector once; Image Mask reuses it.",
            inputs=[
                io.Combo.Input(
                    "model", options=options, default="mediapipe_face_full",
                    tooltip="mediapipe_* and *_mesh models are bundled with mediapipe (no file needed). "
                    "*_yolov8* models need their .pt file in models/ultralytics/bbox (boxes) or "
                    "models/ultralytics/segm (-seg). AIR ids: runware:35@1 face_yolov8n ... "
                    "runware:35@15 eyes_mesh_mediapipe (see README). extra_* are offline extras.",
                ),
                io.Combo.Input(
                    "where", options=["local", "remote"], default="local", optional=True,
                    tooltip="local: detect on this machine. remote: send the images to the Image Masking API at "
                    "RUNWARE_API_URL (Runware's, or a self-hosted `python -m maskmargin serve`); the key comes from "
                    "RUNWARE_API_KEY or the key saved on the server (POST /maskmargin/api_key), never the workflow. "
                    "The masks come out the same.",
                ),
            ],
            outputs=[DetectorType.Output("detector")],
        )

    @classmethod
    def execute(cls, model: str, where: str = "local") -> io.NodeOutput:
        dirs = comfy_env.model_dirs()
        try:
            if where == "remote":
                detector = remote.detector(model)
            else:
                detector = load_detector(_user_file(model, dirs), dirs, str(comfy_env.torch_device()))
        except MaskMarginError as exc:
            raise user_error(exc) from exc
        return io.NodeOutput(LoadedDetector(detector, model))


class ImageMask(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MaskMarginImageMask",
            display_name="Image Mask",
            category="MaskMargin",
            description="Finds objects with the detector and returns one mask per image: each detection's own "
            "shape, grown or shrunk by mask_padding, with a fade band of mask_blur pixels outside.",
            inputs=[
                io.Image.Input("image", tooltip="One image or a batch (video frames); RGB, RGBA or grayscale."),
                DetectorType.Input("detector", tooltip="From Detector Loader."),
                io.Float.Input("confidence", default=0.25, min=0.0, max=1.0, step=0.01,
                               tooltip="Keep detections scoring at least this."),
                io.Int.Input("max_detections", default=6, min=1, max=MAX_DETECTIONS,
                             tooltip="Keep at most this many per image, highest confidence first."),
                io.Int.Input("mask_padding", default=4, min=-MAX_PADDING, max=MAX_PADDING,
                             tooltip="Grow (positive) or shrink (negative) each detection's mask by this many pixels."),
                io.Int.Input("mask_blur", default=4, min=0, max=MAX_PADDING,
                             tooltip="Width in pixels of the fade band added OUTSIDE the padded mask."),
            ],
            outputs=[
                io.Mask.Output("mask", tooltip="One mask per image, 0..1."),
                DetectionsType.Output("detections", tooltip="Regions for Mask Margin Crop."),
                io.String.Output("detections_json", tooltip="Boxes per image in the Image Masking API's shape."),
                io.Image.Output("preview", tooltip="Masks tinted and boxes drawn over the images, full size "
                                "(made only when this output is connected; the node shows small previews itself)."),
            ],
            hidden=[io.Hidden.dynprompt, io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, image, detector: LoadedDetector, confidence: float, max_detections: int,
                mask_padding: int, mask_blur: int) -> io.NodeOutput:
        try:
            settings = MaskSettings(confidence, max_detections, mask_padding, mask_blur)
            result = image_mask(
                detector.detector, image, settings,
                device=comfy_env.torch_device(), progress=comfy_env.progress_for(int(image.shape[0])),
                with_preview=comfy_env.output_used(cls.hidden.dynprompt, cls.hidden.unique_id, PREVIEW_OUTPUT),
                thumbnail_side=THUMBNAIL_SIDE,
            )
        except MaskMarginError as exc:
            raise user_error(exc) from exc
        out = comfy_env.output_device()
        preview = result.preview.to(out) if result.preview is not None else None
        text = json.dumps(result.to_api())
        shown = ui.PreviewImage(result.thumbnails, cls=cls).as_dict()
        shown["maskmargin_counts"] = [len(found.detections) for found in result.detections]  # js/ labels them
        return io.NodeOutput(result.masks.to(out), result.detections, text, preview, ui=shown)


NODES = [DetectorLoader, ImageMask]
