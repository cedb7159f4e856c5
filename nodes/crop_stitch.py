"""Mask Margin Crop and Inpaint Stitch nodes: the zoom-inpaint loop around one sampler call."""

from __future__ import annotations

from comfy_api.latest import io

from ..maskmargin.crop import CropResult, mask_margin_crop
from ..maskmargin.detection import ImageDetections
from ..maskmargin.errors import MaskMarginError
from ..maskmargin.images import to_uint8_rgb
from ..maskmargin.preview import draw_numbers, thumbnails
from ..maskmargin.settings import MAX_MARGIN, MAX_WORKING_SIDE, WORKING_SIZES, CropSettings
from ..maskmargin.stitch import inpaint_stitch
from . import comfy_env
from .types import DetectionsType, user_error

StitchType = io.Custom("MASKMARGIN_STITCH")
CUSTOM = "custom"
CROP_PREVIEW_SIDE = 256  # the node shows its crops this large, the mask tinted


class MaskMarginCrop(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MaskMarginCrop",
            display_name="Mask Margin Crop",
            category="MaskMargin",
            description="Cuts every masked region of every image out with mask_margin pixels of context, zoomed to "
            "the working size, as ONE batch for one sampler call (VAE Encode, sampler, VAE Decode), then Inpaint "
            "Stitch puts the results back. Small faces get the checkpoint's full resolution. When no image has a "
            "region, it outputs one placeholder crop with an empty mask so the sampler still runs, and Inpaint "
            "Stitch returns the images unchanged.",
            inputs=[
                io.Image.Input(
                    "image",
                    tooltip="The images to inpaint (one, a batch or video frames); the same "
                    "images the mask was made for.",
                ),
                io.Mask.Input(
                    "mask",
                    tooltip="What to inpaint, at the images' size: one mask per image, or one for "
                    "all (e.g. Image Mask's mask). Its fade (Image Mask's mask_blur) is the blend band when "
                    "stitching.",
                ),
                io.Int.Input(
                    "mask_margin",
                    default=32,
                    min=0,
                    max=MAX_MARGIN,
                    step=8,
                    tooltip=f"Pixels, 0 to {MAX_MARGIN}, in the source image: context added around each "
                    "region's box on every side before the crop is scaled. More context: the sampler sees "
                    "more surroundings (a more coherent inpaint) but each region gets less zoom.",
                ),
                io.Combo.Input(
                    "working_size",
                    options=[*WORKING_SIZES, CUSTOM],
                    default="512x512 (SD1.5)",
                    tooltip="The size every crop is scaled to, width x height: pick your checkpoint's "
                    "native resolution (512 for SD1.5, 1024 for SDXL/Flux), or custom. Crops keep this "
                    "aspect ratio by taking in more context, never by stretching.",
                ),
                io.Int.Input(
                    "custom_width",
                    default=768,
                    min=64,
                    max=MAX_WORKING_SIDE,
                    step=8,
                    tooltip=f"Pixels, 64 to {MAX_WORKING_SIDE}, a multiple of 8: the crops' width when "
                    "working_size is custom (ignored otherwise).",
                ),
                io.Int.Input(
                    "custom_height",
                    default=768,
                    min=64,
                    max=MAX_WORKING_SIDE,
                    step=8,
                    tooltip=f"Pixels, 64 to {MAX_WORKING_SIDE}, a multiple of 8: the crops' height when "
                    "working_size is custom (ignored otherwise).",
                ),
                io.Int.Input(
                    "min_region_size",
                    default=8,
                    min=0,
                    max=MAX_WORKING_SIDE,
                    tooltip="Pixels, in the source image: ignore regions whose larger side is below this "
                    "(specks of mask). 0 keeps every region.",
                ),
                io.Boolean.Input(
                    "merge_overlapping",
                    default=False,
                    tooltip="Merge regions whose crops overlap into one crop (fewer, larger crops). "
                    "Off: each region its own crop; overlaps are still stitched seamlessly.",
                ),
                DetectionsType.Input(
                    "detections",
                    optional=True,
                    tooltip="From Image Mask: one region per detection, even where masks touch. "
                    "Without it, each connected part of the mask is a region.",
                ),
            ],
            outputs=[
                io.Image.Output(
                    "crops",
                    tooltip="All crops of all images as one batch at the working size, image "
                    "by image: connect to VAE Encode (or InpaintModelConditioning).",
                ),
                io.Mask.Output(
                    "crop_masks",
                    tooltip="The mask of each crop, only its own region (for Set Latent "
                    "Noise Mask, VAE Encode for Inpaint or InpaintModelConditioning).",
                ),
                StitchType.Output("stitch", tooltip="Where each crop goes back: connect to Inpaint Stitch."),
            ],
        )

    @classmethod
    def execute(
        cls,
        image,
        mask,
        mask_margin: int,
        working_size: str,
        custom_width: int,
        custom_height: int,
        min_region_size: int,
        merge_overlapping: bool,
        detections: list[ImageDetections] | None = None,
    ) -> io.NodeOutput:
        width, height = (custom_width, custom_height) if working_size == CUSTOM else WORKING_SIZES[working_size]
        try:
            settings = CropSettings(width, height, mask_margin, min_region_size, merge_overlapping)
            result = mask_margin_crop(
                image,
                mask,
                settings,
                detections,
                device=comfy_env.torch_device(),
                progress=comfy_env.progress_for(int(image.shape[0])),
            )
        except MaskMarginError as exc:
            raise user_error(exc) from exc
        out = comfy_env.output_device()
        crops, crop_masks = result.crops.to(out), result.crop_masks.to(out)
        shown = thumbnails(
            to_uint8_rgb(crops), crop_masks, [ImageDetections(width, height, ())] * len(crops), CROP_PREVIEW_SIDE
        )
        # number each crop (its index in the batch, the line of Region Prompts that prompts it) and its label
        # (a tracked video's crops: their track, `t0`, as Region Prompts reads one line per track)
        names = [f"t{c.track}" if c.track is not None else str(i) for i, c in enumerate(result.plan)]
        draw_numbers(shown, [f"{name} {c.region.label}".strip() for name, c in zip(names, result.plan)])
        return io.NodeOutput(crops, crop_masks, result, ui=comfy_env.show_images(shown))


class MaskMarginStitch(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MaskMarginStitch",
            display_name="Inpaint Stitch",
            category="MaskMargin",
            description="Scales each inpainted crop back to its place and blends it into its own image through the "
            "mask: pixels where the mask is 0 stay exactly as they were, where it is 1 they are the inpainted ones, "
            "the fade band mixes both. Images without a region pass through unchanged. Output is RGB.",
            inputs=[
                StitchType.Input(
                    "stitch",
                    tooltip="From Mask Margin Crop's stitch output: the source images, the "
                    "mask and where each crop goes.",
                ),
                io.Image.Input(
                    "image",
                    tooltip="The inpainted crops (VAE Decode of the sampler's output): the whole "
                    "batch, same count and order as Mask Margin Crop's crops; any size (upscaled is fine).",
                ),
            ],
            outputs=[
                io.Image.Output(
                    "image",
                    tooltip="The full images, same size and count as the images given to "
                    "Mask Margin Crop, with every region stitched back.",
                )
            ],
        )

    @classmethod
    def execute(cls, stitch: CropResult, image) -> io.NodeOutput:
        try:
            result = inpaint_stitch(stitch, image, progress=comfy_env.progress_for(max(len(stitch.plan), 1)))
        except MaskMarginError as exc:
            raise user_error(exc) from exc
        return io.NodeOutput(result.to(comfy_env.output_device()))


NODES = [MaskMarginCrop, MaskMarginStitch]
