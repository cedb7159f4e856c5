"""The operations' parameter objects and the progress callback type, shared by the engine and every front.

Each parameter's default and range is defined here once; the node schemas, the task parser and the
command line read them from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import InvalidParameter

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


MAX_DETECTIONS = 20


@dataclass(frozen=True)
class MaskSettings:
    """The API's detection and mask parameters, validated on creation (never silently clamped)."""

    confidence: float = 0.25
    max_detections: int = 6
    mask_padding: int = 4
    mask_blur: int = 4
    search_tiles: bool = False  # not an API parameter: also search overlapping tiles (tiling.py)

    def __post_init__(self) -> None:
        check_settings(self.confidence, self.max_detections, self.mask_padding, self.mask_blur)
        if not isinstance(self.search_tiles, bool):
            raise InvalidParameter(
                f"search_tiles must be true or false, got {self.search_tiles!r}", parameter="search_tiles"
            )


MAX_PADDING = 1024  # beyond this a padding is a mistake, not a wish (and costs O(k) passes)


def check_settings(confidence: float, max_detections: int, padding: int, blur: int) -> None:
    """Raise InvalidParameter, named as the API names the field, for a value out of type or range."""

    def is_int(v: object) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if not isinstance(confidence, (int, float)) or isinstance(confidence, bool) or not 0.0 <= confidence <= 1.0:
        raise InvalidParameter(f"confidence must be a number from 0 to 1, got {confidence!r}", parameter="confidence")
    if not is_int(max_detections) or not 1 <= max_detections <= MAX_DETECTIONS:
        raise InvalidParameter(
            f"maxDetections must be an integer from 1 to {MAX_DETECTIONS}, got {max_detections!r}",
            parameter="maxDetections",
        )
    if not is_int(padding) or abs(padding) > MAX_PADDING:
        raise InvalidParameter(
            f"maskPadding must be an integer from -{MAX_PADDING} to {MAX_PADDING}, got {padding!r}",
            parameter="maskPadding",
        )
    if not is_int(blur) or not 0 <= blur <= MAX_PADDING:
        raise InvalidParameter(
            f"maskBlur must be an integer from 0 to {MAX_PADDING}, got {blur!r}", parameter="maskBlur"
        )


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
