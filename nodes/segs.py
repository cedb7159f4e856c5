"""To SEGS and From SEGS: MaskMargin's detections and mask as Impact-Pack's SEGS, and back (no Impact import)."""

from __future__ import annotations

from comfy_api.latest import io

from ..maskmargin.detection import ImageDetections
from ..maskmargin.errors import InvalidParameter, MaskMarginError
from ..maskmargin.images import check_image_batch
from ..maskmargin.segs import Segs, from_segs, to_segs
from . import comfy_env
from .types import DetectionsType, user_error

SegsType = io.Custom("SEGS")  # Impact-Pack's type name: its nodes connect to these sockets


class ToSegs(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MaskMarginToSEGS",
            display_name="To SEGS",
            category="MaskMargin",
            description="MaskMargin's regions as Impact-Pack's SEGS (one SEG per detection, its own part of the mask "
            "with the fade band, its label and score), for Impact's detailers and SEGS nodes. Impact-Pack need not be "
            "installed for this node to load. SEGS describe one image: give one image.",
            inputs=[
                io.Image.Input(
                    "image", tooltip="One image (SEGS hold one image's regions); the one the mask was made for."
                ),
                io.Mask.Input("mask", tooltip="Image Mask's mask for this image."),
                io.Float.Input(
                    "crop_factor",
                    default=3.0,
                    min=1.0,
                    max=100.0,
                    step=0.1,
                    tooltip="Each SEG's crop region is its box times this, about the box's centre, kept "
                    "inside the image (Impact's crop_factor: 3 is its usual default).",
                ),
                DetectionsType.Input(
                    "detections",
                    optional=True,
                    tooltip="Image Mask's detections: one SEG per detection. Without it, one SEG per "
                    "connected part of the mask (label mask).",
                ),
            ],
            outputs=[SegsType.Output("segs", tooltip="Impact-Pack's SEGS value: ((height, width), [SEG, ...]).")],
        )

    @classmethod
    def execute(cls, image, mask, crop_factor: float, detections: list[ImageDetections] | None = None) -> io.NodeOutput:
        try:
            images = check_image_batch(image)
            masks = mask.unsqueeze(0) if mask.ndim == 2 else mask
            if images.shape[0] != 1 or masks.shape[0] != 1:
                raise InvalidParameter(
                    f"SEGS describe one image, got {images.shape[0]} images and {masks.shape[0]} "
                    "masks: pick one with Image From Batch",
                    parameter="image",
                )
            if tuple(masks.shape[1:]) != tuple(images.shape[1:3]):
                raise InvalidParameter("the mask is not the image's size: make it from this image", parameter="mask")
            found = detections[0] if detections else None
            segs = to_segs(images.cpu(), masks[0].cpu(), found, crop_factor)
        except MaskMarginError as exc:
            raise user_error(exc) from exc
        return io.NodeOutput(segs)


class FromSegs(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MaskMarginFromSEGS",
            display_name="From SEGS",
            category="MaskMargin",
            description="Impact-Pack's SEGS (from its detectors, SAM or SEGS filters) as MaskMargin's mask and "
            "detections, for Select Regions, Mask Margin Crop and the one-batch detailer loop.",
            inputs=[SegsType.Input("segs", tooltip="A SEGS value from an Impact-Pack node (or To SEGS).")],
            outputs=[
                io.Mask.Output(
                    "mask",
                    tooltip="Every SEG's cropped mask pasted at its crop region, at the image's "
                    "size (where two overlap, the larger value).",
                ),
                DetectionsType.Output(
                    "detections",
                    tooltip="One detection per SEG: its bbox, confidence, label and "
                    "shape; connect to Mask Margin Crop or Select Regions.",
                ),
            ],
        )

    @classmethod
    def execute(cls, segs: Segs) -> io.NodeOutput:
        try:
            mask, found = from_segs(segs)
        except MaskMarginError as exc:
            raise user_error(exc) from exc
        return io.NodeOutput(mask.to(comfy_env.output_device()), [found])


NODES = [ToSegs, FromSegs]
