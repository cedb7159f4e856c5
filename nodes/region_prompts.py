"""Region Prompts: one prompt per crop of Mask Margin Crop, as one batched CONDITIONING for one sampler call."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from comfy_api.latest import io

from ..maskmargin.crop import CropResult
from ..maskmargin.region_prompts import assign_prompts, describe
from .crop_stitch import StitchType


def _padded(tokens: dict[str, list], chunks: dict[str, int], empty: dict[str, list]) -> dict[str, list]:
    """`tokens` with each key's chunk list padded (with the empty prompt's chunk) to `chunks[key]` chunks."""
    out = {}
    for key, value in tokens.items():
        if isinstance(value, list) and value and isinstance(value[0], list):
            out[key] = value + [empty[key][0]] * (chunks[key] - len(value))
        else:
            out[key] = value
    return out


def batched_conditioning(clip: Any, texts: list[str]) -> list:
    """A CONDITIONING whose batch holds texts[i] at position i: each distinct text encoded once, every
    text's tokens padded to the same number of 77-token chunks so the encodings stack."""
    unique = list(dict.fromkeys(texts))
    tokens = {t: clip.tokenize(t) for t in unique}
    empty = clip.tokenize("")
    chunks: dict[str, int] = {}
    for tok in tokens.values():
        for key, value in tok.items():
            if isinstance(value, list) and value and isinstance(value[0], list):
                chunks[key] = max(chunks.get(key, 0), len(value))
    encoded = {}
    for t in unique:
        cond, extra = clip.encode_from_tokens_scheduled(_padded(tokens[t], chunks, empty))[0][:2]
        encoded[t] = (cond, extra)
    cond = torch.cat([encoded[t][0] for t in texts])
    first = encoded[texts[0]][1]
    extras = dict(first)
    if first.get("pooled_output") is not None:
        extras["pooled_output"] = torch.cat([encoded[t][1]["pooled_output"] for t in texts])
    return [[cond, extras]]


class RegionPrompts(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MaskMarginRegionPrompts",
            display_name="Region Prompts",
            category="MaskMargin",
            description="One prompt per region: encodes a prompt for every crop of Mask Margin Crop and stacks them "
            "into one CONDITIONING whose batch matches the crops, so ONE sampler call inpaints each crop with its "
            "own prompt (ComfyUI only repeats a conditioning that is smaller than the batch). One line per region, "
            "in crop order (the numbers on Mask Margin Crop's preview; for a tracked video, one line per track: line "
            "1 is track 0 in every frame); `label: text` lines give every region with that detection label a "
            "prompt; `-` leaves a region untouched.",
            inputs=[
                io.Clip.Input("clip", tooltip="The checkpoint's CLIP (Load Checkpoint's CLIP output)."),
                StitchType.Input(
                    "stitch",
                    tooltip="From Mask Margin Crop: how many crops there are, in which order, "
                    "and each one's detection label.",
                ),
                io.String.Input(
                    "prompts",
                    multiline=True,
                    default="",
                    tooltip="One line per region in crop order (region 0 first; Mask Margin Crop's "
                    "preview numbers them). An empty line: the default. `-`: leave that region "
                    "untouched. `face: text` (any detection label, e.g. face, hand, person): the "
                    "prompt of every region with that label that has no line of its own. `#` starts a "
                    "comment line.",
                ),
                io.String.Input(
                    "default",
                    multiline=True,
                    default="",
                    tooltip="The prompt of every region without a line or label rule of its own; `-` "
                    "leaves those regions untouched.",
                ),
            ],
            outputs=[
                io.Conditioning.Output(
                    "positive",
                    tooltip="One conditioning per crop, as one batch: connect to the "
                    "sampler's positive input (the negative can stay a single prompt).",
                ),
                StitchType.Output(
                    "stitch",
                    tooltip="Mask Margin Crop's stitch, with the regions marked `-` left "
                    "out: connect to Inpaint Stitch instead of the crop's own stitch output.",
                ),
                io.String.Output(
                    "prompts_used",
                    tooltip="Which prompt each region got and why (line, label or default), one line per region.",
                ),
            ],
        )

    @classmethod
    def execute(cls, clip, stitch: CropResult, prompts: str, default: str = "") -> io.NodeOutput:
        if clip is None:
            raise RuntimeError("MaskMargin: Region Prompts needs a CLIP: the checkpoint has no text encoder")
        labels = [c.region.label for c in stitch.plan] or [""]  # the placeholder crop: one region, no label
        tracked = any(c.track is not None for c in stitch.plan)  # a video: one line per track, not per crop
        lines = [c.track for c in stitch.plan] if tracked else None
        assigned = assign_prompts(prompts, labels, default, lines)
        texts = [p.text if p.text is not None else "" for p in assigned]
        skipped = frozenset(p.index for p in assigned if p.text is None and stitch.plan)
        conditioning = batched_conditioning(clip, texts)
        out = replace(stitch, skipped=stitch.skipped | skipped) if skipped else stitch
        return io.NodeOutput(conditioning, out, describe(assigned))


NODES = [RegionPrompts]
