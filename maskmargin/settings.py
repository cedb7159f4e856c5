"""The operations' parameter objects and the progress callback type, shared by the engine and every front.

The API parameters' defaults and ranges come from the task field table (`task_fields`); the node
schemas read them from here, the task parser from the table itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import InvalidParameter
from .task_fields import IMAGE_MASKING
from .task_fields import MAX_DETECTIONS as MAX_DETECTIONS  # the nodes' ranges read these
from .task_fields import MAX_PADDING as MAX_PADDING

# Called after each image with (done, total); may raise to stop the batch (ComfyUI interruption).
Progress = Callable[[int, int], None]


def stop_check(check: Callable[[], None] | None, update: Callable[[int, int], None] | None = None) -> Progress:
    """A Progress callback that first honours interruption (`check` raises), then reports."""

    def progress(done: int, total: int) -> None:
        if check is not None:
            check()
        if update is not None:
            update(done, total)

    return progress


@dataclass(frozen=True)
class MaskSettings:
    """The API's detection and mask parameters, validated on creation (never silently clamped)."""

    confidence: float = IMAGE_MASKING["confidence"].default
    max_detections: int = IMAGE_MASKING["maxDetections"].default
    mask_padding: int = IMAGE_MASKING["maskPadding"].default
    mask_blur: int = IMAGE_MASKING["maskBlur"].default
    search_tiles: bool = False  # not an API parameter: also search overlapping tiles (tiling.py)

    def __post_init__(self) -> None:
        check_settings(self.confidence, self.max_detections, self.mask_padding, self.mask_blur)
        if not isinstance(self.search_tiles, bool):
            raise InvalidParameter(
                f"search_tiles must be true or false, got {self.search_tiles!r}", parameter="search_tiles"
            )


def check_settings(confidence: float, max_detections: int, padding: int, blur: int) -> None:
    """Raise InvalidParameter, named as the API names the field, for a value out of type or range."""
    for name, value in (
        ("confidence", confidence),
        ("maxDetections", max_detections),
        ("maskPadding", padding),
        ("maskBlur", blur),
    ):
        field = IMAGE_MASKING[name]
        if isinstance(value, np.integer):
            value = int(value)
        if field.kind == "integer" and isinstance(value, float):  # 2.0 is an integer in JSON, not here
            raise field.invalid(value)
        field.read(value)


# name -> (width, height); the sizes the base models were trained at
WORKING_SIZES: dict[str, tuple[int, int]] = {
    "512x512 (SD1.5)": (512, 512),
    "512x768 (SD1.5 portrait)": (512, 768),
    "768x512 (SD1.5 landscape)": (768, 512),
    "768x768 (SD2)": (768, 768),
    "1024x1024 (SDXL, Flux)": (1024, 1024),
    "896x1152 (SDXL portrait)": (896, 1152),
    "832x1216 (SDXL portrait)": (832, 1216),
    "1152x896 (SDXL landscape)": (1152, 896),
    "1216x832 (SDXL landscape)": (1216, 832),
}
MAX_WORKING_SIDE = 4096
MAX_MARGIN = 4096


@dataclass(frozen=True)
class CropSettings:
    """Validated on creation: errors name the parameter, values are never clamped."""

    width: int = 512
    height: int = 512
    margin: int = 32
    min_region_size: int = 8
    merge_overlapping: bool = False

    def __post_init__(self) -> None:
        for name, value in (("width", self.width), ("height", self.height)):
            if not isinstance(value, int) or not 64 <= value <= MAX_WORKING_SIDE or value % 8:
                raise InvalidParameter(
                    f"working {name} must be a multiple of 8 from 64 to {MAX_WORKING_SIDE} "
                    f"(the VAE works on 8-pixel blocks), got {value!r}",
                    parameter=name,
                )
        if not isinstance(self.margin, int) or not 0 <= self.margin <= MAX_MARGIN:
            raise InvalidParameter(
                f"mask_margin must be an integer from 0 to {MAX_MARGIN}, got {self.margin!r}", parameter="mask_margin"
            )
        if not isinstance(self.min_region_size, int) or self.min_region_size < 0:
            raise InvalidParameter(
                f"min_region_size must be an integer >= 0, got {self.min_region_size!r}", parameter="min_region_size"
            )
