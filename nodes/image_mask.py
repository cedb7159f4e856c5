"""Detector Loader and Image Mask nodes."""

from __future__ import annotations

import json

from comfy_api.latest import io

from ..maskmargin.backends.base import Detector
from ..maskmargin.errors import MaskMarginError
from ..maskmargin.loader import load_detector
from ..maskmargin.pipeline import image_mask
from ..maskmargin.settings import MAX_DETECTIONS, MAX_PADDING, MaskSettings
from . import comfy_env, remote
from .types import DetectionsType, DetectorType, LoadedDetector, model_options, user_error, user_file

PREVIEW_OUTPUT = 3  # index of Image Mask's full-size preview output
DEFAULTS = MaskSettings()  # the API's defaults: one definition for every front
THUMBNAIL_SIDE = 512  # the node's own previews: enough to judge a mask, cheap to encode (JPEG)


class DetectorLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        options = model_options()
        return io.Schema(
            node_id="MaskMarginDetectorLoader",
            display_name="Detector Loader",
            category="MaskMargin",
            description="Loads a detector for faces, facial features (eyes, lips, nose), hands or people, once: "
            "every run of Image Mask reuses it. Pick the model, and where it runs (local: this machine, CPU or GPU; "
            "remote: an Image Masking API service). Connect its output to Image Mask.",
            inputs=[
                io.Combo.Input(
                    "model",
                    options=options,
                    default="mediapipe_face_full",
                    tooltip="What to find. mediapipe_* and *_mesh (faces, face shape, eyes, lips, nose): MediaPipe's "
                    "files in ComfyUI/models/mediapipe (install.py fetches them). face_yolov8n/s and hand_yolov8n: "
                    "put the .pt file in "
                    "ComfyUI/models/ultralytics/bbox; person_yolov8n/s-seg: in models/ultralytics/segm "
                    "(files: huggingface.co/Bingsu/adetailer). bbox/... and segm/...: other YOLO .pt files found in "
                    "those folders. extra_* (hands, all people as one region): offline extras, local only. "
                    "The node's help page lists what each model masks.",
                ),
                io.Combo.Input(
                    "where",
                    options=["local", "remote"],
                    default="local",
                    optional=True,
                    tooltip="local (default): detect on this machine. remote: send the images to the Image Masking "
                    "API at RUNWARE_API_URL (Runware's, or a self-hosted `python -m maskmargin serve`); only the 15 "
                    "API models run remotely (not extra_* or your own .pt files). The key comes from RUNWARE_API_KEY "
                    "or the key saved on the server (POST /maskmargin/api_key), never from the workflow. Padding and "
                    "blur are applied here, so the masks come out the same as local ones.",
                ),
            ],
            outputs=[
                DetectorType.Output(
                    "detector",
                    tooltip="The loaded detector: connect to Image Mask's "
                    "detector input. It stays loaded while this node is unchanged.",
                )
            ],
        )

    @classmethod
    def execute(cls, model: str, where: str = "local") -> io.NodeOutput:
        dirs = comfy_env.model_dirs()
        detector: Detector
        try:
            if where == "remote":
                detector = remote.detector(model)
            else:
                detector = load_detector(user_file(model, dirs), dirs, str(comfy_env.torch_device()))
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
            "shape (box, segmentation or facial-feature outline), grown or shrunk by mask_padding pixels, with a fade "
            "band of mask_blur pixels outside. Also returns the detections (for Mask Margin Crop), their boxes as "
            "JSON and a preview. An image where nothing is found gets an empty (all 0) mask.",
            inputs=[
                io.Image.Input(
                    "image", tooltip="One image or a batch (video frames); RGB, RGBA or grayscale. Never modified."
                ),
                DetectorType.Input("detector", tooltip="From Detector Loader: the model that finds the objects."),
                io.Float.Input(
                    "confidence",
                    default=DEFAULTS.confidence,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Score threshold, 0 to 1: keep detections scoring at least this. Lower it "
                    "(0.1-0.2) when small or turned faces are missed; raise it (0.4-0.6) when wrong things "
                    "are masked.",
                ),
                io.Int.Input(
                    "max_detections",
                    default=DEFAULTS.max_detections,
                    min=1,
                    max=MAX_DETECTIONS,
                    tooltip=f"1 to {MAX_DETECTIONS}: keep at most this many detections per image, highest "
                    "score first. Raise it for group photos.",
                ),
                io.Int.Input(
                    "mask_padding",
                    default=DEFAULTS.mask_padding,
                    min=-MAX_PADDING,
                    max=MAX_PADDING,
                    tooltip=f"Pixels, -{MAX_PADDING} to {MAX_PADDING}, in the image's own pixels: grow "
                    "(positive) or shrink (negative) each detection's mask by this distance. Grow it so the "
                    "inpaint can also change the edge around the object (hairline, chin).",
                ),
                io.Int.Input(
                    "mask_blur",
                    default=DEFAULTS.mask_blur,
                    min=0,
                    max=MAX_PADDING,
                    tooltip=f"Pixels, 0 to {MAX_PADDING}: width of the fade band added OUTSIDE the padded "
                    "mask (inside stays 1, the band falls to 0). Inpaint Stitch blends through this band: "
                    "wider hides seams, 0 gives a hard edge.",
                ),
                io.Boolean.Input(
                    "search_tiles",
                    default=DEFAULTS.search_tiles,
                    optional=True,
                    tooltip="Also search overlapping tiles (2 x 2 of 60% each way; finer grids above "
                    "2560 px, 4 x 4 for 4K). Finds faces the whole-image pass is too coarse for: smaller "
                    "than about 6% of the image's longer side (crowds, high-resolution group photos). "
                    "One detection per tile more (5x the time up to 2560 px); may add a few false "
                    "detections (raise confidence then).",
                ),
            ],
            outputs=[
                io.Mask.Output(
                    "mask",
                    tooltip="One mask per image at the image's size, 0 to 1: every detection "
                    "of that image in one mask; all 0 where nothing was found.",
                ),
                DetectionsType.Output(
                    "detections",
                    tooltip="Each detection's box and shape per image: connect to "
                    "Mask Margin Crop's detections so every detection gets its own crop.",
                ),
                io.String.Output(
                    "detections_json",
                    tooltip="JSON text: one list per image of boxes "
                    "{x_min, y_min, x_max, y_max} in the image's pixels (the Image Masking API's "
                    "detections).",
                ),
                io.Image.Output(
                    "preview",
                    tooltip="Masks tinted and boxes drawn over the images, full size "
                    "(made only when this output is connected; the node shows small previews itself).",
                ),
            ],
            hidden=[io.Hidden.dynprompt, io.Hidden.unique_id],
        )

    @classmethod
    def execute(
        cls,
        image,
        detector: LoadedDetector,
        confidence: float,
        max_detections: int,
        mask_padding: int,
        mask_blur: int,
        search_tiles: bool = False,
    ) -> io.NodeOutput:
        try:
            settings = MaskSettings(confidence, max_detections, mask_padding, mask_blur, search_tiles)
            result = image_mask(
                detector.detector,
                image,
                settings,
                device=comfy_env.torch_device(),
                progress=comfy_env.progress_for(int(image.shape[0])),
                with_preview=comfy_env.output_used(cls.hidden.dynprompt, cls.hidden.unique_id, PREVIEW_OUTPUT),
                thumbnail_side=THUMBNAIL_SIDE,
            )
        except MaskMarginError as exc:
            raise user_error(exc) from exc
        out = comfy_env.output_device()
        preview = result.preview.to(out) if result.preview is not None else None
        text = json.dumps(result.to_api())
        assert result.thumbnails is not None  # asked for with thumbnail_side
        shown = comfy_env.show_images(result.thumbnails)
        shown["maskmargin_counts"] = [len(found.detections) for found in result.detections]  # js/ labels them
        return io.NodeOutput(result.masks.to(out), result.detections, text, preview, ui=shown)


NODES = [DetectorLoader, ImageMask]
