"""Track Video: a video's detections linked into tracks, their boxes smoothed, the masks moved with them."""

from __future__ import annotations

import json

from comfy_api.latest import io

from ..maskmargin.detection import ImageDetections
from ..maskmargin.errors import MaskMarginError
from ..maskmargin.tracking import MAX_GAP, MAX_SMOOTHING, TrackSettings, track_video
from . import comfy_env
from .types import DetectionsType, user_error

DEFAULTS = TrackSettings()


class TrackVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MaskMarginTrackVideo",
            display_name="Track Video",
            category="MaskMargin",
            description="For video frames (an IMAGE batch that is a clip): links Image Mask's detections across "
            "frames into tracks with stable ids, smooths each track's box over the whole clip and moves the mask "
            "with it, so Mask Margin Crop's window keeps one size per track (a steady zoom) and follows the face "
            "smoothly; a face missed for a few frames is still detailed from its predicted box. Put it between "
            "Image Mask (or Select Regions' input) and Mask Margin Crop; Select Regions and Region Prompts then "
            "work per track (line 1 of Region Prompts is track 0 in every frame).",
            inputs=[
                io.Mask.Input("mask", tooltip="Image Mask's mask: one per frame (at least 2 frames)."),
                DetectionsType.Input("detections", tooltip="Image Mask's detections for the same frames."),
                io.Int.Input(
                    "max_missed",
                    default=DEFAULTS.max_missed,
                    min=0,
                    max=MAX_GAP,
                    tooltip="Frames, 0 to 1000: how long a face may go undetected (covered, turned away, a missed "
                    "detection) and still keep its track; those frames are detailed from the predicted box. A "
                    "longer gap ends the track (the face gets a new id when it is found again).",
                ),
                io.Int.Input(
                    "min_hits",
                    default=DEFAULTS.min_hits,
                    min=1,
                    max=MAX_GAP,
                    tooltip="Frames, 1 to 1000: detections in a row before a new face becomes a track; "
                    "something detected for fewer frames is taken as a false detection and left out. 1 keeps "
                    "every detection.",
                ),
                io.Float.Input(
                    "smoothing",
                    default=DEFAULTS.smoothing,
                    min=0.5,
                    max=MAX_SMOOTHING,
                    step=0.5,
                    tooltip=f"Frames, 0.5 to {MAX_SMOOTHING:g}: the smoother's time scale. Larger: steadier "
                    "windows, but slower to follow a face that turns or speeds up; smaller: closer to each "
                    "frame's detection. Zero lag either way (the whole clip is smoothed forwards and back).",
                ),
            ],
            outputs=[
                io.Mask.Output("mask", tooltip="One mask per frame, each track's part moved to its smoothed box."),
                DetectionsType.Output(
                    "detections",
                    tooltip="Per frame, one detection per track there (smoothed box, track id), by id: "
                    "connect to Mask Margin Crop (or Select Regions).",
                ),
                io.String.Output(
                    "detections_json",
                    tooltip="JSON text: one list per frame of boxes {x_min, y_min, x_max, y_max, track_id}.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        mask,
        detections: list[ImageDetections],
        max_missed: int,
        min_hits: int,
        smoothing: float,
    ) -> io.NodeOutput:
        masks = mask.unsqueeze(0) if mask.ndim == 2 else mask
        try:
            result = track_video(
                masks,
                detections,
                TrackSettings(max_missed, min_hits, float(smoothing)),
                progress=comfy_env.progress_for(int(masks.shape[0])),
            )
        except MaskMarginError as exc:
            raise user_error(exc) from exc
        text = json.dumps([frame.to_api() for frame in result.detections])
        return io.NodeOutput(result.masks.to(comfy_env.output_device()), result.detections, text)


NODES = [TrackVideo]
