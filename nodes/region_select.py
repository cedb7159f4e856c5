"""Select Regions: choose which regions (faces) Mask Margin Crop gets, and in what order."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..maskmargin.detection import ImageDetections
from ..maskmargin.errors import InvalidParameter, MaskMarginError
from ..maskmargin.images import check_image_batch, to_uint8_rgb
from ..maskmargin.preview import draw_numbers, thumbnails
from ..maskmargin.region_order import ORDERS, SIZE_UNITS, RegionSelection, select_regions
from . import comfy_env
from .image_mask import THUMBNAIL_SIDE
from .types import DetectionsType, user_error


class SelectRegions(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MaskMarginSelectRegions",
            display_name="Select Regions",
            category="MaskMargin",
            description="Orders and chooses the regions of each image before Mask Margin Crop: left to right, "
            "largest first, most confident first...; keep by index (0,2 or -1), by size or by label. Dropped "
            "regions are removed from the mask too, so they are neither cropped nor changed. Crops (and Region "
            "Prompts' lines) follow this order; the preview numbers each region as its crop will be numbered.",
            inputs=[
                io.Image.Input("image", tooltip="The images the mask was made for (for the numbered preview)."),
                io.Mask.Input("mask", tooltip="Image Mask's mask (one per image)."),
                io.Combo.Input(
                    "order",
                    options=list(ORDERS),
                    default="detection order",
                    tooltip="The order of each image's regions, hence of the crops: detection order "
                    "(Image Mask's: highest score first), by position (the box centre), by box area, or "
                    "by score.",
                ),
                io.String.Input(
                    "keep_index",
                    default="",
                    tooltip="Which regions to keep, by position in that order, per image: 0 is the first, "
                    "-1 the last, 0,2 the first and third, 1:3 the second and third. Empty keeps all.",
                ),
                io.String.Input(
                    "keep_labels",
                    default="",
                    tooltip="Keep only regions with these detection labels, comma-separated (e.g. face, "
                    "or hand; a label matches when it starts with the name). Empty keeps all. Parts of "
                    "the mask no detection covers are labelled mask.",
                ),
                io.Float.Input(
                    "min_size",
                    default=0.0,
                    min=0.0,
                    max=16384.0,
                    step=0.01,
                    tooltip="Drop regions whose box's larger side is below this (size_unit: pixels, or a "
                    "fraction of the image's larger side). 0 keeps all.",
                ),
                io.Float.Input(
                    "max_size",
                    default=0.0,
                    min=0.0,
                    max=16384.0,
                    step=0.01,
                    tooltip="Drop regions whose box's larger side is above this (same unit). 0: no limit.",
                ),
                io.Combo.Input(
                    "size_unit",
                    options=list(SIZE_UNITS),
                    default="px",
                    tooltip="px: min_size and max_size in pixels; fraction of image: as a share of the "
                    "image's larger side (0.1 = a tenth).",
                ),
                DetectionsType.Input(
                    "detections",
                    optional=True,
                    tooltip="Image Mask's detections: one region per detection, with its label and "
                    "score. Without it, each connected part of the mask is a region.",
                ),
            ],
            outputs=[
                io.Mask.Output(
                    "mask",
                    tooltip="The mask with only the kept regions (all 0 for an image with none "
                    "left: it passes through unchanged).",
                ),
                DetectionsType.Output(
                    "detections",
                    tooltip="The kept regions in the chosen order: connect to Mask Margin Crop's detections input.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        image,
        mask,
        order: str,
        keep_index: str,
        keep_labels: str,
        min_size: float,
        max_size: float,
        size_unit: str,
        detections: list[ImageDetections] | None = None,
    ) -> io.NodeOutput:
        try:
            images = check_image_batch(image)
            masks = mask.unsqueeze(0) if mask.ndim == 2 else mask
            if masks.shape[0] == 1 and images.shape[0] > 1:
                masks = masks.expand(images.shape[0], *masks.shape[1:])
            if tuple(masks.shape[1:]) != tuple(images.shape[1:3]):
                raise InvalidParameter("the mask is not the images' size: make it from these images", parameter="mask")
            selection = RegionSelection(order, keep_index, keep_labels, min_size, max_size, size_unit)
            out, chosen = select_regions(masks, detections, selection)
        except MaskMarginError as exc:
            raise user_error(exc) from exc
        shown = thumbnails(to_uint8_rgb(images), out, chosen, THUMBNAIL_SIDE)
        _number(shown, chosen)
        return io.NodeOutput(out.to(comfy_env.output_device()), chosen, ui=comfy_env.show_images(shown))


def _number(shown: torch.Tensor, chosen: list[ImageDetections]) -> None:
    """Write each region's crop number (counted over the whole batch) at its box on the thumbnails."""
    k = 0
    sy, sx = shown.shape[1], shown.shape[2]
    for b, found in enumerate(chosen):
        for det in found.detections:
            x0, y0 = det.pixel_box(found.width, found.height)[:2]
            name = f"t{det.track}" if det.track is not None else str(k)  # a track: the line Region Prompts reads
            draw_numbers(shown[b : b + 1], [name], [(int(x0 * sx / found.width), int(y0 * sy / found.height))])
            k += 1


NODES = [SelectRegions]
